"""The ``serve`` and ``export-model`` commands; ``register`` adds them to the project's CLI."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer


def serve(
    host: Annotated[str | None, typer.Option(help="Interface (default SERVING_HOST)")] = None,
    port: Annotated[int | None, typer.Option(help="Port (default SERVING_PORT)")] = None,
    workers: Annotated[
        int | None, typer.Option(min=1, help="Processes (default SERVING_WORKERS)")
    ] = None,
    model: Annotated[
        str | None,
        typer.Option(help="Model folder or MLflow URI (default SERVING_MODEL_URI, the champion)"),
    ] = None,
) -> None:
    """Serve the model over HTTP (FastAPI + uvicorn); settings come from SERVING_* variables."""
    from .server import serve as run_server
    from .settings import ServingSettings

    overrides: dict[str, Any] = {"host": host, "port": port, "workers": workers, "model_uri": model}
    # Options given on the command line win over the environment.
    run_server(ServingSettings(**{k: v for k, v in overrides.items() if v is not None}))


def export_command(
    output: Annotated[
        Path,
        typer.Option(
            "--output",
            "-o",
            help="Folder to write; an existing one is replaced only if an export wrote it",
        ),
    ] = Path("models/champion"),
    alias: Annotated[str, typer.Option(help="Registry alias to export")] = "champion",
) -> None:
    """Copy the registered model with ALIAS into a folder (to bake into an image)."""
    import mlflow
    from mlflow.exceptions import MlflowException

    from ..config import get_settings
    from ..io.model_loader import UnsafeModelError
    from ..redaction import redact
    from .export import export_model

    settings = get_settings()
    mlflow.set_tracking_uri(settings.mlflow_tracking_uri)
    try:
        version = export_model(settings.model_name, alias, output)
    except MlflowException as error:
        typer.echo(redact(f"{settings.model_name}@{alias}: {error.message}"), err=True)
        raise typer.Exit(code=1) from None
    except (FileExistsError, UnsafeModelError) as error:
        typer.echo(str(error), err=True)
        raise typer.Exit(code=1) from None
    typer.echo(f"exported {settings.model_name} version {version} ({alias}) to {output}")


def register(app: typer.Typer) -> None:
    """Add ``serve`` and ``export-model`` to ``app``."""
    app.command()(serve)
    app.command("export-model")(export_command)
