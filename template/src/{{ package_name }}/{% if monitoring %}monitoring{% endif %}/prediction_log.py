"""The prediction log: append-only JSON lines, rotated by size, written off the request path.

The service hands each scored request to :meth:`PredictionLog.submit`, which only appends it
to a bounded deque (no lock, no thread wake-up: a ``queue.Queue`` notifies a condition on every
put, which showed in profiles of the service). Once per ``flush_seconds`` (or as soon as half
of ``queue_size`` rows wait) a background thread takes what gathered, scores the shadow
challenger on it when there is one, and sends it in steps of about ``ROWS_PER_STEP`` rows to the
writer process (``log_writer.py``), column by column (the numbers through shared memory), which
turns them into JSON lines (after dropping or hashing the private columns), appends them, and
answers with the counts of the live metrics. A full deque drops the request and counts it, so
logging can never slow down or fail a request.

One JSON object per line and per request: ``request_id``, ``timestamp``, ``model_version``,
``served_by`` (champion, canary, or the fallback that answered), ``latency_ms``, ``inputs``
(feature -> its values, one per row), ``predictions`` and, when a challenger was scored in
shadow, ``challenger_version`` and ``challenger_predictions``. :func:`read_log` gives back one
table row per scored row (``row`` is its index in the request, ``prediction`` and
``challenger_prediction`` its values), and reads the one-object-per-row lines of earlier
versions of this project as well.
"""

from __future__ import annotations

import contextlib
import json
import logging
import multiprocessing
import multiprocessing.util
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from datetime import datetime
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from pathlib import Path
from typing import Any

import pandas as pd

from ..core.rows import Row
from . import log_writer
from .input_checks import Counts, InputChecks
from .log_writer import (
    CHALLENGER,
    CHALLENGER_PREDICTIONS,
    CHALLENGER_VERSION,
    INPUTS,
    PREDICTION,
    PREDICTIONS,
    ROW,
    ScoredRequest,
    Slab,
    Step,
    Written,
    layout,
    make_step,
)
from .settings import MonitoringSettings

__all__ = [
    "CHALLENGER",
    "CHALLENGER_VERSION",
    "PREDICTION",
    "PredictionLog",
    "ScoredRequest",
    "read_log",
]

log = logging.getLogger(__name__)

# Shadow scorer: rows in, (model version, predictions) out; None when there is no challenger.
ShadowScorer = Callable[[Sequence[Row]], tuple[str, list[Any]] | None]
# Observer: the metric counts of each step written (called in the background thread).
Observer = Callable[[Counts], None]
# Requests taken from the deque per pass of the background thread, at most.
BATCH_SIZE = 1000
# Size of a step sent to the writer. Preparing and pickling a step holds the GIL from start to
# end (about 10 us a request, plus 0.1 ms per 100,000 numbers): bounded steps let the event
# loop answer requests in between (long ones showed as p99 latency).
ROWS_PER_STEP = 4096
REQUESTS_PER_STEP = 256


class PredictionLog:
    """The service's side of the prediction log; ``submit`` never blocks and never raises.

    The writer counts each step's rows, predictions and roles, and, against ``checks`` (the
    reference's ranges and categories; none: no such checks), missing and out-of-range inputs;
    ``observe`` receives those counts.
    """

    def __init__(
        self,
        settings: MonitoringSettings,
        shadow: ShadowScorer | None = None,
        observe: Observer | None = None,
        checks: InputChecks | None = None,
    ) -> None:
        self.settings = settings
        self.shadow = shadow
        self.observe = observe
        self.checks = checks if checks is not None else InputChecks(ranges={}, categories={})
        self.dropped = 0
        self.written = 0
        self._pending: deque[ScoredRequest] = deque()
        # Requests and rows accepted by submit() (only the event loop's thread adds), and
        # handled by the background thread since (only it adds): each counter has one writer.
        self._submitted = self._submitted_rows = 0
        self._done = self._done_rows = 0
        self._closing = threading.Event()
        # Set by submit() once half the queue is waiting: the thread writes before the next
        # tick, so that a burst of large requests is written, not dropped.
        self._wake = threading.Event()
        settings.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._slab = Slab.create()  # None: the numbers go through the pipe
        self._writer, self._connection = self._start_writer()
        self._thread = threading.Thread(target=self._run, name="prediction-log", daemon=True)
        self._thread.start()
        # Closed, at the latest, as the process exits: multiprocessing runs this before it stops
        # its daemon children, the writer among them (which ignores SIGTERM for that reason).
        multiprocessing.util.Finalize(self, self.close, exitpriority=10)

    def _start_writer(self) -> tuple[BaseProcess, Connection]:
        # A fresh interpreter ("spawn"): forking a worker that runs threads is not safe.
        context = multiprocessing.get_context("spawn")
        ours, theirs = context.Pipe()
        process = context.Process(
            target=log_writer.run,
            args=(theirs, self.settings, self.checks, self._slab.name if self._slab else None),
            name="prediction-log-writer",
            daemon=True,
        )
        process.start()
        theirs.close()
        return process, ours

    def submit(self, request: ScoredRequest) -> bool:
        """Queue ``request`` for logging; ``False`` (and counted) when its rows would pass
        ``queue_size`` (a request alone is always taken: a huge one must not be lost silently).

        Called from the event loop's thread only; ``deque.append`` is atomic.
        """
        waiting = self._submitted_rows - self._done_rows
        rows = len(request.predictions)
        if self._submitted > self._done and waiting + rows > self.settings.queue_size:
            self.dropped += 1
            return False
        self._pending.append(request)
        self._submitted += 1
        self._submitted_rows += rows
        if waiting > self.settings.queue_size // 2 and not self._wake.is_set():
            self._wake.set()
        return True

    def close(self, timeout: float = 10.0) -> None:
        """Write what is queued, then stop the thread and the writer process (again: no-op)."""
        self._closing.set()
        self._wake.set()
        self._thread.join(timeout)
        self._writer.join(timeout)
        if self._writer.is_alive():
            self._writer.kill()  # it ignores SIGTERM
        if self._slab is not None and not self._thread.is_alive():
            self._slab.close(unlink=True)

    def flush(self, timeout: float = 30.0) -> None:
        """Block until every request submitted so far is written (tests and shutdown)."""
        deadline = time.monotonic() + timeout
        while self._done < self._submitted and time.monotonic() < deadline:
            time.sleep(0.01)

    def step(self, requests: list[ScoredRequest]) -> Step:
        """``requests`` with the shadow challenger's predictions for their rows, if any."""
        numeric = list(self.checks.ranges)  # for requests that come without their numbers
        version: str | None = None
        predictions: list[Any] | None = None
        error_text: str | None = None
        if self.shadow is not None:
            try:
                scored = self.shadow([row for request in requests for row in request.rows])
            except Exception as error:  # a broken challenger must not stop the log
                error_text = f"{type(error).__name__}: {error}"
            else:
                version, predictions = scored if scored is not None else (None, None)
        return make_step(
            requests,
            numeric,
            challenger_version=version,
            challenger=predictions,
            challenger_error=error_text,
            slab=self._slab,
        )

    def _run(self) -> None:
        while True:
            # Let requests gather: fewer, larger steps cost less per request.
            self._wake.wait(max(self.settings.flush_seconds, 0.01))
            self._wake.clear()
            closing = self._closing.is_set()
            while self._pending:
                count = min(BATCH_SIZE, len(self._pending))
                batch = [self._pending.popleft() for _ in range(count)]
                for requests in _steps(batch):
                    try:
                        self._write(self.step(requests))
                    except Exception:  # keep the thread alive; the service must go on answering
                        log.exception("could not write %d prediction log records", len(requests))
                    finally:
                        self._done += len(requests)
                        self._done_rows += sum(len(request.predictions) for request in requests)
            if closing:
                self._stop_writer()
                return

    def _write(self, step: Step) -> None:
        """Send ``step`` to the writer and wait for its answer (the wait releases the GIL)."""
        if not self._writer.is_alive():
            log.error(
                "the prediction log writer stopped (exit code %s); restarting it",
                self._writer.exitcode,
            )
            self._connection.close()
            self._writer, self._connection = self._start_writer()
        self._connection.send(step)
        answer: Written = self._connection.recv()
        if answer.error is not None:
            raise OSError(f"prediction log writer: {answer.error}")
        self.written += answer.rows
        if self.observe is not None:
            self.observe(answer.counts)

    def _stop_writer(self) -> None:
        with contextlib.suppress(OSError):  # already gone
            self._connection.send(None)
        self._connection.close()


def _steps(requests: list[ScoredRequest]) -> Iterator[list[ScoredRequest]]:
    """Consecutive runs of at most ``REQUESTS_PER_STEP`` requests and about ``ROWS_PER_STEP``
    rows (a larger request alone), each of one :func:`layout`."""
    step: list[ScoredRequest] = []
    rows = 0
    for request in requests:
        size = len(request.predictions)
        full = rows + size > ROWS_PER_STEP or len(step) == REQUESTS_PER_STEP
        if step and (full or layout(request) != layout(step[0])):
            yield step
            step, rows = [], 0
        step.append(request)
        rows += size
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


def _table_rows(line: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    """A line's rows as columns: (row count, name -> list of values, or one value for all).

    A request line's fields come first, then ``row``, the inputs and the predictions, so a
    feature named like a log field gives way to the field. A line of an earlier version of
    the log (one object per row) is one row as it stands.
    """
    if INPUTS not in line:
        return 1, line
    count = len(line[PREDICTIONS])
    fields = {
        key: value
        for key, value in line.items()
        if key not in (INPUTS, PREDICTIONS, CHALLENGER_PREDICTIONS)
    }
    columns: dict[str, Any] = {**fields, ROW: list(range(count)), **line[INPUTS]}
    columns[PREDICTION] = line[PREDICTIONS]
    if CHALLENGER_PREDICTIONS in line:
        columns[CHALLENGER] = line[CHALLENGER_PREDICTIONS]
    columns.update(fields)  # a request's field wins over a feature of the same name
    return count, columns


def read_log(path: Path, since: datetime | None = None) -> pd.DataFrame:
    """The logged rows (and those of the rotated backups) as a table, oldest first.

    One table row per scored row: the request's fields, ``row`` (its index in the request),
    the input features, ``prediction`` and, when the challenger was scored in shadow,
    ``challenger_prediction`` beside it. ``since`` keeps only requests logged at or after
    that time.
    """
    table: dict[str, list[Any]] = {}
    total = 0
    for line in _lines(log_files(path)):
        if since is not None and datetime.fromisoformat(line["timestamp"]) < since:
            continue
        count, columns = _table_rows(line)
        for name, values in columns.items():
            column = table.setdefault(name, [None] * total)
            column.extend(values if isinstance(values, list) else [values] * count)
        total += count
        for column in table.values():  # names this line did not have
            column.extend([None] * (total - len(column)))
    if not total:
        window = f" since {since.isoformat()}" if since else ""
        raise ValueError(f"{path}: no predictions logged{window}")
    return pd.DataFrame(table)
