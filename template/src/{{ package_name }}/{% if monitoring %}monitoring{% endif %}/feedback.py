"""Late ground truth: the feedback file that ``POST /feedback`` and ``feedback --labels`` write,
and its join to the prediction log.

The file is appended under the prediction log's lock and rotated with it, so it stays bounded.
A label cannot be replaced: the first one for a row stands. Refusing a later one at write time
would need an index shared by every worker and the CLI; instead the file keeps it, and
:func:`join_feedback` marks the row (``label_conflict``) for ``monitor`` to report.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import msgspec
import pandas as pd
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictFloat,
    StrictInt,
    StrictStr,
    TypeAdapter,
    ValidationError,
)

from ..engine import REQUEST_ID, ROW, append_rotating
from .prediction_log import log_column, log_files
from .settings import MonitoringSettings

LABEL = "label"
WRITTEN_BY = "written_by"
CONFLICT = "label_conflict"
# The service's own request ids are 32 hex digits; a client's X-Request-ID is at most this.
REQUEST_ID_PATTERN = r"^[A-Za-z0-9._:-]{1,128}$"

# A label is the target's value: a class name or number, or a regression target.
Label = (
    Annotated[StrictStr, Field(max_length=256)]
    | StrictInt
    | Annotated[StrictFloat, Field(allow_inf_nan=False)]
    | StrictBool
)


class FeedbackLabel(BaseModel):
    """The true target of one scored row."""

    model_config = ConfigDict(extra="forbid")

    request_id: Annotated[StrictStr, Field(pattern=REQUEST_ID_PATTERN)]
    row: Annotated[StrictInt, Field(ge=0, le=1_000_000, description="its index in the request")] = 0
    label: Label


LABELS = TypeAdapter(list[FeedbackLabel])


def write_feedback(
    labels: list[FeedbackLabel], written_by: str, settings: MonitoringSettings
) -> int:
    """Append ``labels`` as JSON lines, each saying who wrote it; the number written."""
    stamp = {WRITTEN_BY: written_by, "timestamp": datetime.now(UTC).isoformat()}
    text = b"".join(msgspec.json.encode(label.model_dump() | stamp) + b"\n" for label in labels)
    path = settings.feedback_path
    path.parent.mkdir(parents=True, exist_ok=True)
    append_rotating(path, text, settings.log_max_bytes, settings.log_backups)
    return len(labels)


def labels_from_table(table: pd.DataFrame, target: str) -> list[FeedbackLabel]:
    """The labels of a table of ``request_id``, optional ``row`` and ``target`` columns;
    ``ValueError`` names the first records at fault (counted from 1) and the reason."""
    missing = [c for c in (REQUEST_ID, target) if c not in table.columns]
    if missing:
        raise ValueError(f"feedback needs the column(s) {missing}")
    ids = [str(value) if pd.notna(value) else None for value in table[REQUEST_ID].tolist()]
    rows = table[ROW].tolist() if ROW in table.columns else [0] * len(ids)
    records = [
        {REQUEST_ID: request_id, ROW: row, LABEL: label}
        for request_id, row, label in zip(ids, rows, table[target].tolist(), strict=True)
    ]
    try:
        return LABELS.validate_python(records)
    except ValidationError as error:
        # A union (the label) fails once per member: one fault per row and field is enough.
        faults = dict.fromkeys(
            f"record {int(item['loc'][0]) + 1}: {item['loc'][1]}: {item['msg']}"
            for item in error.errors(include_input=False, include_url=False)
        )
        shown = list(faults)[:5]
        more = f" (and {len(faults) - 5} more)" if len(faults) > 5 else ""
        raise ValueError("; ".join(shown) + more) from None


def read_feedback(path: Path) -> pd.DataFrame:
    """Every well-formed label of the feedback file and its rotated backups, oldest first."""
    labels: list[dict[str, Any]] = []
    for file in log_files(path):
        with file.open("rb") as handle:
            for line in handle:
                try:
                    record = msgspec.json.decode(line)
                except msgspec.DecodeError:
                    continue  # a torn or foreign line: it labels nothing
                if (
                    isinstance(record, dict)
                    and isinstance(record.get(REQUEST_ID), str)
                    and isinstance(record.get(ROW), int)
                    and record.get(LABEL) is not None
                ):
                    labels.append(record)
    table = pd.DataFrame(labels, columns=[REQUEST_ID, ROW, LABEL, WRITTEN_BY])
    return table.astype({ROW: "int64"})


def join_feedback(predictions: pd.DataFrame, feedback_path: Path, target: str) -> pd.DataFrame:
    """Add the ``target`` column from the feedback file by request id and row.

    The first label received for a row stands; ``label_conflict`` is true where a later label
    for that row differs from it.
    """
    # The log's request id and row, wherever read_log put them (a feature may be named "row").
    keys = [log_column(field, predictions.columns) for field in (REQUEST_ID, ROW)]
    named = dict(zip([REQUEST_ID, ROW], keys, strict=True))
    labels = read_feedback(feedback_path).rename(columns=named)
    first = labels.drop_duplicates(keys, keep="first")
    against = labels.merge(first[[*keys, LABEL]], on=keys, suffixes=("", "_first"))
    differs = against.loc[against[LABEL] != against[f"{LABEL}_first"], keys].drop_duplicates()
    joined = (
        predictions.drop(columns=[target, CONFLICT], errors="ignore")
        .merge(first[[*keys, LABEL]].rename(columns={LABEL: target}), on=keys, how="left")
        .merge(differs.assign(**{CONFLICT: True}), on=keys, how="left")
    )
    joined[CONFLICT] = joined[CONFLICT].notna()
    return joined
