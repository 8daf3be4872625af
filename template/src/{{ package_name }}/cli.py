"""Command-line interface: pipeline stages, batch scoring and model registry tools."""

from __future__ import annotations

import importlib
import importlib.util
import sys
from enum import StrEnum
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Literal, NoReturn

import typer

from .redaction import print_exception, redact

if TYPE_CHECKING:
    from .core.schema import DataSchema

app = typer.Typer(
    help="Pipeline stages, batch scoring and model registry tools.",
    no_args_is_help=True,
    add_completion=False,
)

# The pipeline's stages, in dvc.yaml's order.
STAGES = ("ingest", "validate", "split", "tune", "train", "evaluate", "reference", "register")
# pyspark is an optional install; --inexact keeps the other extras (a plain uv sync removes them).
SPARK_INSTALL = "uv sync --locked --inexact --extra spark"


# predict and explain refuse an existing output unless told to replace it.
Overwrite = Annotated[
    bool, typer.Option("--overwrite", help="Replace the output if it exists (else refused)")
]


# predict's blocks and threads: their defaults are decided when it runs.
ChunkSize = Annotated[
    int | None,
    typer.Option(
        min=1,
        help="Rows per block, about (default: as the pipeline's stages score, "
        "core.metrics.SCORING_BLOCK_ROWS)",
        show_default=False,
    ),
]
Threads = Annotated[
    int | None,
    typer.Option(
        min=1,
        help="Scoring threads, each running the model on one core (default: the cores available)",
        show_default=False,
    ),
]


class Engine(StrEnum):
    """Where ``predict`` scores: this process, or a Spark job (docs/spark.md)."""

    local = "local"
    spark = "spark"


def _stage_command(name: str) -> None:
    def command() -> None:
        importlib.import_module(f"{__package__}.stages.{name}").main()

    command.__doc__ = f"Run the '{name}' pipeline stage alone (dvc repro runs them all)."
    app.command(name)(command)


for _name in STAGES:
    if (Path(__file__).parent / "stages" / f"{_name}.py").exists():  # reference: with monitoring
        _stage_command(_name)


@app.command()
def predict(
    input: Annotated[
        str,
        typer.Option(
            "--input", "-i", help="CSV or Parquet file to score (spark: a path or s3:// URI)"
        ),
    ],
    output: Annotated[
        str,
        typer.Option(
            "--output",
            "-o",
            help="CSV or Parquet (*.parquet) file to write (spark: a folder, CSV if *.csv, "
            "or Parquet)",
        ),
    ],
    model: Annotated[
        str | None, typer.Option(help="Model folder or MLflow URI (default: the champion)")
    ] = None,
    chunk_size: ChunkSize = None,
    threads: Threads = None,
    engine: Annotated[
        Engine,
        typer.Option(help=f"local: this process; spark: a Spark job ({SPARK_INSTALL})"),
    ] = Engine.local,
    overwrite: Overwrite = False,
) -> None:
    """Score a CSV or Parquet file in chunks; writes the input columns plus a 'prediction'
    column ('model_prediction' beside a feature named 'prediction'; a file without rows: the
    columns alone)."""
    from .config import get_settings, load_params
    from .core.metrics import SCORING_BLOCK_ROWS
    from .core.schema import DataValidationError, load_schema
    from .io.model_loader import ModelLoadError
    from .predict import available_cores, resolve_model_uri

    settings = get_settings()
    schema = load_schema(load_params(settings.params_file).paths.schema_file)
    model_uri = resolve_model_uri(model, settings.model_name)
    try:
        if engine is Engine.spark:
            done = predict_on_spark(input, output, model_uri, schema, overwrite)
        else:
            cores = threads or available_cores()
            rows = chunk_size or SCORING_BLOCK_ROWS
            refuse_output(Path(input), Path(output), overwrite)
            done = predict_locally(Path(input), Path(output), model_uri, schema, rows, cores)
    except ModelLoadError as error:
        typer.echo(redact(str(error)), err=True)
        raise typer.Exit(code=1) from None
    except DataValidationError as error:
        typer.echo(redact(f"{input}: {error}"), err=True)
        raise typer.Exit(code=2) from None
    except unreadable_table() as error:
        refuse_unreadable(input, error)
    # A day without rows is a run like another: its output holds the columns alone.
    typer.echo(
        f"wrote {done} predictions to {output}" + ("" if done else ": the input has no rows")
    )


def unreadable_table() -> tuple[type[Exception], ...]:
    """What the readers raise on a file that is no table: a CSV that is not UTF-8 text
    (pandas, or pyarrow's header), a Parquet file that is not whole."""
    import pyarrow as pa

    return (UnicodeDecodeError, pa.ArrowInvalid)


def refuse_unreadable(source: object, error: Exception) -> NoReturn:
    """Exit 2 naming ``source`` and why it cannot be read, as for any bad input."""
    typer.echo(
        redact(
            f"{source} cannot be read as a table (a CSV file must be UTF-8 text, a .parquet "
            f"file whole Parquet): {error}"
        ),
        err=True,
    )
    raise typer.Exit(code=2)


def input_refusal(source: Path) -> str | None:
    """Why ``source`` cannot be read as a table, or ``None``."""
    if source.is_dir():
        return f"{source} is a folder; name a file to read"
    if not source.is_file():
        return f"{source}: no such file"
    return None


def refuse_output(source: Path, output: Path | None, overwrite: bool) -> None:
    """Exit 2, before any work, unless ``source`` is a file and ``output`` a new file (or one
    ``overwrite`` allows to replace; ``None``: standard output): a command deletes nothing it
    was not told to."""
    reason = input_refusal(source)
    if reason is None and output is not None:
        reason = output_file_refusal(source, output, overwrite)
    if reason is not None:
        typer.echo(reason, err=True)
        raise typer.Exit(code=2)


def output_file_refusal(source: Path, output: Path, overwrite: bool) -> str | None:
    """Why ``output`` may not be written from ``source``, or ``None``: it is the input, a
    folder, or an existing file (a link too, even to nowhere) that ``overwrite`` does not allow
    to replace."""
    if output.resolve() == source.resolve():
        return f"{output}: the output would replace the input; choose another file"
    if output.is_dir():
        return f"{output} is a folder; name a file to write"
    if (output.exists() or output.is_symlink()) and not overwrite:
        return f"{output} exists: choose another file, or pass --overwrite to replace it"
    return None


def predict_locally(
    source: Path, output: Path, model_uri: str, schema: DataSchema, chunk_size: int, threads: int
) -> int:
    """``predict``: the file streamed through the model in this process; rows scored."""
    from rich.progress import Progress
    from threadpoolctl import threadpool_limits

    from .io.data import is_parquet
    from .io.model_loader import (
        fetch_model,
        input_schema,
        prediction_type,
        read_pipeline,
        string_inputs,
    )
    from .predict import score_csv, score_table

    fetched = fetch_model(model_uri)
    loaded, strings = read_pipeline(fetched), string_inputs(fetched)
    schema = input_schema(fetched, schema)
    by_table = partial(score_table, prediction_type=prediction_type(fetched))
    done = 0
    # BLAS's thread limit is process-wide: one thread each, the scoring threads share the cores.
    with threadpool_limits(1, user_api="blas"), Progress(transient=True) as progress:
        task = progress.add_task(f"scoring {source.name}", total=None)
        score = by_table if is_parquet(source) or is_parquet(output) else score_csv
        scoring = score(loaded, schema, source, output, chunk_size, threads, strings)
        for rows in scoring:
            done += rows
            progress.update(task, advance=rows)
    return done


def predict_on_spark(
    source: str, output: str, model_uri: str, schema: DataSchema, overwrite: bool
) -> int:
    """``predict --engine spark``: the same model and checks in a Spark job; rows scored."""
    from .io.model_loader import fetch_model

    if importlib.util.find_spec("pyspark") is None:
        typer.echo(f"pyspark is not installed: run '{SPARK_INSTALL}'", err=True)
        raise typer.Exit(code=1)
    from .spark import output_refusal, score, start_session

    if (refused := output_refusal(source, output, overwrite)) is not None:
        typer.echo(redact(refused), err=True)  # before Spark starts
        raise typer.Exit(code=2)
    return score(start_session(), source, output, fetch_model(model_uri), schema, overwrite)


@app.command("tune-worker")
def tune_worker(
    worker: Annotated[
        int,
        typer.Option(
            min=0,
            help="This worker's number, unique in the study (the stage's own are 0 to "
            "tune.workers - 1): its sampler's seed is seed + worker (on a study that holds "
            "trials, drawn from both and their number)",
        ),
    ],
) -> None:
    """Add trials to the study the running tune stage opened (same params, data, TUNE_STORAGE)."""
    from .stages import tune
    from .stages._runner import run_stage

    run_stage("tune-worker", lambda params, settings: tune.join(params, settings, worker))


@app.command()
def explain(
    input: Annotated[Path, typer.Option("--input", "-i", help="CSV or Parquet rows to explain")],
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="CSV file to write (default: stdout)")
    ] = None,
    model: Annotated[
        str | None, typer.Option(help="Model folder or MLflow URI (default: the champion)")
    ] = None,
    background_rows: Annotated[
        int, typer.Option(min=1, help="Training rows the model-agnostic method compares with")
    ] = 100,
    overwrite: Overwrite = False,
) -> None:
    """Each row's per-feature contributions to its prediction (docs: explanations)."""
    from .config import get_settings, load_params
    from .core.explain import ADDED_COLUMNS, bounded_sample, contributions
    from .core.schema import DataValidationError, feature_frame, load_schema
    from .io.data import output_file, read_table
    from .io.model_loader import (
        ModelLoadError,
        fetch_model,
        input_schema,
        read_pipeline,
        string_inputs,
    )
    from .predict import resolve_model_uri

    settings = get_settings()
    params = load_params(settings.params_file)
    schema = load_schema(params.paths.schema_file)
    refuse_output(input, output, overwrite)
    if not params.paths.train.is_file():
        typer.echo(f"{params.paths.train}: run 'make pipeline'", err=True)
        raise typer.Exit(code=2)
    try:
        fetched = fetch_model(resolve_model_uri(model, settings.model_name))
        loaded, strings = read_pipeline(fetched), string_inputs(fetched)
        schema = input_schema(fetched, schema)
        frame = read_table(input, text=strings)
        if frame.empty:  # a header alone, or not even one: no row is missing a column
            raise DataValidationError(["no rows to explain"])
        rows = feature_frame(frame, schema, strings)
    except DataValidationError as error:
        typer.echo(redact(f"{input}: {error}"), err=True)
        raise typer.Exit(code=2) from None
    except ModelLoadError as error:
        typer.echo(redact(str(error)), err=True)
        raise typer.Exit(code=1) from None
    except unreadable_table() as error:
        refuse_unreadable(input, error)
    train = feature_frame(read_table(params.paths.train), schema, strings)
    table = contributions(loaded, rows, bounded_sample(train, background_rows, params.seed))
    if output is None:
        typer.echo(table.to_csv(index=False), nl=False)
    else:
        with output_file(output) as partial:
            table.to_csv(partial, index=False)
        # By position: the column is model_method beside a feature named method.
        method = str(table.iloc[0, ADDED_COLUMNS.index("method")])
        typer.echo(f"wrote {len(table)} explained rows to {output} ({method})")


@app.command("model-extra", hidden=True)
def model_extra() -> None:
    """uv's ``--extra`` for params.yaml's estimator when its library is an optional install (what
    ``make setup`` installs); an invalid params.yaml exits 1 with the reason."""
    from .config import LIBRARY_KINDS, get_settings, load_params

    kind = load_params(get_settings().params_file).train.model
    typer.echo(f"--extra={kind}" if kind in LIBRARY_KINDS else "")


@app.command()
def champion() -> None:
    """Show the registered model version that holds the 'champion' alias."""
    from mlflow.tracking import MlflowClient

    from .config import get_settings
    from .io import tracking

    settings = get_settings()
    tracking.configure(settings)
    current = tracking.get_champion(MlflowClient(), settings.model_name)
    if current is None:
        typer.echo(f"{settings.model_name}: no champion yet (run 'make pipeline')", err=True)
        raise typer.Exit(code=1)
    typer.echo(f"{settings.model_name} version {current.version} (run {current.run_id})")


@app.command()
def promote(
    to: Annotated[
        Literal["staging", "production"],
        typer.Option("--to", help="Environment whose alias moves to the version"),
    ],
    reason: Annotated[str, typer.Option(help="Why: recorded on the model version")],
    version: Annotated[
        str | None,
        typer.Option(
            help="Registered version (default: the champion for staging, the staging version "
            "for production)",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Re-check the quality gate, then give the environment's alias to a version (audited)."""
    from mlflow.tracking import MlflowClient

    from .config import ENVIRONMENTS, get_settings, load_params
    from .io import promotion, tracking
    from .stages.register import recheck

    settings = get_settings()
    tracking.configure(settings)
    client, name = MlflowClient(), settings.model_name
    try:
        chosen = promotion.candidate(client, name, to, version)
    except LookupError as error:
        typer.echo(redact(str(error)), err=True)
        raise typer.Exit(code=1) from None
    alias = ENVIRONMENTS[to]
    holder = tracking.get_champion(client, name, alias)
    if holder is not None and holder.version == str(chosen.version):
        typer.echo(f"{name}: {to} already is version {chosen.version}; nothing recorded")
        return
    params = load_params(settings.params_file)
    gate = recheck(tracking.with_metrics(client, chosen), params, holder, alias)
    reasons = promotion.path_reasons(chosen, to) + gate.reasons
    if reasons:
        typer.echo(f"{name}@{to} unchanged, version {chosen.version} refused:", err=True)
        typer.echo("\n".join(f"  - {reason}" for reason in reasons), err=True)
        raise typer.Exit(code=1)
    promotion.move(client, name, to, str(chosen.version), promotion.current_audit(reason))
    typer.echo(f"{name}: {to} is now version {chosen.version}")


@app.command()
def rollback(
    env: Annotated[
        Literal["dev", "staging", "production"],
        typer.Option("--env", help="Environment whose alias moves back (dev: the champion)"),
    ] = "dev",
    reason: Annotated[
        str, typer.Option(help="Why: recorded on the version left (required but for dev)")
    ] = "",
) -> None:
    """Move an environment's alias back: dev's champion to the previous registered version,
    staging's or production's to the version promoted there before."""
    from mlflow.tracking import MlflowClient

    from .config import ENVIRONMENTS, get_settings
    from .io import promotion, tracking

    if env != "dev" and not reason:
        raise typer.BadParameter(f"say why with --reason: it is recorded in {env}'s audit")
    settings = get_settings()
    tracking.configure(settings)
    client, name = MlflowClient(), settings.model_name
    try:
        version = promotion.roll_back(client, name, env, promotion.current_audit(reason))
    except LookupError as error:
        typer.echo(redact(str(error)), err=True)
        raise typer.Exit(code=1) from None
    typer.echo(f"{name}: {ENVIRONMENTS[env]} is now version {version}")


# Optional features add their own commands when the project was generated with them.
for _feature in ("monitoring", "serving"):
    if importlib.util.find_spec(f"{__package__}.{_feature}") is not None:
        importlib.import_module(f"{__package__}.{_feature}.commands").add_commands(app)


def main() -> None:
    """The console script: the commands, an unexpected error printed redacted (Typer would print
    MLflow's messages, which carry the tracking URI, as they are)."""
    from .config import ParamsError

    try:
        app()
    except ParamsError as error:  # params.yaml missing or invalid: the reason is the message
        print(redact(str(error)), file=sys.stderr)
        sys.exit(1)
    except Exception as error:
        print_exception(error)
        sys.exit(1)
