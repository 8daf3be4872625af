"""The process that writes the prediction log.

A service worker hands it steps of scored requests through a pipe (:class:`Step`) and it does all
the work that costs CPU: one JSON line per row (private columns dropped or hashed), the counts
of the live input and prediction metrics (answered back to the worker, which owns the Prometheus
counters), and the append with size-based rotation. In a thread of the worker this work shared
the event loop's GIL: at 100 rows a request it took 45% of the service's throughput. Here it runs
beside the worker, on another core when there is one.

This module imports only NumPy and orjson (the process starts in about half a second), and
several workers' writers may share one log file: :func:`append_rotating` takes a file lock.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import signal
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import orjson

from ..core.rows import Row
from .input_checks import Counts, InputChecks
from .settings import MonitoringSettings

REQUEST_ID = "request_id"
ROW = "row"
PREDICTION = "prediction"
CHALLENGER = "challenger_prediction"
CHALLENGER_VERSION = "challenger_version"
# Non-ASCII text as is, NumPy scalars as numbers, NaN (not valid JSON) as null.
JSON_OPTIONS = orjson.OPT_APPEND_NEWLINE | orjson.OPT_SERIALIZE_NUMPY
JSON_OPTIONS_INPUTS = orjson.OPT_SERIALIZE_NUMPY


@dataclass(frozen=True)
class ScoredRequest:
    """What the service knows right after answering; serialised later, by the writer."""

    request_id: str
    rows: list[Row]
    predictions: list[Any]
    model_version: str
    served_by: str
    latency_ms: float
    received: float = field(default_factory=time.time)


@dataclass(frozen=True)
class Step:
    """Consecutive requests sent to the writer together, with the shadow challenger's result
    for their rows (``challenger`` row by row, or ``challenger_error``) when one was scored."""

    requests: list[ScoredRequest]
    challenger_version: str | None = None
    challenger: list[Any] | None = None
    challenger_error: str | None = None


@dataclass(frozen=True)
class Written:
    """The writer's answer to a step: rows appended, metric counts, or why it failed."""

    rows: int
    counts: Counts
    error: str | None = None


def private_row(row: Row, drop: list[str], hashed: list[str], salt: str = "") -> Row:
    """``row`` without the ``drop`` columns and with ``hashed`` ones as SHA-256 (16 hex)."""
    kept = {name: value for name, value in row.items() if name not in drop}
    for name in (c for c in hashed if c in kept and kept[c] is not None):
        kept[name] = hashlib.sha256(f"{salt}{kept[name]}".encode()).hexdigest()[:16]
    return kept


def render_lines(step: Step, drop: list[str], hashed: list[str]) -> bytes:
    """One flat JSON object per scored row of ``step``, newline-terminated.

    The fields a request's rows share are serialised once, and each row's inputs once, then the
    pieces are joined: a dict merged per row and serialised whole cost five times as much.
    """
    shadow: dict[str, Any] = {}
    if step.challenger_error is not None:
        shadow["challenger_error"] = step.challenger_error
    elif step.challenger is not None:
        shadow[CHALLENGER_VERSION] = step.challenger_version
    # The log's own fields after the inputs; with those before them (``_meta``, ``row``), the
    # names a feature must not have for its rows to take the joined path.
    tail_fields = {PREDICTION, *shadow, *([CHALLENGER] if step.challenger is not None else [])}
    lines: list[bytes] = []
    index = 0
    for request in step.requests:
        meta = _meta(request)
        inputs = request.rows
        if drop or hashed:
            inputs = [private_row(row, drop, hashed) for row in inputs]
        log_fields = {*meta, ROW, *tail_fields}
        if inputs and not log_fields.isdisjoint(inputs[0]):  # a feature shares a field's name
            lines += _merged_lines(meta, inputs, request.predictions, shadow, step, index)
            index += len(inputs)
            continue
        head = orjson.dumps(meta)[:-1] + b',"' + ROW.encode() + b'":'
        for number, (row, prediction) in enumerate(zip(inputs, request.predictions, strict=True)):
            tail: dict[str, Any] = {PREDICTION: prediction, **shadow}
            if step.challenger is not None:
                tail[CHALLENGER] = step.challenger[index]
            inputs_text = orjson.dumps(row, option=JSON_OPTIONS_INPUTS)[1:-1]  # without { }
            tail_text = orjson.dumps(tail, option=JSON_OPTIONS)[1:]  # without {
            separator = b"," if inputs_text else b""
            lines.append(b"%s%d%s%s,%s" % (head, number, separator, inputs_text, tail_text))
            index += 1
    return b"".join(lines)


def _meta(request: ScoredRequest) -> dict[str, Any]:
    return {
        REQUEST_ID: request.request_id,
        "timestamp": datetime.fromtimestamp(request.received, UTC).isoformat(
            timespec="milliseconds"
        ),
        "model_version": request.model_version,
        "served_by": request.served_by,
        "latency_ms": round(request.latency_ms, 3),
    }


def _merged_lines(
    meta: dict[str, Any],
    inputs: list[Row],
    predictions: list[Any],
    shadow: dict[str, Any],
    step: Step,
    index: int,
) -> list[bytes]:
    """Lines of rows whose feature names collide with log fields: merged as dicts, so that each
    name appears once (the log's own field wins where it comes later)."""
    lines = []
    for number, (row, prediction) in enumerate(zip(inputs, predictions, strict=True)):
        record = {**meta, ROW: number, **row, PREDICTION: prediction, **shadow}
        if step.challenger is not None:
            record[CHALLENGER] = step.challenger[index + number]
        lines.append(orjson.dumps(record, option=JSON_OPTIONS))
    return lines


def append_rotating(path: Path, data: bytes, max_bytes: int, backups: int) -> None:
    """Append ``data`` to ``path``; first, if that would pass ``max_bytes``, shift the file to
    ``path.1`` (``.1`` to ``.2``, ... keeping ``backups`` of them; with none, start over).

    The standard library's ``RotatingFileHandler`` is safe for threads, not processes: two
    workers each rotated the file under the other. Here an exclusive lock on ``path.lock``
    covers the size check, the rotation and the write, and the file is opened per append.
    """
    with path.with_name(path.name + ".lock").open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
        size = path.stat().st_size if path.exists() else 0
        if size and size + len(data) > max_bytes:
            for number in range(backups - 1, 0, -1):
                older = path.with_name(f"{path.name}.{number}")
                if older.exists():
                    older.replace(path.with_name(f"{path.name}.{number + 1}"))
            if backups:
                path.replace(path.with_name(f"{path.name}.1"))
            else:
                path.unlink()
        with path.open("ab") as handle:
            handle.write(data)


def write_step(step: Step, settings: MonitoringSettings, checks: InputChecks) -> Written:
    """Append ``step`` to the log; the metric counts of its rows."""
    text = render_lines(step, settings.drop_columns, settings.hash_columns)
    append_rotating(settings.log_path, text, settings.log_max_bytes, settings.log_backups)
    counts = checks.count(step.requests, step.challenger)
    return Written(rows=sum(len(request.rows) for request in step.requests), counts=counts)


def run(connection: Connection, settings: MonitoringSettings, checks: InputChecks) -> None:
    """The writer process: write each step received and answer with :class:`Written`, until
    ``None`` or the worker's end of the pipe closes."""
    # Ctrl-C reaches the whole process group: the worker stops us (after its last step).
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if settings.writer_nice:
        os.nice(settings.writer_nice)
    while True:
        try:
            step = connection.recv()
        except EOFError:  # the worker is gone
            return
        if step is None:
            return
        try:
            answer = write_step(step, settings, checks)
        except Exception as error:  # answered to the worker, which logs it
            answer = Written(rows=0, counts={}, error=f"{type(error).__name__}: {error}")
        connection.send(answer)
