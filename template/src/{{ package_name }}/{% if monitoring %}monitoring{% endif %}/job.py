"""The ``monitor`` job: load the current data, compare it with the reference, write the reports."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd

from ..config import Params, Settings, prediction_column
from ..core.schema import DataSchema, DataValidationError, feature_frame
from ..io.data import read_frames, read_json, read_table, write_json, write_text
from .feedback import CONFLICT, join_feedback
from .html_report import render_html
from .prediction_log import Unreadable, read_log
from .profile import Reference, derive, load_reference
from .report import ModelAge, MonitorSummary, build_summary, model_age_alert
from .settings import MonitoringSettings

LOG_SUFFIXES = (".jsonl", ".json", ".log")
CHUNK_ROWS = 100_000  # rows of a table read at a time while sampling it


class UnusableInputError(Exception):
    """Nothing to check: no reference, no readable line or no rows, a table that is invalid."""


def is_log(path: Path) -> bool:
    """A prediction log (or one of its rotated backups, or a folder of pods' logs) rather than
    a table."""
    rotated = path.suffix[1:].isdigit() and ".jsonl" in path.name
    return path.suffix in LOG_SUFFIXES or rotated or path.is_dir()


def private_features(schema: DataSchema, monitoring: MonitoringSettings) -> list[str]:
    """Features the prediction log drops or hashes: ``monitor`` cannot compare them."""
    private = set(monitoring.drop_columns) | set(monitoring.hash_columns)
    return [name for name in schema.feature_names if name in private]


def load_current(
    path: Path,
    schema: DataSchema,
    settings: Settings,
    monitoring: MonitoringSettings,
    model: str | None,
    since: datetime | None = None,
    unreadable: Unreadable | None = None,
    sample: tuple[int | None, int] = (None, 0),
) -> tuple[pd.DataFrame, int]:
    """Current rows with validated features, the predictions (``prediction``, or
    ``config.prediction_column``'s name beside a feature of that name) and the target when
    known; and how many rows the input held.

    A prediction log gets its late labels from the feedback file; its unreadable lines and
    values are skipped and counted in ``unreadable``, and a feature no line has is missing. A
    table is read in chunks and, beyond ``sample`` = (rows, seed), checked on a seeded uniform
    sample of that many rows; without predictions it is scored with ``model`` (by default the
    model the environment serves: ``served_model``), the sample only.
    """
    target = schema.target.name
    if is_log(path):
        logged = read_log(
            path,
            since,
            numeric=schema.numeric_features,
            features=schema.feature_names,
            unreadable=unreadable,
        )
        frame = join_feedback(logged, monitoring.feedback_path, target)
        absent = [name for name in schema.feature_names if name not in frame.columns]
        for name in [*absent, *private_features(schema, monitoring)]:
            frame[name] = None  # in no line, or dropped or hashed before logging: missing
        total = len(frame)
    else:
        frame, total = sample_table(path, *sample)
        # Names count without surrounding spaces, as ingest reads them (a header "age, city")
        frame = frame.rename(columns=lambda name: str(name).strip())
    if frame.empty:
        raise ValueError("no rows to check")
    if prediction_column(schema.feature_names) not in frame.columns:
        return scored_frame(frame, schema, model or served_model(settings, monitoring)), total
    features = feature_frame(frame, schema)
    return pd.concat([features, frame.drop(columns=schema.feature_names)], axis=1), total


def scored_frame(frame: pd.DataFrame, schema: DataSchema, model_uri: str) -> pd.DataFrame:
    """``frame`` with the model's predictions, its features those the model was trained on
    (``io.model_loader.input_schema``), as the reference profile of its training rows has them
    when the schema changed since."""
    from ..io.model_loader import fetch_model, input_schema, read_pipeline, string_inputs

    fetched = fetch_model(model_uri)
    pipeline = read_pipeline(fetched)  # first: it names the model a folder does not hold
    schema = input_schema(fetched, schema)
    features = feature_frame(frame, schema)
    others = frame.drop(columns=schema.feature_names)
    scored = feature_frame(frame, schema, string_inputs(fetched))
    others[prediction_column(schema.feature_names)] = pipeline.predict(scored)
    return pd.concat([features, others], axis=1)


def sample_table(path: Path, rows: int | None, seed: int) -> tuple[pd.DataFrame, int]:
    """A seeded uniform sample of at most ``rows`` rows of the table at ``path`` (all of them
    when ``rows`` is None or the table is no larger), in file order, and the table's row
    count. Each row draws a random key and the ``rows`` smallest keys are kept, chunk by chunk:
    memory holds the sample and one chunk, whatever the table's size."""
    if rows is None:
        frame = read_table(path)
        return frame, len(frame)
    random = np.random.default_rng(seed)
    kept: pd.DataFrame | None = None
    keys = np.empty(0)
    total = 0
    try:
        for chunk in read_frames(path, CHUNK_ROWS):
            total += len(chunk)
            kept = chunk if kept is None else pd.concat([kept, chunk], ignore_index=True)
            keys = np.concatenate([keys, random.random(len(chunk))])
            if len(kept) > rows:
                keep = np.sort(np.argpartition(keys, rows)[:rows])
                kept, keys = kept.iloc[keep].reset_index(drop=True), keys[keep]
    except pd.errors.EmptyDataError:
        pass  # an empty file: no rows to check
    return (pd.DataFrame() if kept is None else kept), total


def with_derived(current: pd.DataFrame, reference: Reference, params: Params) -> pd.DataFrame:
    """``current`` and the derived columns the reference holds, computed by the model the
    reference was made with (the pipeline's ``paths.model``): both sides come from the same
    fitted steps. Of a date, only ``monitor.date_parts`` are kept."""
    if not reference.derived:
        return current
    from ..io.model_loader import load_pipeline

    if not params.paths.model.exists():
        raise FileNotFoundError(
            f"no model at {params.paths.model} to derive the reference's columns "
            f"({', '.join(reference.derived)}) from; run 'make pipeline' first"
        )
    features = current[list(reference.summary["features"])]
    model = load_pipeline(str(params.paths.model))
    made = derive(model, features, params.monitor.date_parts).values
    return pd.concat([current, made[[c for c in made.columns if c in reference.derived]]], axis=1)


# A registered model's version, by alias or by number: the ones whose age the registry knows.
REGISTERED = re.compile(r"models:/(?P<name>[^/@]+)(?:@(?P<alias>[^/@]+)|/(?P<version>\d+))")


def served_model(settings: Settings, monitoring: MonitoringSettings) -> str:
    """The model this environment serves, as the service resolves it: ``SERVING_MODEL_URI``,
    else the champion."""
    from ..predict import resolve_model_uri

    return resolve_model_uri(monitoring.served_model_uri or None, settings.model_name)


def model_age(settings: Settings, model_uri: str, now: datetime | None = None) -> ModelAge:
    """The age of the model ``model_uri`` names (:func:`registered_age`). A local folder is
    aged as the registered version ``export-model`` copied into it (what the image serves), as
    its ``registered_model.json`` names it; any other folder has no age the registry knows."""
    from ..io.model_loader import EXPORT_METADATA, ModelLoadError, exported_version

    if "://" in model_uri or model_uri.startswith("models:/"):
        return registered_age(settings, model_uri, now)
    try:
        exported = exported_version(Path(model_uri))
    except ModelLoadError as error:
        return ModelAge(model=model_uri, error=f"its age is unknown: {error}")
    if exported is None:
        reason = f"a folder without {EXPORT_METADATA} (export-model's record of its version)"
        if not Path(model_uri).is_dir():
            reason = "not a registered version (models:/<name>@<alias> or models:/<name>/<version>)"
        return ModelAge(model=model_uri, error=f"its age is unknown: {reason}")
    registered = "models:/{}/{}".format(*exported)
    age = registered_age(settings, registered, now)
    return age.model_copy(update={"model": f"{model_uri} (a copy of {registered})"})


def registered_age(settings: Settings, model_uri: str, now: datetime | None = None) -> ModelAge:
    """Days since the registry created the version ``model_uri`` names (no days when no version
    holds its alias); the reason when the age cannot be read: a model that is not a registered
    version, or a registry that fails (down, 5xx, 401): the drift checks stand without it."""
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    from ..io.model_loader import connect
    from ..io.tracking import NOT_FOUND, aliased
    from ..redaction import redact

    named = REGISTERED.fullmatch(model_uri)
    if named is None:
        reason = "not a registered version (models:/<name>@<alias> or models:/<name>/<version>)"
        return ModelAge(model=redact(model_uri), error=f"its age is unknown: {reason}")
    name, alias, number = named["name"], named["alias"], named["version"]
    try:
        connect(settings)
        client = MlflowClient()
        version = aliased(client, name, alias) if alias else client.get_model_version(name, number)
    except MlflowException as error:
        if error.error_code in NOT_FOUND:
            return ModelAge(model=model_uri)
        said = f"could not read it from the registry: {error}"
        return ModelAge(model=model_uri, error=redact(said))
    except OSError as error:  # requests' own errors, when MLflow lets one through
        said = f"could not reach the registry: {type(error).__name__}: {error}"
        return ModelAge(model=model_uri, error=redact(said))
    if version is None or not version.creation_timestamp:  # no version, or no date: no age
        return ModelAge(model=model_uri)
    created = datetime.fromtimestamp(version.creation_timestamp / 1000, tz=UTC)
    days = ((now or datetime.now(UTC)) - created).total_seconds() / 86_400
    return ModelAge(model=model_uri, days=round(days, 2))


def run_monitor(
    current_path: Path,
    params: Params,
    schema: DataSchema,
    settings: Settings,
    monitoring: MonitoringSettings,
    model: str | None,
    output_dir: Path,
    since: datetime | None = None,
) -> tuple[MonitorSummary, Path, Path]:
    """Check ``current_path``; write ``report.html`` and ``summary.json`` into ``output_dir``.

    Raises :class:`UnusableInputError` when the reference or the current data cannot be used at
    all; unreadable lines of a prediction log are skipped and reported in the summary.
    """
    unreadable = Unreadable()
    try:
        reference = load_reference(params.paths.reference)
        sample = (params.monitor.current_rows, params.seed)
        current, total = load_current(
            current_path, schema, settings, monitoring, model, since, unreadable, sample
        )
        current = with_derived(current, reference, params)
    except (DataValidationError, FileNotFoundError, ValueError) as error:
        raise UnusableInputError(str(error)) from error
    metrics_file = params.paths.metrics
    reference_metrics = read_json(metrics_file)["test"] if metrics_file.is_file() else {}
    skip = private_features(schema, monitoring) if is_log(current_path) else []
    summary = build_summary(
        reference, current, params.monitor, schema.target.name, reference_metrics, skip, unreadable
    )
    if total > len(current):
        summary.table_rows = total
    if CONFLICT in current.columns:
        summary.feedback_conflicts = int(current[CONFLICT].sum())
    limit = params.monitor.alert.max_champion_age_days
    if limit is not None:
        summary.model_age = model_age(settings, served_model(settings, monitoring))
        if alert := model_age_alert(summary.model_age, limit):
            summary.alerts.append(alert)
    html_path, json_path = output_dir / "report.html", output_dir / "summary.json"
    write_text(render_html(summary, reference, current), html_path)
    # Through JSON text: a statistic that is not a finite number becomes null, as JSON allows.
    written = summary.model_dump(mode="json")
    write_json({**written, "passed": summary.passed}, json_path)
    return summary, html_path, json_path
