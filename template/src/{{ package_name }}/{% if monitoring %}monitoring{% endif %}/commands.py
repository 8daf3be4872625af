"""The ``monitor`` and ``feedback`` commands, added to the project's CLI."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

if TYPE_CHECKING:
    from rich.console import Console

    from .report import MonitorSummary

# 0: no threshold crossed. The scheduled job (ci/monitor.sh) retrains on 1 and fails on others.
EXIT_ALERT = 1
EXIT_BAD_INPUT = 2  # the input as a whole is unusable: no file, no readable line, no rows
EXIT_FAILED = 3  # monitor itself failed (a bug): a traceback, never read as a breach
# The report is written but a check could not be made (the registry did not answer the served
# model's age): not a pass, and no breach either, since retraining would not make the check.
# A breach found by the other checks still exits 1.
EXIT_INCOMPLETE = 4


def monitor(
    current: Annotated[
        Path,
        typer.Option(
            "--current",
            "-c",
            exists=True,
            help="Prediction log (.jsonl, with its rotated backups), a folder of pods' logs "
            "(deploy/k8s) or a CSV/Parquet table",
        ),
    ],
    model: Annotated[
        str | None,
        typer.Option(
            help="Model to score a table without a 'prediction' column ('model_prediction' "
            "beside a feature named 'prediction'; default: the model this environment serves, "
            "SERVING_MODEL_URI, else the champion)"
        ),
    ] = None,
    output_dir: Annotated[
        Path | None, typer.Option(help="Where to write report.html and summary.json")
    ] = None,
    since: Annotated[
        datetime | None,
        typer.Option(
            formats=["%Y-%m-%dT%H:%M:%S%z", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d"],
            help="Only requests logged at or after this time (UTC unless an offset is given)",
        ),
    ] = None,
) -> None:
    """Drift, data quality and model quality of CURRENT against the training reference.

    Writes a self-contained HTML report and a JSON summary; exits 1 when a threshold of
    params.yaml (monitor.alert) is crossed, so a scheduled job can alert. Unreadable lines of
    a prediction log are skipped and reported; exits 2 only when nothing can be checked, 4 when
    the report is written but a check could not be made (the registry did not answer).
    """
    from rich.console import Console
    from rich.markup import escape

    console = Console(stderr=True)
    if since is not None and since.tzinfo is None:
        since = since.replace(tzinfo=UTC)
    summary, html_path, json_path = _run(current, model, output_dir, since, console)
    _print_outcome(summary)
    typer.echo(f"report: {html_path}\nsummary: {json_path}")
    if summary.alerts:
        for alert in summary.alerts:
            console.print(f"[red]ALERT[/red] {escape(alert)}", highlight=False)
        raise typer.Exit(code=EXIT_ALERT)
    if summary.not_checked:
        typer.echo("no monitoring threshold crossed, but not every check was made", err=True)
        raise typer.Exit(code=EXIT_INCOMPLETE)
    typer.echo("no monitoring threshold crossed")


def _run(
    current: Path,
    model: str | None,
    output_dir: Path | None,
    since: datetime | None,
    console: Console,
) -> tuple[MonitorSummary, Path, Path]:
    """The summary and the paths of the report and summary files; exits 2 on unusable input,
    3 on a failure of monitor itself."""
    from pydantic import ValidationError
    from rich.markup import escape

    from ..config import ParamsError, get_settings, load_params
    from ..core.schema import DataValidationError, load_schema
    from ..redaction import print_exception, redact
    from .job import UnusableInputError, run_monitor
    from .settings import get_monitoring_settings

    try:
        # Read inside the try: Python's exit code for an error here, 1, would read as an alert.
        settings = get_settings()
        params = load_params(settings.params_file)
        monitoring = get_monitoring_settings()
    except (ParamsError, ValidationError) as error:
        said = escape(redact(f"cannot read the configuration: {error}"))
        console.print(f"[red]monitor:[/red] {said}", markup=True, highlight=False)
        raise typer.Exit(code=EXIT_FAILED) from None
    try:
        return run_monitor(
            current,
            params,
            load_schema(params.paths.schema_file),
            settings,
            monitoring,
            model=model,
            output_dir=output_dir or monitoring.report_dir,
            since=since,
        )
    except (UnusableInputError, DataValidationError, FileNotFoundError) as error:
        # Escaped: a path or a column named like `[/x]` would be read as markup and fail.
        said = escape(redact(f"{current}: {error}"))
        console.print(f"[red]monitor:[/red] {said}", markup=True, highlight=False)
        raise typer.Exit(code=EXIT_BAD_INPUT) from None
    except Exception as error:  # a bug; Python's exit code, 1, would read as a threshold breach
        print_exception(error)
        raise typer.Exit(code=EXIT_FAILED) from None


def _print_outcome(summary: MonitorSummary) -> None:
    """What was checked, and what could not be: conflicting labels, unreadable lines, values."""
    drifted = ", ".join(c.label for c in summary.features if c.drifted) or "none"
    sampled = f" (a seeded sample of {summary.table_rows})" if summary.table_rows else ""
    typer.echo(f"{summary.current_rows} rows checked{sampled}; drifted features: {drifted}")
    if (age := summary.model_age) is not None:
        if age.error:
            typer.echo(f"not checked: the age of {age.model}: {age.error}", err=True)
        elif age.days is None:
            typer.echo(f"no version holds {age.model}: no age to check")
        else:
            typer.echo(f"{age.model} registered {age.days} days ago")
    if summary.feedback_conflicts:
        conflicts = f"{summary.feedback_conflicts} labelled row(s) later got a different label"
        typer.echo(f"feedback: {conflicts}; the first stands", err=True)
    if summary.unreadable.lines:
        typer.echo(f"skipped unreadable log lines: {summary.unreadable.describe()}")
    if summary.unreadable.values:
        values = ", ".join(f"{name}: {n}" for name, n in summary.unreadable.values.items())
        typer.echo(f"values that are not finite numbers, read as missing: {values}")


def feedback(
    labels: Annotated[
        Path,
        typer.Option(
            "--labels", exists=True, help="CSV with request_id, row (optional) and the target"
        ),
    ],
) -> None:
    """Record late ground truth; 'monitor' joins it to the prediction log by request id.

    The first label recorded for a row stands: 'monitor' reports later, different ones.
    """
    from ..config import get_settings, load_params
    from ..io.data import read_table
    from ..redaction import redact
    from .feedback import labels_from_table, write_feedback
    from .settings import get_monitoring_settings

    target = load_params(get_settings().params_file).data.target
    settings = get_monitoring_settings()
    try:
        count = write_feedback(labels_from_table(read_table(labels), target), "cli", settings)
    except ValueError as error:
        typer.echo(redact(f"{labels}: {error}"), err=True)
        raise typer.Exit(code=EXIT_BAD_INPUT) from None
    typer.echo(f"recorded {count} label(s) in {settings.feedback_path}")


def add_commands(app: typer.Typer) -> None:
    """Add the monitoring commands to ``app``."""
    app.command()(monitor)
    app.command()(feedback)
