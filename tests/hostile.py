"""Tools of the adversarial suite (``attacks.py``): raw HTTP exchanges, a /health probe, the
worker's memory, and hostile model folders. Standard library only, Linux (``/proc``)."""

from __future__ import annotations

import http.client
import io
import pickle
import shutil
import socket
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

PROBE_EVERY = 0.1  # seconds between two /health probes
PROBE_TIMEOUT = 120.0  # a probe that waits longer is still counted (see HealthProbe.stop)


@dataclass
class Reply:
    """One HTTP exchange: ``status`` is None when the connection ended without an answer
    (``error`` says how: ``timeout`` or ``closed``)."""

    method: str
    path: str
    status: int | None
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    seconds: float = 0.0
    error: str = ""

    @property
    def honest_503(self) -> bool:
        return self.status == 503 and "retry-after" in self.headers

    def json(self) -> Any:
        import json

        try:
            return json.loads(self.body)
        except ValueError:
            return None


def exchange(
    port: int,
    method: str,
    path: str,
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
    timeout: float = 30.0,
) -> Reply:
    """One request on a new connection to 127.0.0.1:``port``, headers sent exactly as given
    (http.client adds only Host, Accept-Encoding and Content-Length)."""
    start = time.monotonic()
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        connection.putrequest(method, path, skip_accept_encoding=True)
        for name, value in (headers or {}).items():
            connection.putheader(name, value)
        if body is not None:
            connection.putheader("Content-Length", str(len(body)))
        connection.endheaders(body)
        response = connection.getresponse()
        payload = response.read()
        answer = {name.lower(): value for name, value in response.getheaders()}
        return Reply(method, path, response.status, answer, payload, time.monotonic() - start)
    except TimeoutError:
        return Reply(method, path, None, seconds=time.monotonic() - start, error="timeout")
    except (ConnectionError, http.client.HTTPException, OSError) as error:
        return Reply(method, path, None, seconds=time.monotonic() - start, error=_why(error))
    finally:
        connection.close()


def _why(error: BaseException) -> str:
    return f"closed ({type(error).__name__})"


def raw_exchange(port: int, data: bytes, timeout: float = 30.0) -> Reply:
    """Send ``data`` as it is (header bytes no client library would send) and read the answer
    until the server closes the connection or ``timeout``."""
    start = time.monotonic()
    received = b""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as connection:
            connection.sendall(data)
            while chunk := connection.recv(65536):
                received += chunk
    except TimeoutError:
        if not received:
            return Reply("RAW", "", None, seconds=time.monotonic() - start, error="timeout")
    except OSError as error:
        if not received:
            return Reply("RAW", "", None, seconds=time.monotonic() - start, error=_why(error))
    return parse_raw(received, time.monotonic() - start)


def parse_raw(received: bytes, seconds: float) -> Reply:
    """The first answer in ``received`` (enough for the single requests sent here)."""
    head, _, body = received.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    try:
        status = int(lines[0].split(" ", 2)[1])
    except (IndexError, ValueError):
        return Reply("RAW", "", None, body=received, seconds=seconds, error="closed (no answer)")
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers.setdefault(name.strip().lower(), value.strip())
    return Reply("RAW", "", status, headers, body, seconds)


class HealthProbe(threading.Thread):
    """``GET /health`` every ~100 ms, each on a new connection; remembers the longest wait.

    The probe in flight when :meth:`stop` is called counts with the time it has waited so
    far: a server frozen for a minute shows a minute even if the suite gives up earlier.
    """

    def __init__(self, port: int) -> None:
        super().__init__(daemon=True)
        self.port = port
        self.worst = 0.0
        self.statuses: list[int | None] = []
        self.pending: float | None = None
        self._stop_event = threading.Event()
        self._first = threading.Event()

    def run(self) -> None:
        while not self._stop_event.is_set():
            self.pending = time.monotonic()
            reply = exchange(self.port, "GET", "/health", timeout=PROBE_TIMEOUT)
            self.pending = None
            self.worst = max(self.worst, reply.seconds)
            self.statuses.append(reply.status)
            self._first.set()
            self._stop_event.wait(PROBE_EVERY)

    def wait_first(self, timeout: float = 30.0) -> None:
        self._first.wait(timeout)

    def stop(self) -> float:
        """Stop probing; the longest wait in seconds (the probe in flight included)."""
        self._stop_event.set()
        pending = self.pending
        if pending is not None:
            self.worst = max(self.worst, time.monotonic() - pending)
        self.join(timeout=0.5)  # a probe stuck on a frozen server is left to its timeout
        return self.worst


def rss_mb(pid: int) -> float | None:
    """Resident memory of ``pid`` in MB, None when the process is gone."""
    return _status_mb(pid, "VmRSS")


def _status_mb(pid: int, key: str) -> float | None:
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    for line in text.splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1]) / 1024
    return None


def reset_peak(pid: int) -> bool:
    """Reset the kernel's peak-RSS mark (VmHWM) of ``pid``; False where not allowed."""
    try:
        Path(f"/proc/{pid}/clear_refs").write_text("5")
    except OSError:
        return False
    return True


class MemorySampler(threading.Thread):
    """The worker's RSS every 50 ms; the peak also from the kernel's high-water mark, which
    catches spikes shorter than the sampling period. Past ``kill_above_mb`` of growth it
    kills the server (``on_excess``) so that one hostile request cannot take the machine."""

    def __init__(self, pid: int, before: float, kill_above_mb: float, on_excess: Any) -> None:
        super().__init__(daemon=True)
        self.pid, self.before, self.kill_above = pid, before, kill_above_mb
        self.on_excess = on_excess
        self.peak = before
        self.killed = False
        self._stop_event = threading.Event()
        self.hwm = reset_peak(pid)

    def run(self) -> None:
        while not self._stop_event.is_set():
            now = rss_mb(self.pid)
            if now is None:
                return
            self.peak = max(self.peak, now)
            if now - self.before > self.kill_above and not self.killed:
                self.killed = True
                self.on_excess()
            self._stop_event.wait(0.05)

    def stop(self) -> float:
        self._stop_event.set()
        self.join(timeout=2)
        if self.hwm:
            self.peak = max(self.peak, _status_mb(self.pid, "VmHWM") or 0.0)
        return self.peak


def _children() -> dict[int, list[int]]:
    tree: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        parent = int(stat.rpartition(")")[2].split()[1])
        tree.setdefault(parent, []).append(int(entry.name))
    return tree


def _listening_inodes(port: int) -> set[str]:
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if fields[3] == "0A" and int(fields[1].rpartition(":")[2], 16) == port:
                inodes.add(fields[9])
    return inodes


def _holds(pid: int, sockets: set[str]) -> bool:
    try:
        links = [str(fd.readlink()) for fd in Path(f"/proc/{pid}/fd").iterdir()]
    except OSError:
        return False
    return any(link in sockets for link in links)


def worker_pid(root: int, port: int) -> int:
    """The process that serves ``port`` under ``root``: the deepest one holding the listening
    socket (with one uvicorn worker, the server process itself)."""
    sockets = {f"socket:[{inode}]" for inode in _listening_inodes(port)}
    tree = _children()
    family, queue = [], [root]
    while queue:
        pid = queue.pop()
        family.append(pid)
        queue.extend(tree.get(pid, []))
    holders = [pid for pid in family if _holds(pid, sockets)]
    leaves = [pid for pid in holders if not set(tree.get(pid, [])) & set(holders)]
    return leaves[0] if leaves else root


class _WritesMarker:
    """Unpickling this object creates the file ``path`` (what a hostile model.pkl could do
    with any other function)."""

    def __init__(self, path: Path) -> None:
        self.path = str(path)

    def __reduce__(self) -> tuple[Any, tuple[str, str]]:
        return io.open, (self.path, "w")


def pickle_model(template: Path, folder: Path, marker: Path) -> Path:
    """An MLflow model folder like ``template`` whose sklearn flavor says cloudpickle and whose
    ``model.pkl`` creates ``marker`` when loaded. Nothing here unpickles it."""
    shutil.copytree(template, folder)
    for old in ("model.skops", "model.pkl"):
        (folder / old).unlink(missing_ok=True)
    (folder / "model.pkl").write_bytes(pickle.dumps(_WritesMarker(marker)))
    mlmodel = yaml.safe_load((folder / "MLmodel").read_text())
    sklearn = mlmodel["flavors"]["sklearn"]
    sklearn.update(pickled_model="model.pkl", serialization_format="cloudpickle")
    sklearn.pop("skops_trusted_types", None)
    mlmodel["flavors"]["python_function"]["model_path"] = "model.pkl"
    (folder / "MLmodel").write_text(yaml.safe_dump(mlmodel, sort_keys=False))
    return folder


ARTIFACTS_API = "/api/2.0/mlflow-artifacts/artifacts"


class ArtifactServer:
    """A stand-in for an MLflow artifacts server on 127.0.0.1 serving one model folder as
    ``model``: what a model URI with credentials in it points at. Lists what it served."""

    def __init__(self, folder: Path) -> None:
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
        from urllib.parse import parse_qs, urlsplit

        served: list[str] = []
        self.served = served

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                url = urlsplit(self.path)
                if url.path == ARTIFACTS_API:
                    listed = parse_qs(url.query).get("path", [""])[0]
                    self._listing(listed)
                elif url.path.startswith(ARTIFACTS_API + "/model/"):
                    self._file(url.path.removeprefix(ARTIFACTS_API + "/model/"))
                else:
                    self._send(404, b"{}")

            def _listing(self, listed: str) -> None:
                import json

                base = folder / listed.removeprefix("model").strip("/")
                files = [
                    {"path": entry.name, "is_dir": entry.is_dir()}
                    | ({} if entry.is_dir() else {"file_size": entry.stat().st_size})
                    for entry in sorted(base.iterdir())
                ]
                self._send(200, json.dumps({"files": files}).encode())

            def _file(self, relative: str) -> None:
                target = (folder / relative).resolve()
                if folder.resolve() not in target.parents or not target.is_file():
                    self._send(404, b"{}")
                    return
                served.append(relative)
                self._send(200, target.read_bytes())

            def _send(self, status: int, payload: bytes) -> None:
                self.send_response(status)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, format: str, *args: Any) -> None:
                pass  # quiet: the suite reports what was served

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.httpd.server_address[1]
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def uri(self, user: str, password: str) -> str:
        return f"http://{user}:{password}@127.0.0.1:{self.port}{ARTIFACTS_API}/model"

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
