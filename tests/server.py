"""Talking to a generated project's service in tests: HTTP calls and a server process."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .helpers import project_env

START_TIMEOUT = 180


@dataclass
class Answer:
    status: int
    body: Any
    headers: Mapping[str, str]


def call(
    base: str, path: str, body: Any = None, *, raw: bytes | None = None, **headers: str
) -> Answer:
    """One HTTP request; JSON in and out (``raw`` sends bytes as they are)."""
    data = raw if raw is not None else (None if body is None else json.dumps(body).encode())
    request = urllib.request.Request(
        base + path,
        data=data,
        method="GET" if data is None else "POST",
        headers={"Content-Type": "application/json", **headers},
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            status, payload, answer_headers = response.status, response.read(), response.headers
    except urllib.error.HTTPError as error:
        status, payload, answer_headers = error.code, error.read(), error.headers
    try:
        parsed = json.loads(payload)
    except ValueError:
        parsed = payload.decode()
    return Answer(status, parsed, dict(answer_headers))


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class Server:
    base: str
    process: subprocess.Popen[bytes]
    log: Path

    def output(self) -> str:
        return self.log.read_text(errors="replace")[-4000:]


def start_server(
    command: list[str], cwd: Path, log: Path, port: int, env: Mapping[str, str] | None = None
) -> Server:
    """Start ``command`` in its own process group and wait for ``GET /health``."""
    with log.open("wb") as handle:
        process = subprocess.Popen(
            command,
            cwd=cwd,
            env=project_env(env),
            stdout=handle,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    server = Server(f"http://127.0.0.1:{port}", process, log)
    if wait_healthy(server.base, process, START_TIMEOUT, interval=0.5):
        return server
    assert process.poll() is None, f"server exited {process.returncode}:\n{server.output()}"
    stop_server(server)
    raise AssertionError(
        f"no answer on {server.base}/health in {START_TIMEOUT} s:\n{server.output()}"
    )


def wait_healthy(
    base: str, process: subprocess.Popen[bytes], timeout: float, interval: float
) -> bool:
    """Whether ``GET base/health`` answers 200 within ``timeout`` s while ``process`` runs."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and process.poll() is None:
        try:
            if call(base, "/health").status == 200:
                return True
        except OSError:
            pass
        time.sleep(interval)
    return False


def stop_process(process: subprocess.Popen[bytes], timeout: float = 30) -> None:
    """Stop a process started with ``start_new_session`` and everything in its group (a
    server's workers): SIGTERM, then SIGKILL after ``timeout`` seconds."""
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def stop_server(server: Server) -> None:
    """Stop the server and its workers: the process group of the process we started."""
    stop_process(server.process)


def nginx_binary() -> str | None:
    """The nginx executable (Debian package `nginx`; .ci/run installs it), if installed."""
    return shutil.which("nginx") or next(
        (path for path in ("/usr/sbin/nginx",) if os.access(path, os.X_OK)), None
    )


@contextmanager
def front_proxy(
    project: Path, upstream: str, folder: Path, header_timeout: int | None = None
) -> Iterator[str]:
    """The project's ops/nginx.conf, as compose runs it, in front of ``upstream``
    (``host:port``): only the upstream address, the port and, if given, the header timeout
    differ. Yields its base URL."""
    nginx = nginx_binary()
    if nginx is None:
        raise FileNotFoundError("nginx is not installed (apt-get install nginx)")
    config = (project / "ops" / "nginx.conf").read_text()
    port = free_port()
    site = config.replace("server api:8000;", f"server {upstream};")
    site = site.replace("listen 8080;", f"listen 127.0.0.1:{port};")
    if site.count("127.0.0.1:") != 2:
        raise ValueError("ops/nginx.conf: the upstream and listen lines were not found")
    if header_timeout is not None:
        setting = f"client_header_timeout {header_timeout}s;"
        site = re.sub(r"client_header_timeout \d+s;", setting, site)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "site.conf").write_text(site)
    # The official image's main configuration, reduced to what the site needs.
    temp = "".join(
        f"    {kind}_temp_path {folder / kind};\n"
        for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    (folder / "nginx.conf").write_text(
        f"daemon off;\nmaster_process off;\npid {folder / 'nginx.pid'};\n"
        f"error_log {folder / 'error.log'} info;\nevents {{ worker_connections 256; }}\n"
        f"http {{\n{temp}    access_log {folder / 'access.log'};\n"
        f"    include {folder / 'site.conf'};\n}}\n"
    )
    check = subprocess.run(
        [nginx, "-t", "-c", str(folder / "nginx.conf"), "-p", str(folder)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    if check.returncode != 0:
        raise RuntimeError(f"nginx -t: {check.stderr}")
    process = subprocess.Popen(
        [nginx, "-c", str(folder / "nginx.conf"), "-p", str(folder)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        if not wait_healthy(base, process, 30, interval=0.2):
            raise TimeoutError((folder / "error.log").read_text())
        yield base
    finally:
        stop_process(process)
