"""Monitoring benchmark: request throughput of the service with monitoring on and off.

    uv run python benchmarks/monitoring.py [--project PATH] [--baseline PATH] [--duration 10]
        [--rounds 2] [--workers 1]

Without ``--project`` a default project is rendered and its pipeline run first (a few minutes).
The same server command runs with ``MONITORING_ENABLED=false`` and ``=true`` (prediction log
written by a separate process per worker, input and prediction metrics), alternating
``rounds`` times so that drift of the machine's load hits both alike. ``wrk`` posts the same
``/predict`` body (1 row, then 100 rows of the test split) at 8 connections after a warm-up.
Servers run with one worker by default (``--workers 2`` on two cores shows the log's CPU
competing with serving) and bytecode caching on (``PYTHONDONTWRITEBYTECODE`` removed, as on a
laptop). Prints requests/s, p50/p99 latency, and on/off ratios; figures only, no pass/fail.

``--baseline PATH`` (a second project, e.g. of the last release) runs the same measurements on
it within each round, ours and the baseline's in turn, and adds "x base": ours over the
baseline's throughput, the median of the rounds' ratios, and "x CPU": ours over the baseline's
CPU time per request (the server's process tree, from /proc), which a busy machine moves less.
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import subprocess
import sys
import tempfile
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _http import (
    PAYLOADS,
    WRK_SCRIPT,
    ensure_wrk,
    start,
    stop_process,
    tree_cpu_seconds,
    wait_ready,
    wrk,
)

from tests.helpers import PACKAGE, project_env, render, run
from tests.server import free_port


def serve(
    project: Path, port: int, monitoring: bool, logs: Path, workers: int
) -> subprocess.Popen[bytes]:
    """``<package> serve`` with ``workers`` workers, monitoring on or off; returns once ready."""
    env = project_env(
        {
            "MONITORING_ENABLED": str(monitoring).lower(),
            "MONITORING_LOG_PATH": str(logs / "predictions.jsonl"),
            "SERVING_WORKERS": str(workers),
            "SERVING_ACCESS_LOG": "false",
        }
    )
    logs.mkdir(parents=True, exist_ok=True)
    command = ["uv", "run", PACKAGE, "serve", "--port", str(port)]
    process = start(command, project, logs / "server.log", env)
    wait_ready(f"http://127.0.0.1:{port}/ready", process)
    return process


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
    parser.add_argument("--baseline", type=Path, help="a second project to compare with")
    parser.add_argument(
        "--workers", type=int, default=1, help="2 on 2 cores: the log's CPU competes with serving"
    )
    args = parser.parse_args()
    ensure_wrk()

    work = Path(tempfile.mkdtemp(prefix="bench-monitoring-"))
    project = args.project
    if project is None:
        project = render(work / "project")
        run(["make", "setup"], project)
        run(["make", "pipeline"], project)
    run(["uv", "run", "python", "-c", PAYLOADS, str(work)], project)
    script = work / "post.lua"
    script.write_text(WRK_SCRIPT)

    projects = {"ours": project}
    if args.baseline is not None:
        projects["baseline"] = args.baseline
    results: dict[tuple[str, int, bool], list[dict[str, float]]] = {}
    for round_number in range(args.rounds):
        # The order of the two projects alternates with the rounds.
        names = list(projects) if round_number % 2 == 0 else list(projects)[::-1]
        for name in names:
            for monitoring in (False, True):
                logs = work / name / f"logs-{monitoring}"
                measure(projects[name], logs, monitoring, args, work, script, results, name)

    print(
        f"\n/predict, {args.workers} worker(s), {args.connections} connections, "
        f"{args.duration} s x {args.rounds} rounds, bytecode cached; median over rounds"
    )
    for name in projects:
        print(f"\n{name}: {projects[name]}")
        table(results, name, "baseline" if name == "ours" and len(projects) > 1 else None)
        logged(work / name / "logs-True", results, name)
    print(
        json.dumps({f"{k[0]} {k[1]}rows_{'on' if k[2] else 'off'}": v for k, v in results.items()})
    )


def measure(
    project: Path,
    logs: Path,
    monitoring: bool,
    args: argparse.Namespace,
    work: Path,
    script: Path,
    results: dict[tuple[str, int, bool], list[dict[str, float]]],
    name: str,
) -> None:
    """One server of ``project`` (monitoring on or off), 1 and 100 rows, into ``results``."""
    port = free_port()
    server = serve(project, port, monitoring, logs, args.workers)
    try:
        for rows in (1, 100):
            body = work / f"instances_{rows}.json"
            url = f"http://127.0.0.1:{port}/predict"
            wrk(url, body, script, args.connections, 2)  # warm-up
            cpu = tree_cpu_seconds(server.pid)
            got = wrk(url, body, script, args.connections, args.duration)
            cpu = tree_cpu_seconds(server.pid) - cpu
            figures = {
                "rps": got.rps, "p50": got.p50_ms, "p99": got.p99_ms,
                "errors": float(got.errors),
                "cpu_us": cpu / max(got.rps * args.duration, 1) * 1e6,
            }  # fmt: skip
            if monitoring:
                figures["dropped"] = metric(port, "monitoring_log_dropped_total")
            results.setdefault((name, rows, monitoring), []).append(figures)
    finally:
        stop_process(server)


def table(
    results: dict[tuple[str, int, bool], list[dict[str, float]]], name: str, base: str | None
) -> None:
    """The project's medians, its on/off ratio and, with ``base``, its ratio to that one's."""
    print(
        f"{'rows':>5} {'monitoring':>10} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'non-2xx':>8}"
        + f" {'CPU us/req':>10}"
        + (f" {'x base':>7} {'x CPU':>6}" if base else "")
    )
    for rows in (1, 100):
        medians = {}
        for monitoring in (False, True):
            runs = results[(name, rows, monitoring)]
            medians[monitoring] = statistics.median(r["rps"] for r in runs)
            line = (
                f"{rows:>5} {'on' if monitoring else 'off':>10} {medians[monitoring]:>9.1f} "
                f"{statistics.median(r['p50'] for r in runs):>8.2f} "
                f"{statistics.median(r['p99'] for r in runs):>8.2f} "
                f"{sum(r['errors'] for r in runs):>8.0f} "
                f"{statistics.median(r['cpu_us'] for r in runs):>10.0f}"
            )
            if base:
                pairs = list(zip(runs, results[(base, rows, monitoring)], strict=True))
                ratio = statistics.median(a["rps"] / b["rps"] for a, b in pairs)
                cost = statistics.median(a["cpu_us"] / b["cpu_us"] for a, b in pairs)
                line += f" {ratio:>7.3f} {cost:>6.3f}"
            print(line)
        ratio = medians[True] / medians[False]
        print(
            f"{rows:>5} {'on/off':>10} {ratio:>9.3f}  ({(1 - ratio) * 100:+.1f}% throughput cost)"
        )


def logged(
    folder: Path, results: dict[tuple[str, int, bool], list[dict[str, float]]], name: str
) -> None:
    """Lines and rows in the prediction log, and the requests the log dropped."""
    lines = rows_logged = 0
    for path in folder.glob("predictions.jsonl*"):
        if path.suffix == ".lock":
            continue
        for text in path.read_text().splitlines():
            lines += 1
            rows_logged += len(json.loads(text).get("predictions", [None]))  # one line per request
    dropped = sum(r.get("dropped", 0) for r in results[(name, 100, True)])
    print(
        f"prediction log: {lines} lines ({rows_logged} rows) written; "
        f"requests dropped (queue full): {dropped:.0f}"
    )


if __name__ == "__main__":
    main()
