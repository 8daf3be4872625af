"""The access log: one JSON line per request, written in batches.

Through the logging module, a line cost the service about 50 us a request (a ``LogRecord``,
the handler chain, the JSON formatter, a flush of stderr): a sixth of the CPU of a one-row
``/predict``. Here the request middleware appends the request's fields to a list, and every
``flush_seconds`` the event loop writes what gathered in one ``write``, as nginx's
``access_log ... buffer= flush=`` does. The lines read as the ``logs.py`` formatter writes the
app's other lines (same keys, same time format), so log tooling sees one format.
"""

from __future__ import annotations

import asyncio
import sys
import time
from typing import Any, TextIO

import msgspec

from .logs import ACCESS_LOGGER


class AccessLine(msgspec.Struct):
    time: str
    level: str
    logger: str
    message: str
    request_id: str
    method: str
    path: str
    route: str
    status: int
    duration_ms: float


class AccessLog:
    """Buffered access lines; :meth:`flush` writes them (the app's shutdown calls it too)."""

    def __init__(
        self, stream: TextIO | None = None, *, flush_seconds: float = 0.2, max_lines: int = 1000
    ) -> None:
        self.stream = stream
        self.flush_seconds = flush_seconds
        self.max_lines = max_lines
        self._waiting: list[tuple[Any, ...]] = []
        self._scheduled = False
        self._encode = msgspec.json.Encoder().encode
        self._second = (0, "")  # the last second formatted, and its text

    def add(
        self, request_id: str, method: str, path: str, route: str, status: int, elapsed: float
    ) -> None:
        """Queue one request's line; called on the event loop, after the response."""
        self._waiting.append((time.time(), request_id, method, path, route, status, elapsed))
        if len(self._waiting) >= self.max_lines:
            self.flush()
        elif not self._scheduled:
            self._scheduled = True
            asyncio.get_running_loop().call_later(self.flush_seconds, self.flush)

    def flush(self) -> None:
        """Write the queued lines at once."""
        self._scheduled = False
        waiting, self._waiting = self._waiting, []
        if not waiting:
            return
        encode = self._encode
        text = b"".join(
            encode(
                AccessLine(
                    self._time(at), "INFO", ACCESS_LOGGER, "request", request_id,
                    method, path, route, status, round(elapsed * 1000, 3),
                )
            ) + b"\n"
            for at, request_id, method, path, route, status, elapsed in waiting
        )  # fmt: skip
        stream = self.stream or sys.stderr  # looked up now: tests and servers redirect it
        stream.write(text.decode())
        stream.flush()

    def _time(self, at: float) -> str:
        """``2026-01-31 12:00:00,123``, local time, as logging's ``asctime``."""
        second = int(at)
        if second != self._second[0]:
            self._second = (second, time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(second)))
        return f"{self._second[1]},{int((at - second) * 1000):03d}"
