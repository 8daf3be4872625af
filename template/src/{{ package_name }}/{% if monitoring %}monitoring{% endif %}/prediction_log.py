"""Reading the prediction log back: one table row per scored row.

The service writes one JSON object per line and per request (``engine/log_writer.py``):
``request_id``, ``timestamp``, ``model_version``, ``served_by`` (champion, canary, or the
fallback that answered), ``latency_ms``, ``inputs`` (feature -> its values, one per row),
``predictions`` and, when a challenger was scored in shadow, ``challenger_version`` and
``challenger_predictions``. :func:`read_log` gives back one table row per scored row (``row``
is its index in the request, ``prediction`` and ``challenger_prediction`` its values, or
``model_prediction`` ... where a feature has that name, as in batch output (see
``config.prediction_column``); a field that a feature is named like is ``log.<field>``, see
:func:`log_column`), and reads the one-object-per-row lines of earlier versions of this
project as well. A line it cannot read (torn by a crash or a full disk, edited by hand) is
skipped and counted, never fatal: ``monitor`` reports it.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Collection, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import msgspec
import pandas as pd
from pydantic import BaseModel, Field
from pydantic_core import from_json

from ..config import PREDICTION, prediction_column
from ..engine import (
    CHALLENGER,
    CHALLENGER_PREDICTIONS,
    CHALLENGER_VERSION,
    INPUTS,
    PREDICTIONS,
    REQUEST_ID,
    ROW,
)
from .settings import DEFAULT_LOG_NAME

__all__ = [
    "CHALLENGER",
    "CHALLENGER_VERSION",
    "PREDICTION",
    "Unreadable",
    "log_column",
    "read_log",
]

log = logging.getLogger(__name__)

# A longer line is skipped unread (a request's line is about the size of its body,
# SERVING_MAX_BODY_BYTES); rows gathered as Python lists before they become a table (the
# lists take several times the memory); skipped lines named in the report, at most.
MAX_LINE_BYTES = 64 << 20
CHUNK_ROWS = 50_000
MAX_EXAMPLES = 5
# The types of a request's fields (and of every value of a one-row line of earlier versions).
SCALARS = (str, int, float, type(None))
decode = msgspec.json.Decoder().decode
# Where a request's field (or ``row``) goes in the table when a feature has its name.
LOG_PREFIX = "log."


def log_column(field: str, columns: Collection[str]) -> str:
    """The column of :func:`read_log`'s table that holds the log's ``field`` (``row``,
    ``served_by`` ...): ``log.<field>`` where a feature has that name, else ``field``."""
    return LOG_PREFIX + field if LOG_PREFIX + field in columns else field


def log_files(path: Path) -> list[Path]:
    """The log and its rotated backups (``x.jsonl.1`` ...), oldest first. Where there are none,
    those of the same name one folder down: a shared volume where each pod of the service
    writes into its own folder (deploy/k8s). A folder stands for its ``predictions.jsonl``."""
    if path.is_dir():
        path = path / DEFAULT_LOG_NAME
    files = _own_files(path)
    if files or not path.parent.is_dir():
        return files
    return [file for pod in sorted(path.parent.iterdir()) for file in _own_files(pod / path.name)]


def _own_files(path: Path) -> list[Path]:
    backups = [p for p in path.parent.glob(f"{path.name}.*") if p.suffix[1:].isdigit()]
    backups.sort(key=lambda p: int(p.suffix[1:]), reverse=True)
    return [*backups, path] if path.is_file() else backups


class Unreadable(BaseModel):
    """What :func:`read_log` could not use: lines skipped, by reason (where the first few are),
    and values of numeric columns that were not finite numbers, read as missing."""

    lines_read: int = 0  # every line read, also those before ``since``
    lines: dict[str, int] = Field(default_factory=dict)  # reason -> lines skipped
    examples: list[str] = Field(default_factory=list)  # "file:line: reason"
    values: dict[str, int] = Field(default_factory=dict)  # column -> values

    @property
    def lines_skipped(self) -> int:
        return sum(self.lines.values())

    def skip(self, where: str, reason: str) -> None:
        self.lines[reason] = self.lines.get(reason, 0) + 1
        if len(self.examples) < MAX_EXAMPLES:
            self.examples.append(f"{where}: {reason}")
            log.warning("%s: skipped a line (%s)", where, reason)

    def describe(self) -> str:
        """E.g. ``2 of 120 lines (not JSON: 1, not UTF-8: 1)``; empty when none was skipped."""
        if not self.lines:
            return ""
        reasons = ", ".join(f"{reason}: {count}" for reason, count in sorted(self.lines.items()))
        total = self.lines_read + self.lines_skipped
        return f"{self.lines_skipped} of {total} lines ({reasons})"


class _UnreadableLineError(Exception):
    """A line that is not a prediction record; the argument is the reason."""


def _records(paths: list[Path], unreadable: Unreadable) -> Iterator[tuple[str, dict[str, Any]]]:
    """Each line of ``paths`` that is a JSON object, with where it is (``file:line``).

    Read line by line, at most ``MAX_LINE_BYTES`` of a line in memory: the log may be large.
    Lines that are not UTF-8, not JSON or not an object (a crash or a full disk mid-write, a
    hand edit) are skipped and counted in ``unreadable``.
    """
    for path in paths:
        with path.open("rb") as handle:
            number = 0
            while raw := handle.readline(MAX_LINE_BYTES + 1):
                number += 1
                where = f"{path}:{number}"
                if len(raw) > MAX_LINE_BYTES:
                    while not raw.endswith(b"\n") and (raw := handle.readline(1 << 20)):
                        pass  # the rest of the line, a chunk at a time
                    unreadable.skip(where, f"longer than {MAX_LINE_BYTES:,} bytes")
                    continue
                if raw.isspace():
                    continue
                try:
                    yield where, _parse(raw)
                except _UnreadableLineError as reason:
                    unreadable.skip(where, str(reason))


def _parse(raw: bytes) -> dict[str, Any]:
    try:
        value = decode(raw)
    except msgspec.DecodeError:
        try:  # NaN and Infinity, as Python's json module writes them
            value = from_json(raw.decode("utf-8"), allow_inf_nan=True)
        except UnicodeDecodeError:
            raise _UnreadableLineError("not UTF-8") from None
        except ValueError:
            raise _UnreadableLineError("not JSON") from None
    if not isinstance(value, dict):
        raise _UnreadableLineError("not a JSON object")
    return value


def _lines(paths: list[Path]) -> Iterator[dict[str, Any]]:
    """The JSON objects of ``paths``, one per line; other lines skipped (and logged)."""
    for _, line in _records(paths, Unreadable()):
        yield line


def _table_rows(
    line: dict[str, Any], features: Collection[str] = ()
) -> tuple[int, dict[str, list[Any]]]:
    """A line's rows as columns: (row count, name -> one value per row).

    A request line's fields come first, then ``row``, the inputs and the predictions. A field
    named like one of ``features`` or of the line's inputs is ``log.<field>``: the feature
    keeps its values, and the field its own. The predictions' columns are named by
    ``features`` alone (``config.prediction_column``), as in batch output, so that every line
    puts them in the same column; an input that is none of ``features`` gives way to them. A
    line of an earlier version of the log (one
    object per row) is one row as it stands. Raises :class:`_UnreadableLineError` for a
    line whose fields are not of the log's types, or whose columns differ in length.
    """
    fields = {
        key: value
        for key, value in line.items()
        if key not in (INPUTS, PREDICTIONS, CHALLENGER_PREDICTIONS)
    }
    if not all(isinstance(value, SCALARS) for value in fields.values()):
        raise _UnreadableLineError("wrong field types")
    if INPUTS not in line:
        if REQUEST_ID not in line:
            raise _UnreadableLineError("not a prediction record")
        return 1, {key: [value] for key, value in fields.items()}
    inputs, predictions = line[INPUTS], line.get(PREDICTIONS)
    challenger = line.get(CHALLENGER_PREDICTIONS, [])
    if not isinstance(inputs, dict) or not isinstance(predictions, list):
        raise _UnreadableLineError("wrong field types")
    count = len(predictions)
    per_row = [*inputs.values(), *([challenger] if CHALLENGER_PREDICTIONS in line else [])]
    if not all(isinstance(values, list) and len(values) == count for values in per_row):
        raise _UnreadableLineError("columns of unequal length")
    logged = {key: [value] * count for key, value in fields.items()} | {ROW: list(range(count))}
    named = {*inputs, *features}
    columns = {
        (LOG_PREFIX + key if key in named else key): values for key, values in logged.items()
    }
    columns |= {**inputs, prediction_column(features): predictions}
    if CHALLENGER_PREDICTIONS in line:
        columns[prediction_column(features, CHALLENGER)] = challenger
    return count, columns


def _logged_at(line: dict[str, Any]) -> datetime:
    """The line's ``timestamp`` (UTC unless it says otherwise)."""
    try:
        when = datetime.fromisoformat(line["timestamp"])
    except (KeyError, TypeError, ValueError):
        raise _UnreadableLineError("no valid timestamp") from None
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def _as_number(value: Any) -> float:
    """A finite float, or NaN for anything else (text, huge integers, nested values)."""
    if isinstance(value, int | float | str):  # bool is an int
        try:
            number = float(value)
        except (ValueError, OverflowError):
            return math.nan
        return number if math.isfinite(number) else math.nan
    return math.nan


def _chunk(
    columns: dict[str, list[Any]], numeric: Collection[str], unreadable: Unreadable
) -> pd.DataFrame:
    """Gathered rows as a table; ``numeric`` columns as finite floats, others as they came."""
    frame = pd.DataFrame(columns)
    for name in (n for n in numeric if n in frame.columns):
        given = frame[name]
        if pd.api.types.is_numeric_dtype(given.dtype):
            values = given.astype("float64").replace([math.inf, -math.inf], math.nan)
        else:  # text, nested values or huge integers among the numbers
            values = given.map(_as_number).astype("float64")
        bad = int((values.isna() & given.notna()).sum())
        if bad:
            unreadable.values[name] = unreadable.values.get(name, 0) + bad
        frame[name] = values
    return frame


def read_log(
    path: Path,
    since: datetime | None = None,
    *,
    numeric: Collection[str] = (),
    features: Collection[str] = (),
    unreadable: Unreadable | None = None,
) -> pd.DataFrame:
    """The logged rows (and those of the rotated backups) as a table, oldest first.

    One table row per scored row: the request's fields, ``row`` (its index in the request),
    the input features, ``prediction`` and, when the challenger was scored in shadow,
    ``challenger_prediction`` beside it (``model_prediction`` ... where one of ``features`` has
    that name: ``config.prediction_column``); a field named like a feature (one of ``features``,
    the model's, or an input of its line) is ``log.<field>``, see :func:`log_column`. ``since``
    keeps only requests logged at or after that time. Lines that cannot be read are skipped,
    never fatal; ``numeric`` columns hold finite floats or NaN. Both are counted in
    ``unreadable``. Raises ``ValueError`` when no row is left.
    """
    unreadable = unreadable if unreadable is not None else Unreadable()
    features = frozenset(features)
    if since is not None and since.tzinfo is None:
        since = since.replace(tzinfo=UTC)
    frames: list[pd.DataFrame] = []
    order: dict[str, None] = {}  # every column, in the order of first appearance
    table: dict[str, list[Any]] = {}
    total = 0
    for where, line in _records(log_files(path), unreadable):
        try:  # a line out of the window is read: its share of unreadable ones is the log's
            recent = since is None or _logged_at(line) >= since
            count, columns = _table_rows(line, features) if recent else (0, {})
        except _UnreadableLineError as reason:
            unreadable.skip(where, str(reason))
            continue
        unreadable.lines_read += 1
        if not recent:
            continue
        for name, values in columns.items():
            column = table.get(name)
            if column is None:
                column = table[name] = [None] * total
                order[name] = None
            column.extend(values)
        total += count
        for column in table.values():  # names this line did not have
            column.extend([None] * (total - len(column)))
        if total >= CHUNK_ROWS:  # Python lists cost several times the memory of a table
            frames.append(_chunk(table, numeric, unreadable))
            table, total = {}, 0
    if total:
        frames.append(_chunk(table, numeric, unreadable))
    if not frames:
        window = f" since {since.isoformat()}" if since else ""
        skipped = f"; skipped {unreadable.describe()}" if unreadable.lines else ""
        raise ValueError(f"{path}: no predictions logged{window}{skipped}")
    if len(frames) == 1:
        return frames[0]
    kept = [frame.dropna(axis="columns", how="all") for frame in frames]  # see pd.concat's dtypes
    return pd.concat(kept, ignore_index=True).reindex(columns=list(order))
