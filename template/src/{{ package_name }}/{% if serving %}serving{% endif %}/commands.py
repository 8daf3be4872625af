"""The ``serve``, ``export-model`` and ``api-key`` commands, added to the project's CLI."""

from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

if TYPE_CHECKING:
    from fastapi import FastAPI

    from .settings import ServingSettings


def worker_app(settings: ServingSettings) -> FastAPI:
    """The app of one server process; imported there, so the supervisor process stays small."""
    from .app import create_app

    return create_app(settings)


def serve_command(
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
    from ..config import get_settings
    from ..engine import run_server
    from ..redaction import redact
    from .auth import Guard
    from .logs import log_config
    from .settings import ServingSettings

    overrides: dict[str, Any] = {"host": host, "port": port, "workers": workers, "model_uri": model}
    try:
        # Options given on the command line win over the environment.
        settings = ServingSettings(**{k: v for k, v in overrides.items() if v is not None})
        # Read here too, so a key entry or rate limit that cannot be read stops the start with
        # its reason, before each worker would fail on it with a traceback.
        Guard.from_settings(settings)
    except ValueError as error:
        typer.echo(redact(f"serve: {error}"), err=True)
        raise typer.Exit(code=2) from None
    run_server(
        # Pickled for each worker process with the settings as given (command-line options too).
        partial(worker_app, settings),
        host=settings.host,
        port=settings.port,
        workers=settings.workers,
        timeout_keep_alive=settings.timeout_keep_alive,
        log_config=log_config(get_settings().log_level),
    )


def export_command(
    output: Annotated[
        Path | None,
        typer.Option(
            "--output",
            "-o",
            help="Folder to write (default: the project's models/champion, what the image "
            "carries); an existing one is replaced only if an export wrote it",
            show_default=False,
        ),
    ] = None,
    alias: Annotated[
        str | None, typer.Option(help="Registry alias to export (default: the champion)")
    ] = None,
) -> None:
    """Copy the registered model with ALIAS into a folder (to bake into an image)."""
    from mlflow.exceptions import MlflowException

    from ..config import CHAMPION, get_settings, in_project
    from ..io.model_loader import UnsafeModelError, connect
    from ..redaction import redact
    from .export import export_model

    alias = alias or CHAMPION
    output = output or in_project(Path("models/champion"))
    settings = get_settings()
    connect(settings)
    try:
        version = export_model(settings.model_name, alias, output)
    except MlflowException as error:
        typer.echo(redact(f"{settings.model_name}@{alias}: {error.message}"), err=True)
        raise typer.Exit(code=1) from None
    except (FileExistsError, UnsafeModelError) as error:
        typer.echo(redact(str(error)), err=True)
        raise typer.Exit(code=1) from None
    typer.echo(f"exported {settings.model_name} version {version} ({alias}) to {output}")


api_keys = typer.Typer(
    help="API keys of the service (SERVING_API_KEYS).", no_args_is_help=True, add_completion=False
)


@api_keys.command("new")
def new_api_key(
    name: Annotated[str, typer.Option(help="What logs and answers call the key, e.g. ci")],
    scopes: Annotated[
        str, typer.Option(help="Comma-separated, among score, feedback, metrics, docs")
    ],
) -> None:
    """Make a key: prints it once, and the entry for SERVING_API_KEYS (its digest only)."""
    from .auth import ApiKeyError, new_key

    try:
        key, entry = new_key(name, [scope.strip() for scope in scopes.split(",")])
    except ApiKeyError as error:
        raise typer.BadParameter(str(error).partition(": ")[2]) from None
    typer.echo(f"API key {name!r} (shown once: hand it to the client, keep it in a secret store):")
    typer.echo(f"  {key}")
    typer.echo("Entry for SERVING_API_KEYS (or a line of SERVING_API_KEYS_FILE):")
    typer.echo(f"  {entry}")


def add_commands(app: typer.Typer) -> None:
    """Add ``serve``, ``export-model`` and ``api-key`` to ``app``."""
    app.command("serve")(serve_command)
    app.command("export-model")(export_command)
    app.add_typer(api_keys, name="api-key")
