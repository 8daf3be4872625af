"""The prediction log: append-only JSON lines, rotated by size, written off the request path.

The service hands each scored request to :meth:`PredictionLog.submit`, which only appends it
to a bounded deque (no lock, no thread wake-up: a ``queue.Queue`` notifies a condition on every
put, which showed in profiles of the service); one background thread, once per
``flush_seconds``, turns what gathered into JSON lines (after dropping or hashing the private
columns), scores the shadow challenger when there is one, and appends the lines through
:class:`logging.handlers.RotatingFileHandler`. A full deque drops the request and counts it, so
logging can never slow down or fail a request.

One flat JSON object per line and per scored row: ``request_id``, ``row`` (its index in the
request), ``timestamp``, ``model_version``, ``served_by`` (champion, or the fallback that
answered), ``latency_ms``, the input features, ``prediction`` and, when a challenger was scored
in shadow, ``challenger_prediction`` and ``challenger_version``. Flat rows are read back as a
table by :func:`read_log`.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from logging.handlers import RotatingFileHandler
from pathlib import Path
from typing import Any

import orjson
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


def private_row(row: Row, drop: list[str], hashed: list[str], salt: str = "") -> Row:
    """``row`` without the ``drop`` columns and with ``hashed`` ones as SHA-256 (16 hex)."""
    kept = {name: value for name, value in row.items() if name not in drop}
    for name in (c for c in hashed if c in kept and kept[c] is not None):
        kept[name] = hashlib.sha256(f"{salt}{kept[name]}".encode()).hexdigest()[:16]
    return kept


# Observer: sees each batch of logged rows in the background thread (e.g. live metrics): the
# features as the model got them, and per row the prediction, ``served_by`` and, with a
# shadow challenger, its prediction.
Observer = Callable[[pd.DataFrame, pd.DataFrame], None]
# Requests written per pass of the background thread, at most.
BATCH_SIZE = 1000
# Non-ASCII text as is, NumPy scalars as numbers, NaN (not valid JSON) as null.
JSON_OPTIONS = orjson.OPT_APPEND_NEWLINE | orjson.OPT_SERIALIZE_NUMPY
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
        self._pending: deque[ScoredRequest] = deque()
        self._submitted = 0  # requests accepted by submit()
        self._done = 0  # ... and handled by the thread since
        self._closing = threading.Event()
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
        """Queue ``request`` for logging; ``False`` (and counted) when the queue is full.

        Called from the event loop's thread only; ``deque.append`` is atomic.
        """
        if len(self._pending) >= self.settings.queue_size:
            self.dropped += 1
            return False
        self._pending.append(request)
        self._submitted += 1
        return True

    def close(self, timeout: float = 10.0) -> None:
        """Write what is queued, then stop the thread and close the file."""
        self._closing.set()
        self._thread.join(timeout)
        self._handler.close()

    def flush(self, timeout: float = 30.0) -> None:
        """Block until every request submitted so far is written (tests and shutdown)."""
        deadline = time.monotonic() + timeout
        while self._done < self._submitted and time.monotonic() < deadline:
            time.sleep(0.01)

    def table(self, requests: list[ScoredRequest]) -> tuple[pd.DataFrame, pd.DataFrame, bytes]:
        """For a batch of requests: the model's features as one frame, the outputs per row
        (for the observer), and the JSON lines to append.

        The frame is built once per batch and the challenger scores it in one call; each line
        is one dict serialised by orjson (a few microseconds a row, where pandas' JSON writer
        and the frame it needs cost ten times more and showed as lost throughput).
        """
        # One table per run of requests with the same converter (the same model contract).
        features = pd.concat(
            [
                to_frame([row for request in run for row in request.rows])
                for to_frame, run in itertools.groupby(requests, key=lambda r: r.to_frame)
            ],
            ignore_index=True,
        )
        outputs = pd.DataFrame(
            {
                PREDICTION: [p for r in requests for p in r.predictions],
                "served_by": [r.served_by for r in requests for _ in r.rows],
            }
        )
        shadow: dict[str, Any] = {}
        challenger: list[Any] | None = None
        if self.shadow is not None:
            try:
                scored = self.shadow(features)
            except Exception as error:  # a broken challenger must not stop the log
                shadow["challenger_error"] = f"{type(error).__name__}: {error}"
            else:
                if scored is not None:
                    shadow[CHALLENGER_VERSION], challenger = scored
                    outputs[CHALLENGER] = challenger
        return features, outputs, self._lines(requests, challenger, shadow)

    def _lines(
        self, requests: list[ScoredRequest], challenger: list[Any] | None, shadow: dict[str, Any]
    ) -> bytes:
        drop, hashed = self.settings.drop_columns, self.settings.hash_columns
        lines = []
        index = 0
        for request in requests:
            meta = {
                REQUEST_ID: request.request_id,
                "timestamp": datetime.fromtimestamp(request.received, UTC).isoformat(
                    timespec="milliseconds"
                ),
                "model_version": request.model_version,
                "served_by": request.served_by,
                "latency_ms": round(request.latency_ms, 3),
            }
            for number, (row, prediction) in enumerate(
                zip(request.rows, request.predictions, strict=True)
            ):
                inputs = private_row(row, drop, hashed) if drop or hashed else row
                record = {**meta, ROW: number, **inputs, PREDICTION: prediction, **shadow}
                if challenger is not None:
                    record[CHALLENGER] = challenger[index]
                lines.append(orjson.dumps(record, option=JSON_OPTIONS))
                index += 1
        return b"".join(lines)

    def _run(self) -> None:
        while True:
            # Let requests gather: the per-batch pandas work then costs little per request.
            closing = self._closing.wait(max(self.settings.flush_seconds, 0.01))
            while self._pending:
                count = min(BATCH_SIZE, len(self._pending))
                batch = [self._pending.popleft() for _ in range(count)]
                try:
                    self._write(batch)
                except Exception:  # keep the thread alive; the service must go on answering
                    log.exception("could not write %d prediction log records", len(batch))
                finally:
                    self._done += len(batch)
            if closing:
                return

    def _write(self, requests: list[ScoredRequest]) -> None:
        for step in _steps(requests):
            features, outputs, text = self.table(step)
            self._handler.emit(logging.makeLogRecord({"msg": text.decode().rstrip("\n")}))
            self.written += len(outputs)
            if self.observe is not None:
                self.observe(features, outputs)


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
