"""Running the app under uvicorn: one process, or ``workers`` processes sharing the socket."""

from __future__ import annotations

import os
import tempfile
from functools import partial
from typing import TYPE_CHECKING

import uvicorn
from uvicorn.config import STARTUP_FAILURE
from uvicorn.supervisors import Multiprocess

from ..config import get_settings
from .logs import log_config
from .settings import ServingSettings

if TYPE_CHECKING:
    from fastapi import FastAPI


def worker_app(settings: ServingSettings) -> FastAPI:
    """The app of one server process; imported there, so the supervisor process stays small."""
    from .app import create_app

    return create_app(settings)


def set_library_variables(workers: int) -> None:
    """Variables that libraries read when they load, before the workers import them."""
    # The OpenMP runtime sizes its thread pool from this: one thread per worker (limit_threads).
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    if workers > 1 and not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        # prometheus_client's multiprocess mode: each worker writes its metrics in this folder,
        # and /metrics adds them up.
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="prometheus-")


def serve(settings: ServingSettings) -> None:
    """Start the server in the foreground (workers are separate processes)."""
    set_library_variables(settings.workers)
    config = uvicorn.Config(
        # Each worker process gets this configuration pickled, the settings in it as given
        # (command-line options included): it builds its app from them, not from the environment.
        partial(worker_app, settings),
        factory=True,
        host=settings.host,
        port=settings.port,
        workers=settings.workers,
        loop="uvloop",  # which sets TCP_NODELAY on every connection, whatever the worker count
        http="httptools",
        log_config=log_config(get_settings().log_level),
        access_log=False,
        server_header=False,
        timeout_keep_alive=settings.timeout_keep_alive,
        timeout_graceful_shutdown=10,
    )
    if settings.workers > 1:
        # What uvicorn.run does for workers, which it allows only for an app import string.
        Multiprocess(config, sockets=[config.bind_socket()]).run()
        return
    server = uvicorn.Server(config)
    server.run()
    if not server.started:
        raise SystemExit(STARTUP_FAILURE)
