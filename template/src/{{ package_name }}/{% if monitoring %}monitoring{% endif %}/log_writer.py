"""The process that writes the prediction log.

A service worker hands it steps of scored requests through a pipe (:class:`Step`), column by
column: the numeric inputs of all their rows as one array, made of the arrays the model read,
written straight into a block of shared memory that the two processes map (:class:`Slab`), so
the pipe only carries the requests' fields and predictions. (Pickling a megabyte of numbers and
pushing it through a 64 KB pipe cost the worker more than building the step.) A step too large
for the block, or a system without shared memory, sends its numbers through the pipe.

The writer does all the work that costs CPU: one JSON line per request (private columns dropped
or hashed), the counts of the live input and prediction metrics (answered back to the worker,
which owns the Prometheus counters), and the append with size-based rotation. It runs beside
the worker, on another core when there is one.

A line holds a request's inputs column by column (``"inputs": {"age": [31, 40], ...}``) beside
its ``predictions``. One object per row repeated the feature names and the request's fields in
every row: for requests of 100 rows of 30 features, this layout takes about a fifth of the
bytes and of the writer's CPU. :func:`read_log` (in ``prediction_log.py``) gives back one table
row per scored row.

This module imports only NumPy, orjson and filelock (the process starts in about half a
second), and several workers' writers may share one log file: :func:`append_rotating` takes a
file lock.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hmac
import math
import os
import shutil
import signal
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from multiprocessing import shared_memory
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import numpy as np
import orjson
from filelock import lock_descriptor, unlock_descriptor

from ..core.rows import Row, numeric_block
from ..io.files import narrow_to_private, open_private_append
from .input_checks import Counts, InputChecks
from .settings import MonitoringSettings

Array = np.ndarray[Any, Any]
REQUEST_ID = "request_id"
ROW = "row"
CHALLENGER = "challenger_prediction"
CHALLENGER_VERSION = "challenger_version"
CHALLENGER_ERROR = "challenger_error"
# A line's columns: one list per input feature, the predictions, the challenger's.
INPUTS = "inputs"
PREDICTIONS = "predictions"
CHALLENGER_PREDICTIONS = "challenger_predictions"
# Non-ASCII text as is, NumPy arrays as lists, NaN (not valid JSON) as null.
JSON_OPTIONS = orjson.OPT_APPEND_NEWLINE | orjson.OPT_SERIALIZE_NUMPY
# The shared block for a step's numbers: a full step (4096 rows) of up to 128 numeric features.
SLAB_BYTES = 4 << 20
# Seconds between tries while another worker's writer holds the log's lock (an append is short).
LOCK_POLL_SECONDS = 0.002


@dataclass(frozen=True)
class ScoredRequest:
    """What the service knows right after answering; serialised later, by the writer.

    ``numbers`` are the numeric inputs as the model read them (rows x ``numeric``, NaN where
    missing); without them the log reads its numeric columns from ``rows``. With them, ``rows``
    may be empty when the model has no other inputs and no challenger scores in shadow: rows
    kept waiting for the log are a second of requests' Python objects that the allocator
    cannot reuse, which cost a service 5-8% of its throughput at 100 rows a request.
    """

    request_id: str
    rows: Sequence[Row]
    predictions: list[Any]
    model_version: str
    served_by: str
    latency_ms: float
    received: float = field(default_factory=time.time)
    numbers: Array | None = None
    numeric: Sequence[str] = ()


@dataclass(frozen=True)
class Step:
    """Consecutive requests sent to the writer together, column by column: the numeric inputs
    of all their rows as one array (pickled as one copy of memory), the other inputs and the
    predictions as one list each; ``sizes`` says how many rows are each request's. With a
    shadow challenger, its predictions for those rows (``challenger``) or ``challenger_error``.
    """

    request_ids: list[str]
    received: list[float]
    model_versions: list[str]
    served_by: list[str]
    latency_ms: list[float]
    sizes: list[int]
    numeric: tuple[str, ...]
    # (len(numeric), rows): each column one contiguous array. None: in the worker's Slab.
    numbers: Array | None
    others: dict[str, list[Any]]  # the inputs that are not numbers, column by column
    predictions: list[Any]
    challenger_version: str | None = None
    challenger: list[Any] | None = None
    challenger_error: str | None = None

    @property
    def rows(self) -> int:
        return len(self.predictions)

    def read_numbers(self) -> Array:
        """``numbers``; raises while they are still in the worker's slab (:func:`resolved`)."""
        if self.numbers is None:
            raise ValueError("the step's numbers are in shared memory: resolve it first")
        return self.numbers


class Slab:
    """A block of shared memory that carries steps' numbers from a worker to its writer.

    The worker creates it (:meth:`create`; ``None`` where the system has no shared memory)
    and unlinks it on close; the writer attaches by name. One step at a time: the worker
    writes the next one only after the writer has answered the last.
    """

    def __init__(self, memory: shared_memory.SharedMemory) -> None:
        self.memory = memory
        self.name = memory.name

    @classmethod
    def create(cls, size: int = SLAB_BYTES) -> Slab | None:
        """A new block; ``None`` where shared memory is missing or short of room (a container's
        ``/dev/shm`` is 64 MB unless set otherwise). Every page is written now: writing to a
        page that a full tmpfs cannot back would kill the process (SIGBUS), not raise."""
        room = shared_memory_room()
        if room is not None and room < 4 * size:  # leave room for the others
            return None
        try:
            memory = shared_memory.SharedMemory(create=True, size=size)
        except OSError:
            return None
        if memory.buf is not None:  # always, once created
            memory.buf[:size] = bytes(size)
        return cls(memory)

    @classmethod
    def attach(cls, name: str) -> Slab:
        return cls(shared_memory.SharedMemory(name=name))

    def array(self, features: int, rows: int) -> Array | None:
        """A (features, rows) float array over the block; ``None`` if it does not fit."""
        if features * rows * 8 > self.memory.size:
            return None
        return np.ndarray((features, rows), dtype=float, buffer=self.memory.buf)

    def close(self, *, unlink: bool = False) -> None:
        with contextlib.suppress(BufferError):  # a view is left: the process ends soon anyway
            self.memory.close()
        if unlink:  # the name goes even if the mapping could not close
            with contextlib.suppress(FileNotFoundError):  # gone already
                self.memory.unlink()


def shared_memory_room() -> int | None:
    """Free bytes for shared memory where the system tells (Linux: the tmpfs ``/dev/shm``)."""
    with contextlib.suppress(OSError):  # not mounted
        if sys.platform == "linux":
            return shutil.disk_usage("/dev/shm").free  # noqa: S108 (read, never written by path)
    return None


def layout(request: ScoredRequest) -> tuple[str, ...] | None:
    """The numeric columns a request comes with (``None``: none, read them from its rows);
    the requests of a :class:`Step` share one."""
    return tuple(request.numeric) if request.numbers is not None else None


def make_step(
    requests: Sequence[ScoredRequest],
    numeric: Sequence[str] = (),
    *,
    challenger_version: str | None = None,
    challenger: list[Any] | None = None,
    challenger_error: str | None = None,
    slab: Slab | None = None,
) -> Step:
    """``requests`` (of one :func:`layout`) column by column. Requests without their numbers
    have the ``numeric`` columns (the reference's numeric features) read from their rows.
    With a ``slab`` that the numbers fit in, they are written there and the step has none."""
    rows = [row for request in requests for row in request.rows]
    given = layout(requests[0]) if requests else None
    numbers: Array | None
    if given is not None:
        names = given
        # Feature-major straight away, in C order (orjson needs it): one pass over each
        # request's small block, in cache. Concatenating, then transposing the whole step
        # took fifteen times as long.
        blocks = [r.numbers.T for r in requests if r.numbers is not None]
        total = sum(block.shape[1] for block in blocks)
        shared = slab.array(len(names), total) if slab is not None else None
        columns = shared if shared is not None else np.empty((len(names), total))
        np.concatenate(blocks, axis=1, out=columns)
        numbers = None if shared is not None else columns
    else:
        present = {name for row in rows[:1] for name in row}
        names = tuple(name for name in numeric if name in present)
        try:
            columns = np.ascontiguousarray(numeric_block(rows, list(names)).T)
        except (TypeError, ValueError):  # not numbers after all: log them as they are
            names, columns = (), np.zeros((0, len(rows)))
        numbers = columns
    taken = set(names)
    other_names: dict[str, None] = {}  # in the order of the requests' first rows
    for request in (r for r in requests if r.rows):
        other_names.update((name, None) for name in request.rows[0] if name not in taken)
    return Step(
        request_ids=[request.request_id for request in requests],
        received=[request.received for request in requests],
        model_versions=[request.model_version for request in requests],
        served_by=[request.served_by for request in requests],
        latency_ms=[request.latency_ms for request in requests],
        sizes=[len(request.predictions) for request in requests],
        numeric=names,
        numbers=numbers,
        others={name: [row.get(name) for row in rows] for name in other_names},
        predictions=[p for request in requests for p in request.predictions],
        challenger_version=challenger_version,
        challenger=challenger,
        challenger_error=challenger_error,
    )


@dataclass(frozen=True)
class Written:
    """The writer's answer to a step: rows appended, metric counts, or why it failed."""

    rows: int
    counts: Counts
    error: str | None = None


def hashed_value(value: Any, key: bytes) -> str | None:
    """HMAC-SHA-256 under ``key`` (16 hex) of a private value; a missing one stays missing."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    return hmac.digest(key, str(value).encode(), "sha256").hex()[:16]


def _columns(
    step: Step, drop: list[str], hashed: list[str], hash_key: bytes | None
) -> dict[str, Any]:
    """Feature -> its values for all the step's rows, private columns dropped or hashed.

    Numbers stay NumPy arrays, which orjson writes without a Python float for each value,
    except in steps of small requests, where one ``tolist`` costs less than an array each.
    """
    given = step.read_numbers()
    small = step.rows < 4 * len(step.sizes)
    numbers = given.tolist() if small else given
    columns: dict[str, Any] = dict(zip(step.numeric, numbers, strict=True))
    columns.update(step.others)
    for name in drop:
        columns.pop(name, None)
    for name in (c for c in hashed if c in columns):
        if not hash_key:  # never a hash that anyone can compute: see MonitoringSettings
            raise ValueError(f"column {name!r} is to be hashed, and there is no key")
        columns[name] = [hashed_value(value, hash_key) for value in list(columns[name])]
    return columns


def render_lines(
    step: Step, drop: list[str], hashed: list[str], hash_key: bytes | None = None
) -> bytes:
    """One JSON object per request of ``step``, newline-terminated: the request's fields, then
    its ``inputs`` and ``predictions`` column by column, then the challenger's. The ``hashed``
    columns are written as their HMAC under ``hash_key``."""
    columns = _columns(step, drop, hashed, hash_key)
    lines: list[bytes] = []
    start = 0
    for i, size in enumerate(step.sizes):
        end = start + size
        line: dict[str, Any] = {
            REQUEST_ID: step.request_ids[i],
            "timestamp": datetime.fromtimestamp(step.received[i], UTC).isoformat(
                timespec="milliseconds"
            ),
            "model_version": step.model_versions[i],
            "served_by": step.served_by[i],
            "latency_ms": round(step.latency_ms[i], 3),
            INPUTS: {name: values[start:end] for name, values in columns.items()},
            PREDICTIONS: step.predictions[start:end],
        }
        if step.challenger_error is not None:
            line[CHALLENGER_ERROR] = step.challenger_error
        elif step.challenger is not None:
            line[CHALLENGER_VERSION] = step.challenger_version
            line[CHALLENGER_PREDICTIONS] = step.challenger[start:end]
        lines.append(orjson.dumps(line, option=JSON_OPTIONS))
        start = end
    return b"".join(lines)


def append_rotating(path: Path, data: bytes, max_bytes: int, backups: int) -> None:
    """Append ``data`` to ``path``; first, if that would pass ``max_bytes``, shift the file to
    ``path.1`` (``.1`` to ``.2``, ... keeping ``backups`` of them; with none, start over).

    The standard library's ``RotatingFileHandler`` is safe for threads, not processes: two
    workers each rotated the file under the other. Here an exclusive lock on ``path.lock``
    covers the size check, the rotation and the write, and the file is opened per append.
    The log and its backups are not readable by all (:func:`open_private_append`).
    """
    with open_private_append(path.with_name(path.name + ".lock")) as lock:
        lock_descriptor(lock.fileno(), poll_interval=LOCK_POLL_SECONDS)
        try:
            size = path.stat().st_size if path.exists() else 0
            if size and size + len(data) > max_bytes:
                for number in range(backups - 1, 0, -1):
                    older = path.with_name(f"{path.name}.{number}")
                    if older.exists():
                        narrow_to_private(older)  # e.g. written by an earlier version
                        older.replace(path.with_name(f"{path.name}.{number + 1}"))
                if backups:
                    path.replace(path.with_name(f"{path.name}.1"))
                else:
                    path.unlink()
            with open_private_append(path) as handle:
                handle.write(data)
        finally:  # Windows frees a lock some time after its file closes
            unlock_descriptor(lock.fileno())


def write_step(step: Step, settings: MonitoringSettings, checks: InputChecks) -> Written:
    """Append ``step`` to the log; the metric counts of its rows."""
    text = render_lines(
        step, settings.drop_columns, settings.hash_columns, settings.hash_key_bytes()
    )
    append_rotating(settings.log_path, text, settings.log_max_bytes, settings.log_backups)
    return Written(rows=step.rows, counts=checks.count(step))


def resolved(step: Step, slab: Slab | None) -> Step:
    """``step`` with its numbers, read from the worker's ``slab`` if they are there."""
    if step.numbers is not None:
        return step
    numbers = slab.array(len(step.numeric), step.rows) if slab is not None else None
    if numbers is None:
        raise ValueError("the step's numbers are in shared memory this writer cannot read")
    return dataclasses.replace(step, numbers=numbers)


def run(
    connection: Connection,
    settings: MonitoringSettings,
    checks: InputChecks,
    slab_name: str | None = None,
) -> None:
    """The writer process: write each step received and answer with :class:`Written`, until
    ``None`` or the worker's end of the pipe closes. ``slab_name``: the worker's :class:`Slab`."""
    # Ctrl-C and a service manager's SIGTERM reach the whole process group: the worker stops
    # us after its last step (or we stop when its end of the pipe closes).
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    if settings.writer_nice and hasattr(os, "nice"):  # Windows has no niceness
        os.nice(settings.writer_nice)
    slab = Slab.attach(slab_name) if slab_name is not None else None
    try:
        while True:
            try:
                step = connection.recv()
            except EOFError:  # the worker is gone
                return
            if step is None:
                return
            try:
                answer = write_step(resolved(step, slab), settings, checks)
            except Exception as error:  # answered to the worker, which logs it
                answer = Written(rows=0, counts={}, error=f"{type(error).__name__}: {error}")
            connection.send(answer)
    finally:
        if slab is not None:
            slab.close()  # the worker unlinks it
