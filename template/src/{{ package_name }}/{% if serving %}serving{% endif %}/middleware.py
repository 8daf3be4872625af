"""One ASGI middleware for every HTTP request: request id, body size limit, metrics, access log.

Written as plain ASGI (not ``BaseHTTPMiddleware``), which would cost a task and a queue per
request on the hot path.
"""

from __future__ import annotations

import json
import re
import time
import uuid
from typing import Any

from starlette.requests import ClientDisconnect
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from . import metrics
from .access_log import AccessLog
from .logs import REQUEST_ID

HEADER = b"x-request-id"
# Ids from clients are echoed into logs and headers: keep them short and printable.
VALID_ID = re.compile(rb"[A-Za-z0-9._:-]{1,128}")


class BodyTooLargeError(Exception):
    """The request body exceeds the limit (answered as 413)."""


class RequestMiddleware:
    def __init__(self, app: ASGIApp, *, max_body_bytes: int, access_log: AccessLog | None) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.access_log = access_log

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        headers = dict(scope["headers"])
        given = headers.get(HEADER, b"")
        request_id = given.decode() if VALID_ID.fullmatch(given) else uuid.uuid4().hex
        token = REQUEST_ID.set(request_id)
        status = 500
        started = False

        async def send_with_id(message: Message) -> None:
            nonlocal status, started
            if message["type"] == "http.response.start":
                status, started = message["status"], True
                message["headers"] = [*message.get("headers", []), (HEADER, request_id.encode())]
            await send(message)

        received = 0

        async def receive_limited() -> Message:
            nonlocal received
            message = await receive()
            received += len(message.get("body", b""))
            if received > self.max_body_bytes:
                raise BodyTooLargeError
            return message

        try:
            # The server has already rejected a Content-Length that is not a number.
            if int(headers.get(b"content-length", b"0")) > self.max_body_bytes:
                raise BodyTooLargeError
            await self.app(scope, receive_limited, send_with_id)
        except ClientDisconnect:
            status = 499  # the client went away before sending its whole body: nothing to say
        except BodyTooLargeError:
            if started:
                raise
            await _answer(
                send_with_id,
                413,
                f"request body larger than {self.max_body_bytes} bytes (SERVING_MAX_BODY_BYTES)",
            )
        finally:
            self._record(scope, status, time.perf_counter() - start, request_id)
            REQUEST_ID.reset(token)

    def _record(self, scope: Scope, status: int, elapsed: float, request_id: str) -> None:
        route = scope.get("route")
        template = getattr(route, "path", "unmatched")
        labels = {"route": template, "method": scope["method"], "status": str(status)}
        metrics.REQUESTS.labels(**labels).inc()
        metrics.LATENCY.labels(**labels).observe(elapsed)
        if self.access_log is not None:
            method, path = scope["method"], scope["path"]
            self.access_log.add(request_id, method, path, template, status, elapsed)


async def _answer(send: Send, status: int, detail: Any) -> None:
    body = json.dumps({"detail": detail}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
