"""One ASGI middleware for every HTTP request: request id, limits, unexpected errors, metrics
and access log.

An exception no route handled becomes a 503 with ``Retry-After`` and a redacted log line, never
a 500. Written as plain ASGI: ``BaseHTTPMiddleware`` adds a task and a queue to every request.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
import uuid
from typing import Any

import msgspec
from starlette.requests import ClientDisconnect
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ..engine import AccessLog
from . import telemetry
from .logs import CURRENT_REQUEST_ID

logger = logging.getLogger(__name__)
HEADER = b"x-request-id"
# Ids from clients are echoed into logs and headers: keep them short and printable.
VALID_ID = re.compile(rb"[A-Za-z0-9._:-]{1,128}")
# Answered whatever the load: probes and scrapes must reach a busy worker.
UNLIMITED_PATHS = frozenset({"/health", "/metrics"})
RETRY_AFTER_BUSY = b"1"
RETRY_AFTER_ERROR = b"5"


class BodyTooLargeError(Exception):
    """The request body exceeds the limit (answered as 413)."""


class BodyDeadlines:
    """Requests still waiting for their body, and the time by which it must have arrived.

    One timer, running every ``period`` seconds while any request waits, cancels the late
    ones; a timer per request (``asyncio.timeout``) would cost more than the rest of this
    middleware.
    """

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.period = min(1.0, seconds / 4)
        self._waiting: dict[asyncio.Task[Any], float] = {}
        self._late: set[asyncio.Task[Any]] = set()
        self._timer: asyncio.TimerHandle | None = None

    def start(self, task: asyncio.Task[Any]) -> None:
        loop = task.get_loop()
        self._waiting[task] = loop.time() + self.seconds
        if self._timer is None:
            self._timer = loop.call_later(self.period, self._cancel_late, loop)

    def arrived(self, task: asyncio.Task[Any]) -> None:
        self._waiting.pop(task, None)

    def was_late(self, task: asyncio.Task[Any]) -> bool:
        """Whether ``task`` was cancelled for its late body (asked once per cancellation)."""
        if task in self._late:
            self._late.discard(task)
            return True
        return False

    def _cancel_late(self, loop: asyncio.AbstractEventLoop) -> None:
        now = loop.time()
        for task, deadline in list(self._waiting.items()):
            if deadline <= now:
                del self._waiting[task]
                self._late.add(task)
                task.cancel()
        self._timer = (
            loop.call_later(self.period, self._cancel_late, loop) if self._waiting else None
        )


class LimitedReceive:
    """A request's ``receive``: counts the body's bytes (past the limit: 413) and holds the
    request in ``deadlines`` until its whole body has arrived."""

    __slots__ = ("deadlines", "max_bytes", "receive", "received", "task")

    def __init__(self, receive: Receive, max_bytes: int, deadlines: BodyDeadlines) -> None:
        self.receive = receive
        self.max_bytes = max_bytes
        self.deadlines = deadlines
        self.received = 0
        self.task: asyncio.Task[Any] | None = None

    async def __call__(self) -> Message:
        if self.task is None and (task := asyncio.current_task()) is not None:
            self.task = task
            self.deadlines.start(task)
        message = await self.receive()
        self.received += len(message.get("body", b""))
        if self.received > self.max_bytes:
            raise BodyTooLargeError
        if self.task is not None and not message.get("more_body"):
            self.deadlines.arrived(self.task)
        return message

    def was_late(self) -> bool:
        """Whether the request was cancelled because its body was late (then it no longer is)."""
        if self.task is None or not self.deadlines.was_late(self.task):
            return False
        self.task.uncancel()
        return True

    def close(self) -> None:
        if self.task is not None:
            self.deadlines.arrived(self.task)


class RequestMiddleware:
    def __init__(
        self,
        app: ASGIApp,
        *,
        max_body_bytes: int,
        body_timeout: float,
        max_concurrency: int,
        access_log: AccessLog | None,
    ) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.deadlines = BodyDeadlines(body_timeout)
        self.max_concurrency = max_concurrency
        self.in_flight = 0
        self.access_log = access_log
        self.too_large = (
            413,
            f"request body larger than {max_body_bytes} bytes (SERVING_MAX_BODY_BYTES)",
            None,
        )
        self.late = (
            408,
            f"request body not received within {body_timeout:g} s (SERVING_BODY_TIMEOUT)",
            None,
        )
        self.busy = (
            503,
            f"busy: {max_concurrency} requests in progress (SERVING_MAX_CONCURRENCY)",
            RETRY_AFTER_BUSY,
        )
        self.failed = (503, "the service could not answer; try again later", RETRY_AFTER_ERROR)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        headers = dict(scope["headers"])
        given = headers.get(HEADER, b"")
        request_id = given.decode() if VALID_ID.fullmatch(given) else uuid.uuid4().hex
        token = CURRENT_REQUEST_ID.set(request_id)
        status = 500
        started = False

        async def send_with_id(message: Message) -> None:
            nonlocal status, started
            if message["type"] == "http.response.start":
                status, started = message["status"], True
                message["headers"] = [*message.get("headers", []), (HEADER, request_id.encode())]
            await send(message)

        body = LimitedReceive(receive, self.max_body_bytes, self.deadlines)
        limited = scope["path"] not in UNLIMITED_PATHS
        counted = limited and self.in_flight < self.max_concurrency
        self.in_flight += counted
        try:
            refusal = await self._serve(scope, body, send_with_id, counted or not limited, headers)
            if refusal is not None and not started:
                await _answer(send_with_id, *refusal)
        except ClientDisconnect:
            status = 499  # the client went away before sending its whole body: nothing to say
        except Exception:
            if started:
                raise
            logger.exception("request failed", extra={"path": scope["path"]})
            await _answer(send_with_id, *self.failed)
        finally:
            self.in_flight -= counted
            body.close()
            self._record(scope, status, time.perf_counter() - start, request_id)
            CURRENT_REQUEST_ID.reset(token)

    async def _serve(
        self,
        scope: Scope,
        body: LimitedReceive,
        send: Send,
        admitted: bool,
        headers: dict[bytes, bytes],
    ) -> tuple[int, str, bytes | None] | None:
        """Run the app on the request; the refusal to answer with instead, if any."""
        if not admitted:
            return self.busy
        # The server has already rejected a Content-Length that is not a number.
        if int(headers.get(b"content-length", b"0")) > self.max_body_bytes:
            return self.too_large
        try:
            await self.app(scope, body, send)
        except BodyTooLargeError:
            return self.too_large
        except asyncio.CancelledError:
            if not body.was_late():
                raise
            return self.late
        return None

    def _record(self, scope: Scope, status: int, elapsed: float, request_id: str) -> None:
        route = scope.get("route")
        template = getattr(route, "path", "unmatched")
        labels = {"route": template, "method": scope["method"], "status": str(status)}
        telemetry.REQUESTS.labels(**labels).inc()
        telemetry.LATENCY.labels(**labels).observe(elapsed)
        if self.access_log is not None:
            method, path = scope["method"], scope["path"]
            self.access_log.add(request_id, method, path, template, status, elapsed)


async def _answer(send: Send, status: int, detail: Any, retry_after: bytes | None = None) -> None:
    """A JSON answer, then the connection is closed."""
    body = msgspec.json.encode({"detail": detail})
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        (b"connection", b"close"),
    ]
    if retry_after is not None:
        headers.append((b"retry-after", retry_after))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
