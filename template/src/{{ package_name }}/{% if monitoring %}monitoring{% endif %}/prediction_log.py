"""The prediction log: append-only JSON lines, rotated by size, written off the request path.

The service hands each scored request to :meth:`PredictionLog.submit`, which only puts it on a
bounded queue; one background thread, once per ``flush_seconds``, turns what gathered into JSON
lines (after dropping or hashing the private columns), scores the shadow challenger when there
is one, and appends the lines through :class:`logging.handlers.RotatingFileHandler`. A full
queue drops the request and counts it, so logging can never slow down or fail a request.

One flat JSON object per line and per scored row: ``request_id``, ``row`` (its index in the
request), ``timestamp``, ``model_version``, ``served_by`` (champion, or the fallback that
answered), ``latency_ms``, the input features, ``prediction`` and, when a challenger was scored
in shadow, ``challenger_prediction`` and ``challenger_version``. Flat rows are written by
pandas in one call per batch and read back as a table.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import logging
import queue
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from logging.handlers import RotatingFileHandler
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .settings import MonitoringSettings

log = logging.getLogger(__name__)

REQUEST_ID = "request_id"
ROW = "row"
CHALLENGER = "challenger_prediction"
CHALLENGER_VERSION = "challenger_version"
PREDICTION = "prediction"

# Shadow scorer: features in, (model version, predictions) out; None when there is no challenger.
ShadowScorer = Callable[[pd.DataFrame], tuple[str, list[Any]] | None]


Row = dict[str, Any]


def records_frame(rows: list[Row]) -> pd.DataFrame:
    """Rows (one dict per row) as a table: the default ``ScoredRequest.to_frame``."""
    return pd.DataFrame.from_records(rows)


@dataclass(frozen=True)
class ScoredRequest:
    """What the service knows right after answering; serialised later, in the background.

    ``rows`` are the request's validated inputs; ``to_frame`` turns rows into the model's
    input table (the service passes its contract's), once per batch of requests.
    """

    request_id: str
    rows: list[Row]
    predictions: list[Any]
    model_version: str
    served_by: str
    latency_ms: float
    to_frame: Callable[[list[Row]], pd.DataFrame] = records_frame
    received: float = field(default_factory=time.time)


def private_inputs(
    features: pd.DataFrame, drop: list[str], hashed: list[str], salt: str = ""
) -> pd.DataFrame:
    """``features`` without the ``drop`` columns and with ``hashed`` ones as SHA-256 (16 hex)."""
    frame = features.drop(columns=[c for c in drop if c in features.columns])
    for name in (c for c in hashed if c in frame.columns):
        frame[name] = [
            None if pd.isna(v) else hashlib.sha256(f"{salt}{v}".encode()).hexdigest()[:16]
            for v in frame[name]
        ]
    return frame


# Observer: sees each batch of logged rows in the background thread (e.g. live metrics): the
# features as the model got them, and the table written to the log.
Observer = Callable[[pd.DataFrame, pd.DataFrame], None]
# Requests written per pass of the background thread, at most.
BATCH_SIZE = 1000
# Rows turned into log lines per step. Each pandas call holds the GIL from start to end: small
# steps let the event loop answer requests in between (long steps showed as p99 latency).
ROWS_PER_STEP = 256


class PredictionLog:
    """Background writer of the prediction log; ``submit`` never blocks and never raises."""

    def __init__(
        self,
        settings: MonitoringSettings,
        shadow: ShadowScorer | None = None,
        observe: Observer | None = None,
    ) -> None:
        self.settings = settings
        self.shadow = shadow
        self.observe = observe
        self.dropped = 0
        self.written = 0
        self._queue: queue.Queue[ScoredRequest | None] = queue.Queue(settings.queue_size)
        settings.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._handler = RotatingFileHandler(
            settings.log_path,
            maxBytes=settings.log_max_bytes,
            backupCount=settings.log_backups,
            encoding="utf-8",
        )
        self._handler.setFormatter(logging.Formatter("%(message)s"))
        self._thread = threading.Thread(target=self._run, name="prediction-log", daemon=True)
        self._thread.start()

    def submit(self, request: ScoredRequest) -> bool:
        """Queue ``request`` for logging; ``False`` (and counted) when the queue is full."""
        try:
            self._queue.put_nowait(request)
        except queue.Full:
            self.dropped += 1
            return False
        return True

    def close(self, timeout: float = 10.0) -> None:
        """Write what is queued, then stop the thread and close the file."""
        self._queue.put(None)
        self._thread.join(timeout)
        self._handler.close()

    def flush(self) -> None:
        """Block until every queued request is written (tests and shutdown)."""
        self._queue.join()

    def table(self, requests: list[ScoredRequest]) -> tuple[pd.DataFrame, pd.DataFrame]:
        """The model's features of ``requests`` as one frame, and the rows to log.

        The work is done once per batch (one concatenation, one pass of the privacy rules, one
        challenger prediction, one C-level JSON writer): per-request Python work would cost
        the service more CPU than the requests themselves.
        """
        # One table per run of requests with the same converter (the same model contract).
        features = pd.concat(
            [
                to_frame([row for request in run for row in request.rows])
                for to_frame, run in itertools.groupby(requests, key=lambda r: r.to_frame)
            ],
            ignore_index=True,
        )
        counts = [len(r.rows) for r in requests]

        def each(values: list[Any]) -> np.ndarray[Any, Any]:
            return np.repeat(np.array(values, dtype=object), counts)

        meta = pd.DataFrame(
            {
                REQUEST_ID: each([r.request_id for r in requests]),
                ROW: np.concatenate([np.arange(n) for n in counts]),
                "timestamp": each(
                    [
                        datetime.fromtimestamp(r.received, UTC).isoformat(timespec="milliseconds")
                        for r in requests
                    ]
                ),
                "model_version": each([r.model_version for r in requests]),
                "served_by": each([r.served_by for r in requests]),
                "latency_ms": np.repeat([round(r.latency_ms, 3) for r in requests], counts),
            }
        )
        inputs = private_inputs(features, self.settings.drop_columns, self.settings.hash_columns)
        table = pd.concat([meta, inputs], axis=1)
        table[PREDICTION] = [p for r in requests for p in r.predictions]
        if self.shadow is not None:
            try:
                scored = self.shadow(features)
            except Exception as error:  # a broken challenger must not stop the log
                table["challenger_error"] = f"{type(error).__name__}: {error}"
            else:
                if scored is not None:
                    table[CHALLENGER_VERSION] = scored[0]
                    table[CHALLENGER] = scored[1]
        return features, table

    def _run(self) -> None:
        while True:
            batch = [self._queue.get()]
            # Let requests gather: the per-batch pandas work then costs little per request.
            if batch[0] is not None:
                time.sleep(self.settings.flush_seconds)
            while len(batch) < BATCH_SIZE:  # take whatever else is waiting, up to a limit
                try:
                    batch.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            requests = [request for request in batch if request is not None]
            try:
                if requests:
                    self._write(requests)
            except Exception:  # keep the thread alive; the service must go on answering
                log.exception("could not write %d prediction log records", len(requests))
            finally:
                for _ in batch:
                    self._queue.task_done()
            if len(requests) < len(batch):  # close() queued a None
                return

    def _write(self, requests: list[ScoredRequest]) -> None:
        for step in _steps(requests):
            features, table = self.table(step)
            text = table.to_json(orient="records", lines=True, force_ascii=False)
            self._handler.emit(logging.makeLogRecord({"msg": text.rstrip("\n")}))
            self.written += len(table)
            if self.observe is not None:
                self.observe(features, table)


def _steps(requests: list[ScoredRequest]) -> Iterator[list[ScoredRequest]]:
    """Consecutive runs of requests of about ``ROWS_PER_STEP`` rows (a larger request alone)."""
    step: list[ScoredRequest] = []
    rows = 0
    for request in requests:
        if step and rows + len(request.rows) > ROWS_PER_STEP:
            yield step
            step, rows = [], 0
        step.append(request)
        rows += len(request.rows)
    if step:
        yield step


def log_files(path: Path) -> list[Path]:
    """The log and its rotated backups (``x.jsonl.1`` ...), oldest first."""
    backups = [p for p in path.parent.glob(f"{path.name}.*") if p.suffix[1:].isdigit()]
    backups.sort(key=lambda p: int(p.suffix[1:]), reverse=True)
    return [*backups, path] if path.is_file() else backups


def _lines(paths: list[Path]) -> Iterator[dict[str, Any]]:
    for path in paths:
        with path.open(encoding="utf-8") as handle:
            for number, text in enumerate(handle, start=1):
                if not text.strip():
                    continue
                try:
                    yield json.loads(text)
                except json.JSONDecodeError:
                    log.warning("%s:%d: skipped a line that is not JSON", path, number)


def read_log(path: Path, since: datetime | None = None) -> pd.DataFrame:
    """The logged rows (and those of the rotated backups) as a table, oldest first.

    The challenger's prediction, when it was scored in shadow, sits beside the champion's in
    ``challenger_prediction``. ``since`` keeps only requests logged at or after that time.
    """
    rows = [
        line
        for line in _lines(log_files(path))
        if since is None or datetime.fromisoformat(line["timestamp"]) >= since
    ]
    if not rows:
        window = f" since {since.isoformat()}" if since else ""
        raise ValueError(f"{path}: no predictions logged{window}")
    return pd.DataFrame(rows)


def write_feedback(path: Path, records: list[dict[str, Any]]) -> int:
    """Append ground-truth records (``request_id``, ``row``, ``label``) as JSON lines.

    One ``write`` of whole lines to a file opened for appending: several workers (or the CLI
    beside the service) can add feedback to the same file without interleaving.
    """
    text = "".join(json.dumps(record, default=str) + "\n" for record in records)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a", encoding="utf-8") as handle:
        handle.write(text)
    return len(records)


def append_feedback(path: Path, labels: pd.DataFrame, target: str) -> int:
    """Append late ground truth (``request_id``, optional ``row``, ``target``) as JSON lines."""
    missing = [c for c in (REQUEST_ID, target) if c not in labels.columns]
    if missing:
        raise ValueError(f"feedback needs the column(s) {missing}")
    frame = labels.assign(**{ROW: labels[ROW] if ROW in labels.columns else 0})
    records = [
        {REQUEST_ID: str(request_id), ROW: int(row), "label": label}
        for request_id, row, label in frame[[REQUEST_ID, ROW, target]].itertuples(index=False)
    ]
    return write_feedback(path, records)


def join_feedback(predictions: pd.DataFrame, feedback_path: Path, target: str) -> pd.DataFrame:
    """Add the ``target`` column from the feedback file by request id and row (latest wins)."""
    if not feedback_path.is_file():
        return predictions
    labels = pd.DataFrame(list(_lines([feedback_path])))
    if labels.empty:
        return predictions
    labels = labels.drop_duplicates([REQUEST_ID, ROW], keep="last").rename(
        columns={"label": target}
    )
    joined = predictions.drop(columns=[target], errors="ignore").merge(
        labels[[REQUEST_ID, ROW, target]], on=[REQUEST_ID, ROW], how="left"
    )
    return joined
