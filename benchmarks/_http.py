"""Shared by the HTTP benchmarks: request bodies, wrk runs, and starting/stopping servers."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from _common import ROOT  # noqa: F401 -- puts the repository on sys.path for `tests`

from tests.server import stop_process

# wrk posts the JSON file named by $BODY on every request.
WRK_SCRIPT = """
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
local f = io.open(os.getenv("BODY"), "r")
wrk.body = f:read("*a")
f:close()
"""

# Run in the project (argument: output folder): 1- and 100-row bodies of the test split, for
# /predict (instances_N.json) and MLflow's /invocations (records_N.json).
PAYLOADS = """
import json, sys
import pandas as pd, yaml
params = yaml.safe_load(open("params.yaml"))
schema = yaml.safe_load(open(params["paths"]["schema"]))
features = [c["name"] for c in schema["columns"] if c.get("role", "feature") == "feature"]
test = pd.read_parquet(params["paths"]["test"])[features]
rows = test.astype(object).where(test.notna(), None).to_dict("records")
while len(rows) < 100:
    rows = rows + rows
for n in (1, 100):
    json.dump({"dataframe_records": rows[:n]}, open(f"{sys.argv[1]}/records_{n}.json", "w"))
    json.dump({"instances": rows[:n]}, open(f"{sys.argv[1]}/instances_{n}.json", "w"))
"""


@dataclass(frozen=True)
class WrkResult:
    rps: float
    p50_ms: float
    p99_ms: float
    errors: int  # socket errors and non-2xx answers


def ensure_wrk() -> str:
    """wrk's path; installs the Debian package when missing and running as root."""
    found = shutil.which("wrk")
    if found:
        return found
    if os.geteuid() != 0:
        raise SystemExit("wrk is missing: install it with `sudo apt-get install -y wrk`")
    print("wrk is missing: installing the Debian package (apt-get install -y wrk)")
    subprocess.run(["apt-get", "update", "-qq"], check=True)
    subprocess.run(["apt-get", "install", "-y", "-qq", "wrk"], check=True)
    found = shutil.which("wrk")
    if not found:
        raise SystemExit("apt-get did not install wrk")
    return found


def to_ms(text: str) -> float:
    """wrk's ``812.00us`` / ``3.10ms`` / ``1.20s`` / ``1.00m`` in ms (NaN when it has none)."""
    match = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text)
    if match is None:
        return float("nan")
    number, unit = match.groups()
    return float(number) * {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0}[unit]


def wrk(url: str, body: Path, script: Path, connections: int, duration: int) -> WrkResult:
    """One wrk run posting ``body`` to ``url``."""
    output = subprocess.run(
        [
            ensure_wrk(), f"-t{min(connections, 2)}", f"-c{connections}", f"-d{duration}s",
            "--latency", "-s", str(script), url,
        ],
        env={**os.environ, "BODY": str(body)},
        capture_output=True,
        text=True,
        check=True,
    ).stdout  # fmt: skip

    def figure(pattern: str) -> str:
        found = re.search(pattern, output, re.MULTILINE)
        return found.group(1) if found else "nan"

    errors = sum(int(n) for n in re.findall(r"(?:connect|read|write|timeout) (\d+)", output))
    errors += int(figure(r"Non-2xx or 3xx responses: (\d+)").replace("nan", "0"))
    return WrkResult(
        rps=float(figure(r"^Requests/sec:\s+([\d.]+)")),
        p50_ms=to_ms(figure(r"^\s+50%\s+(\S+)\s*$")),
        p99_ms=to_ms(figure(r"^\s+99%\s+(\S+)\s*$")),
        errors=errors,
    )


def tree_cpu_seconds(pid: int) -> float:
    """CPU seconds (user + system) used so far by process ``pid`` and its live descendants,
    read from /proc (Linux). Per request, it moves less than throughput when other jobs share
    the machine."""
    parents: dict[int, int] = {}
    ticks: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rpartition(")")[2].split()
        except OSError:  # the process ended meanwhile
            continue
        parents[int(entry.name)] = int(fields[1])
        ticks[int(entry.name)] = int(fields[11]) + int(fields[12])
    tree, grown = {pid}, True
    while grown:
        grown = False
        for child, parent in parents.items():
            if parent in tree and child not in tree:
                tree.add(child)
                grown = True
    return sum(ticks.get(member, 0) for member in tree) / os.sysconf("SC_CLK_TCK")


def start(command: list[str], cwd: Path, log: Path, env: dict[str, str]) -> subprocess.Popen[bytes]:
    """Start a server in its own process group (so that ``stop_process`` reaches its workers)."""
    with log.open("wb") as handle:
        return subprocess.Popen(
            command, cwd=cwd, env=env, stdout=handle, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip


def wait_ready(url: str, process: subprocess.Popen[bytes], timeout: float = 180) -> None:
    """Wait until ``url`` answers 200; stop if the server exits or takes too long."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"server exited ({process.returncode}) before {url} answered")
        try:
            with urllib.request.urlopen(url, timeout=2) as answer:
                if answer.status == 200:
                    return
        except OSError:
            time.sleep(0.5)
    stop_process(process)
    raise SystemExit(f"{url} not ready after {timeout} s")
