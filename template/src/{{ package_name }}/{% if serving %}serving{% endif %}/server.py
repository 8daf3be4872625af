"""Running the app under uvicorn, with TCP_NODELAY on every connection.

Uvicorn leaves Nagle's algorithm on for connections accepted on a socket it did not create
itself (the case with ``--workers`` > 1): a small keep-alive response then waits for the
client's delayed ACK, about 40 ms. Our HTTP protocol class switches Nagle off per connection,
whatever the worker count.
"""

from __future__ import annotations

import asyncio
import os
import socket
import tempfile
from typing import Any

import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from ..config import get_settings
from .logs import log_config
from .settings import ServingSettings

APP = f"{__package__}.app:create_app"


class NoDelayHttpToolsProtocol(HttpToolsProtocol):
    """Uvicorn's httptools protocol with TCP_NODELAY set when a connection opens."""

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        sock: Any = transport.get_extra_info("socket")
        if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        super().connection_made(transport)


def serve(settings: ServingSettings) -> None:
    """Start the server in the foreground (workers are separate processes)."""
    # Uvicorn builds the app in each worker (`create_app`, reading SERVING_*): hand it these
    # settings, command-line options included, through the environment the workers inherit.
    for name, value in settings.model_dump().items():
        os.environ[f"SERVING_{name.upper()}"] = str(value)
    # Workers inherit this before they import anything: see app.limit_threads.
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    if settings.workers > 1 and not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        # Each worker writes its metrics here; /metrics adds them up.
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="prometheus-")
    uvicorn.run(
        APP,
        factory=True,
        host=settings.host,
        port=settings.port,
        workers=settings.workers,
        loop="uvloop",
        http=NoDelayHttpToolsProtocol,
        log_config=log_config(get_settings().log_level),
        access_log=False,
        server_header=False,
        timeout_keep_alive=settings.timeout_keep_alive,
        timeout_graceful_shutdown=10,
    )
