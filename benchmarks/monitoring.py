"""Monitoring benchmark: request throughput of the service with monitoring on and off.

    uv run python benchmarks/monitoring.py [--project PATH] [--duration 10] [--rounds 2]

Without ``--project`` a default project is rendered and its pipeline run first (a few minutes).
The same server command runs with ``MONITORING_ENABLED=false`` and ``=true`` (prediction log,
input and prediction metrics, written by the background thread), alternating ``rounds`` times
so that drift of the machine's load hits both alike. ``wrk`` posts the same ``/predict`` body
(1 row, then 100 rows of the test split) at 8 connections after a warm-up. Servers run with one
worker and bytecode caching on (``PYTHONDONTWRITEBYTECODE`` removed, as on a laptop). Prints
requests/s, p50/p99 latency, and on/off ratios; figures only, no pass/fail.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.helpers import PACKAGE, project_env, render, run

WRK_SCRIPT = """
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
local f = io.open(os.getenv("BODY"), "r")
wrk.body = f:read("*a")
f:close()
"""

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
    json.dump({"instances": rows[:n]}, open(f"{sys.argv[1]}/instances_{n}.json", "w"))
"""


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def to_ms(text: str) -> float:
    """wrk's ``812.00us`` / ``3.10ms`` / ``1.20s`` / ``1.00m`` in ms (NaN when unreadable)."""
    found = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text)
    if found is None:
        return float("nan")
    return (
        float(found.group(1)) * {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0}[found.group(2)]
    )


def start(project: Path, port: int, monitoring: bool, logs: Path) -> subprocess.Popen[bytes]:
    env = project_env(
        {
            "MONITORING_ENABLED": str(monitoring).lower(),
            "MONITORING_LOG_PATH": str(logs / "predictions.jsonl"),
            "SERVING_WORKERS": "1",
            "SERVING_ACCESS_LOG": "false",
        }
    )
    process = subprocess.Popen(
        ["uv", "run", PACKAGE, "serve", "--port", str(port)],
        cwd=project,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/ready", timeout=2) as answer:
                if answer.status == 200:
                    return process
        except OSError:
            time.sleep(0.5)
    stop(process)
    raise SystemExit("the server did not become ready in 180 s")


def stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def wrk(port: int, body: Path, script: Path, seconds: int, connections: int) -> dict[str, float]:
    result = subprocess.run(
        [
            "wrk", f"-t{min(connections, 2)}", f"-c{connections}", f"-d{seconds}s", "--latency",
            "-s", str(script), f"http://127.0.0.1:{port}/predict",
        ],
        env={**os.environ, "BODY": str(body)},
        capture_output=True,
        text=True,
        check=True,
    )  # fmt: skip
    out = result.stdout

    def figure(pattern: str) -> str | None:
        found = re.search(pattern, out, re.MULTILINE)
        return found.group(1) if found else None

    rps = float(figure(r"^Requests/sec:\s+([\d.]+)") or "nan")
    p50, p99 = (to_ms(figure(rf"^\s+{q}%\s+(\S+)\s*$") or "nan") for q in (50, 99))
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return {"rps": rps, "p50": p50, "p99": p99, "errors": float(errors.group(1) if errors else 0)}


def metric(port: int, name: str) -> float:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as answer:
        text = answer.read().decode()
    found = re.search(rf"^{name} ([\d.e+]+)$", text, flags=re.MULTILINE)
    return float(found.group(1)) if found else float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--project", type=Path, help="a generated project with its pipeline run")
    parser.add_argument("--duration", type=int, default=10, help="seconds per measurement")
    parser.add_argument("--rounds", type=int, default=2, help="off/on alternations")
    parser.add_argument("--connections", type=int, default=8)
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is missing: apt-get install -y wrk")

    work = Path(tempfile.mkdtemp(prefix="bench-monitoring-"))
    project = args.project
    if project is None:
        project = render(work / "project")
        run(["make", "setup"], project)
        run(["make", "pipeline"], project)
    run(["uv", "run", "python", "-c", PAYLOADS, str(work)], project)
    script = work / "post.lua"
    script.write_text(WRK_SCRIPT)

    results: dict[tuple[int, bool], list[dict[str, float]]] = {}
    for _ in range(args.rounds):
        for monitoring in (False, True):
            logs = work / f"logs-{monitoring}"
            port = free_port()
            server = start(project, port, monitoring, logs)
            try:
                for rows in (1, 100):
                    body = work / f"instances_{rows}.json"
                    wrk(port, body, script, 2, args.connections)  # warm-up
                    figures = wrk(port, body, script, args.duration, args.connections)
                    if monitoring:
                        figures["dropped"] = metric(port, "monitoring_log_dropped_total")
                    results.setdefault((rows, monitoring), []).append(figures)
            finally:
                stop(server)

    print(
        f"\n/predict, 1 worker, {args.connections} connections, {args.duration} s x "
        f"{args.rounds} rounds, bytecode cached; median over rounds"
    )
    print(f"{'rows':>5} {'monitoring':>10} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'non-2xx':>8}")
    for rows in (1, 100):
        medians = {}
        for monitoring in (False, True):
            runs = results[(rows, monitoring)]
            medians[monitoring] = statistics.median(r["rps"] for r in runs)
            print(
                f"{rows:>5} {'on' if monitoring else 'off':>10} {medians[monitoring]:>9.1f} "
                f"{statistics.median(r['p50'] for r in runs):>8.2f} "
                f"{statistics.median(r['p99'] for r in runs):>8.2f} "
                f"{sum(r['errors'] for r in runs):>8.0f}"
            )
        ratio = medians[True] / medians[False]
        print(
            f"{rows:>5} {'on/off':>10} {ratio:>9.3f}  ({(1 - ratio) * 100:+.1f}% throughput cost)"
        )
    lines = sum(
        len(path.read_text().splitlines())
        for path in (work / "logs-True").glob("predictions.jsonl*")
    )
    dropped = sum(r.get("dropped", 0) for r in results[(100, True)])
    print(f"prediction log: {lines} lines written; dropped (queue full): {dropped:.0f}")
    print(json.dumps({f"{k[0]}rows_{'on' if k[1] else 'off'}": v for k, v in results.items()}))


if __name__ == "__main__":
    main()
