"""Serving benchmark: the generated service against `mlflow models serve`, same model, same load.

    uv run python benchmarks/serving.py [--project PATH] [--duration 5] [--rounds 3]

Without ``--project`` a default project is rendered and its pipeline run first (a few minutes).
The champion is exported once (``<package> export-model``) and both servers load that folder,
with 2 workers each. ``wrk`` drives each with the same JSON bodies (1 row and 100 rows of the
test split, MLflow's ``dataframe_records`` on ``/invocations``) at 8 and 32 connections, after a
warm-up; ours runs as generated (monitoring on, when the project has it) and again with
``MONITORING_ENABLED=false``. Then the in-process prediction rate (scikit-learn and the
compiled copy) and the batch CLI's rows/s.

All the servers run at once, and each case (rows, connections) is a number of rounds in which
every server is driven in turn, the order rotating: the figures are medians, and a ratio to
mlflow is the median of the rounds' ratios. The speed of a shared 2-core machine drifts by a
third within minutes, so figures taken minutes apart do not compare.

wrk is a Debian package: the script checks for it and, when missing, installs it with
``apt-get`` (as root) or stops and says so. Servers run with bytecode caching on
(``PYTHONDONTWRITEBYTECODE`` removed, as on a laptop). Figures only, no pass/fail.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _http import (
    PAYLOADS,
    WRK_SCRIPT,
    WrkResult,
    ensure_wrk,
    start,
    stop_process,
    wait_ready,
    wrk,
)

from tests.helpers import project_env, render, run

# Run in the project (argument: output folder): the batch CLI's input files.
BATCH_FILES = """
import sys
import pandas as pd, yaml
params = yaml.safe_load(open("params.yaml"))
schema = yaml.safe_load(open(params["paths"]["schema"]))
features = [c["name"] for c in schema["columns"] if c.get("role", "feature") == "feature"]
test = pd.read_parquet(params["paths"]["test"])[features]
big = pd.concat([test] * (200_000 // len(test) + 1), ignore_index=True).head(200_000)
big.to_csv(f"{sys.argv[1]}/batch.csv", index=False)
test.head(10).to_csv(f"{sys.argv[1]}/tiny.csv", index=False)
"""

IN_PROCESS = """
import json, sys, time
from {pkg}.serving.app import limit_threads
from {pkg}.serving.model import load_model
model = load_model(sys.argv[1], max_batch_size=1000, allow_missing=True, compiled_max_rows=256)
assert model.compiled is not None, "the compiled copy was not accepted"
limit_threads()
for n in (1, 100):
    body = open(f"{{sys.argv[2]}}/instances_{{n}}.json", "rb").read()
    rows = list(model.contract.parse_predict(body))  # plain dicts: numbers read on each call
    frame = model.contract.frame(rows)
    # As the /predict route does: the parser's numbers go on to the compiled copy (projects
    # before 0.6.0 handed them over explicitly).
    with_numbers = getattr(model.contract, "parse_predict_with_numbers", None)
    route = (
        (lambda: model.score(*with_numbers(body)).predictions) if with_numbers
        else (lambda: model.predict(model.contract.parse_predict(body)))
    )
    for label, action in (
        ("Pipeline.predict", lambda: model.pipeline.predict(frame)),
        ("parse + frame + predict", lambda: model.pipeline.predict(
            model.contract.frame(model.contract.parse_predict(body)))),
        ("compiled predict", lambda: model.compiled.predict(rows)),
        ("parse + compiled", route),
    ):
        action()
        count, start = 0, time.perf_counter()
        while time.perf_counter() - start < 3:
            action()
            count += 1
        elapsed = (time.perf_counter() - start) / count
        print(json.dumps({{"rows": n, "what": label, "ms": elapsed * 1000,
                          "calls_per_s": 1 / elapsed, "rows_per_s": n / elapsed}}))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--project", type=Path, help="a generated project whose pipeline ran")
    parser.add_argument("--duration", type=int, default=5, help="seconds per wrk run")
    parser.add_argument("--rounds", type=int, default=3, help="alternating runs per case")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--batch-runs", type=int, default=3, help="runs of the batch CLI")
    parser.add_argument("--batch-only", action="store_true", help="only the batch CLI figures")
    args = parser.parse_args()
    ensure_wrk()
    work = Path(tempfile.mkdtemp(prefix="serving-bench-"))
    try:
        benchmark(args, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def payload(work: Path, route: str, rows: int) -> Path:
    """The body file of ``rows`` rows for ``route``."""
    kind = "instances" if route == "/predict" else "records"
    return work / f"{kind}_{rows}.json"


def benchmark(args: argparse.Namespace, work: Path) -> None:
    project = args.project
    if project is None:
        project = render(work / "project")
        print(f"rendered {project}; make setup + make pipeline ...", flush=True)
        run(["make", "setup"], project)
        run(["make", "pipeline"], project)
    project = project.resolve()
    pkg = yaml.safe_load((project / ".copier-answers.yml").read_text())["package_name"]
    venv = project / ".venv" / "bin"
    # mlflow models serve runs `uvicorn` from PATH.
    env = project_env({"OMP_NUM_THREADS": "1", "PATH": f"{venv}:{os.environ['PATH']}"})
    model = work / "champion"
    run([str(venv / pkg), "export-model", "--output", str(model)], project)
    run([str(venv / "python"), "-c", PAYLOADS, str(work)], project)
    run([str(venv / "python"), "-c", BATCH_FILES, str(work)], project)
    if args.batch_only:
        batch_cli(args, project, venv, pkg, model, work)
        return
    script = work / "post.lua"
    script.write_text(WRK_SCRIPT)

    servers = {
        "ours": (
            [
                str(venv / pkg),
                "serve",
                "--port",
                "8701",
                "--workers",
                str(args.workers),
                "--model",
                str(model),
            ],
            "http://127.0.0.1:8701",
            "/ready",
            ("/invocations", "/predict"),
        ),
        # The same service with the prediction log, live metrics and shadow scoring off.
        "ours, monitoring off": (
            [
                str(venv / pkg),
                "serve",
                "--port",
                "8705",
                "--workers",
                str(args.workers),
                "--model",
                str(model),
            ],
            "http://127.0.0.1:8705",
            "/ready",
            ("/predict",),
        ),
        "mlflow models serve": (
            [
                str(venv / "mlflow"),
                "models",
                "serve",
                "-m",
                str(model),
                "--env-manager",
                "local",
                "-h",
                "127.0.0.1",
                "-p",
                "8703",
                "-w",
                str(args.workers),
            ],
            "http://127.0.0.1:8703",
            "/ping",
            ("/invocations",),
        ),
    }
    # Every server runs at once (idle ones cost next to nothing), and each case's runs
    # alternate between them, round after round: this machine's speed swings by a third from
    # one minute to the next, so only runs taken side by side compare.
    processes: dict[str, subprocess.Popen[bytes]] = {}
    runs: dict[tuple[str, str, int, int], list[WrkResult]] = {}
    try:
        for name, (command, *_) in servers.items():
            server_env = {**env, "SERVING_MODEL_URI": str(model)}
            if name == "ours, monitoring off":
                server_env["MONITORING_ENABLED"] = "false"
            log = work / f"{name.replace(' ', '_')}.log"
            processes[name] = start(command, project, log, server_env)
        cases: dict[tuple[int, int], list[tuple[str, str]]] = {}
        for name, (_, base, ready, routes) in servers.items():
            wait_ready(base + ready, processes[name])
            for route in routes:
                for rows in (1, 100):
                    wrk(base + route, payload(work, route, rows), script, 8, 2)  # warm-up
                    for connections in (8, 32):
                        cases.setdefault((rows, connections), []).append((name, route))
        for (rows, connections), entries in sorted(cases.items()):
            for round_number in range(args.rounds):
                shift = round_number % len(entries)
                for name, route in entries[shift:] + entries[:shift]:
                    url = servers[name][1] + route
                    got = wrk(url, payload(work, route, rows), script, connections, args.duration)
                    runs.setdefault((name, route, rows, connections), []).append(got)
            print(f"  rows={rows} c={connections}: done", flush=True)
    finally:
        for process in processes.values():
            stop_process(process)

    print(
        f"\nwrk -t2 -d{args.duration}s, {args.workers} workers each, {os.cpu_count()} cores; "
        f"medians of {args.rounds} alternating rounds"
    )
    header = (
        f"{'server':<22} {'route':<12} {'rows':>4} {'conns':>5} {'req/s':>8} "
        f"{'p50 ms':>8} {'p99 ms':>8} {'errors':>6} {'x req/s':>8} {'x p99':>7}"
    )
    print(header)
    print("-" * len(header))
    for (name, route, rows, connections), got in runs.items():
        mlflow_runs = runs[("mlflow models serve", "/invocations", rows, connections)]
        # Ratios round by round (runs side by side), then their median.
        speedup = statistics.median(a.rps / b.rps for a, b in zip(got, mlflow_runs, strict=True))
        p99 = statistics.median(b.p99_ms / a.p99_ms for a, b in zip(got, mlflow_runs, strict=True))
        print(
            f"{name:<22} {route:<12} {rows:>4} {connections:>5} "
            f"{statistics.median(r.rps for r in got):>8.0f} "
            f"{statistics.median(r.p50_ms for r in got):>8.1f} "
            f"{statistics.median(r.p99_ms for r in got):>8.1f} {sum(r.errors for r in got):>6} "
            f"{speedup:>8.1f} {p99:>7.1f}"
        )
    print(
        "x req/s: throughput / mlflow models serve's; x p99: mlflow's p99 / this p99 "
        "(each the median of the rounds' ratios)"
    )

    print("\nin-process (one worker, one thread):")
    output = run(
        [str(venv / "python"), "-c", IN_PROCESS.format(pkg=pkg), str(model), str(work)],
        project,
        env={"OMP_NUM_THREADS": "1"},
    ).stdout
    for line in output.splitlines():
        item = json.loads(line)
        print(
            f"  {item['what']:<24} rows={item['rows']:>3}: {item['ms']:7.2f} ms/call, "
            f"{item['calls_per_s']:8.0f} calls/s, {item['rows_per_s']:9.0f} rows/s"
        )

    batch_cli(args, project, venv, pkg, model, work)


def batch_cli(
    args: argparse.Namespace, project: Path, venv: Path, pkg: str, model: Path, work: Path
) -> None:
    """The batch CLI's rows/s on 200,000 rows of the test split, start-up excluded."""

    def score(source: str) -> float:
        start_time = time.perf_counter()
        command = [str(venv / pkg), "predict", "--input", str(work / source)]
        run([*command, "--output", str(work / "scored.csv"), "--model", str(model)], project)
        return time.perf_counter() - start_time

    # 10 rows give the command's fixed cost (imports, model load); runs alternate, and the
    # medians are compared, because one start-up varies by about 0.5 s on a busy machine.
    startups, totals = [], []
    for _ in range(args.batch_runs):
        startups.append(score("tiny.csv"))
        totals.append(score("batch.csv"))
    startup, elapsed = statistics.median(startups), statistics.median(totals)
    print(
        f"\nbatch CLI, {pkg} predict on 200,000 rows (median of {args.batch_runs} runs, "
        f"{os.cpu_count()} cores): {elapsed:.2f} s wall, {200_000 / elapsed:,.0f} rows/s; "
        f"without the {startup:.2f} s start-up (a 10-row run): "
        f"{200_000 / max(elapsed - startup, 1e-9):,.0f} rows/s"
    )


if __name__ == "__main__":
    main()
