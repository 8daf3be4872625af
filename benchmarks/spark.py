"""Spark benchmark: ``predict --engine spark`` rows/s on local cores against the single-process
``predict`` on the same file, and a projection for N executors.

    uv run python benchmarks/spark.py --project /tmp/p0 [--rows 200000] [--rounds 1]
        [--cores 2] [--project-rows 100000000] [--executor-cores 4]

The project needs its pipeline run (a champion) and the spark extra installed
(``uv sync --extra spark``; Java 17). A CSV of ``--rows`` rows is made from its test split
(and the same rows as Parquet); each command runs straight from the project's ``.venv``, on
the big file and on 10 rows, whose time is the command's start-up (for Spark: the JVM, the
session, shipping the package and the model, the Python workers). Rows/s without start-up
is rows / (big - tiny). Spark runs as ``local[K]`` with a 1 GiB driver: ``K = --cores`` and
``K = 1``, whose rows/s is the per-core throughput the projection scales.

Projection for ``--project-rows`` rows on N executors of ``--executor-cores`` cores each:
seconds = Spark's measured start-up + rows / (N x cores x per-core rows/s). It assumes each core
scores as fast as one here and that reading and writing scale with the cores (a store that
serves N executors at once); it leaves out the cluster's own scheduling and executor start-up.
Figures only, no pass/fail.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import tempfile
import time
import tomllib
from pathlib import Path

from _common import load_average

from tests.helpers import project_env

# Run in the project: argv = output folder, rows.
MAKE_INPUT = """
import sys
import pandas as pd, yaml
params = yaml.safe_load(open("params.yaml"))
test = pd.read_parquet(params["paths"]["test"])
rows = int(sys.argv[2])
big = pd.concat([test] * (rows // len(test) + 1), ignore_index=True).head(rows)
for name, frame in (("big", big), ("tiny", big.head(10))):
    frame.to_csv(f"{sys.argv[1]}/{name}.csv", index=False)
    frame.to_parquet(f"{sys.argv[1]}/{name}.parquet", index=False)
"""


def command_name(project: Path) -> str:
    scripts = tomllib.loads((project / "pyproject.toml").read_text())["project"]["scripts"]
    return str(next(iter(scripts)))


def seconds(project: Path, arguments: list[str], cores: int | None) -> float:
    """Wall-clock seconds of one ``predict`` run (Spark on ``local[cores]`` when given)."""
    env = project_env()
    if cores:
        env["PYSPARK_SUBMIT_ARGS"] = (
            f"--master local[{cores}] --driver-memory 1g --conf spark.ui.enabled=false "
            "pyspark-shell"
        )
    command = [str(project / ".venv" / "bin" / command_name(project)), "predict", *arguments]
    start = time.perf_counter()
    result = subprocess.run(command, cwd=project, env=env, capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    if result.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed:\n{result.stderr[-3000:]}")
    return elapsed


def measure(
    project: Path, folder: Path, engine: str, suffix: str, cores: int | None, rounds: int
) -> tuple[float, float]:
    """Median seconds on the big file and on 10 rows."""
    runs: dict[str, list[float]] = {"big": [], "tiny": []}
    for _ in range(rounds):
        for name in runs:
            output = folder / f"out-{engine}-{cores}-{name}.{suffix}"
            arguments = ["-i", str(folder / f"{name}.{suffix}"), "-o", str(output)]
            if engine == "spark":
                arguments += ["--engine", "spark"]
            runs[name].append(seconds(project, arguments, cores))
            shutil.rmtree(output, ignore_errors=True)
            output.unlink(missing_ok=True)
    return statistics.median(runs["big"]), statistics.median(runs["tiny"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--project", type=Path, required=True)
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--cores", type=int, default=2)
    parser.add_argument("--project-rows", type=int, default=100_000_000)
    parser.add_argument("--executor-cores", type=int, default=4)
    args = parser.parse_args()
    project = args.project.resolve()
    python = str(project / ".venv" / "bin" / "python")
    with tempfile.TemporaryDirectory(prefix="spark-bench-") as temporary:
        folder = Path(temporary)
        subprocess.run(
            [python, "-c", MAKE_INPUT, str(folder), str(args.rows)], cwd=project, check=True
        )
        cases = [
            ("predict (one process, all cores)", "local", "csv", None),
            (f"--engine spark local[{args.cores}], CSV", "spark", "csv", args.cores),
            (f"--engine spark local[{args.cores}], Parquet", "spark", "parquet", args.cores),
            ("--engine spark local[1], CSV", "spark", "csv", 1),
        ]
        print(f"{args.rows} rows, median of {args.rounds} round(s); {load_average()}")
        print(f"| command | s ({args.rows} rows) | s (10 rows) | rows/s | rows/s w/o start-up |")
        print("|---|---|---|---|---|")
        results = {}
        for label, engine, suffix, cores in cases:
            big, tiny = measure(project, folder, engine, suffix, cores, args.rounds)
            # No figure where the start-up's spread hides the work (a busy machine).
            rate = args.rows / (big - tiny) if big > tiny else None
            results[label] = (big, tiny, rate)
            shown = f"{rate:,.0f}" if rate else "n/a (10 rows took longer)"
            print(f"| {label} | {big:.1f} | {tiny:.1f} | {args.rows / big:,.0f} | {shown} |")
    spark_start = results[cases[1][0]][1]
    per_core = results[cases[3][0]][2]
    local_rate = results[cases[0][0]][2]
    if not per_core or not local_rate:
        print("\nNo projection: a rate without start-up is missing (rerun with more --rows)")
        return
    rows = args.project_rows
    print(
        f"\nProjection for {rows:,} rows; per-core {per_core:,.0f} rows/s (local[1] without "
        f"start-up), Spark start-up {spark_start:.1f} s (local[{args.cores}], 10 rows); one "
        f"process here: {rows / local_rate:,.0f} s"
    )
    print(f"| executors x {args.executor_cores} cores | s | rows/s |")
    print("|---|---|---|")
    for executors in (1, 2, 4, 8, 16, 32):
        total = spark_start + rows / (executors * args.executor_cores * per_core)
        print(f"| {executors} | {total:,.0f} | {rows / total:,.0f} |")


if __name__ == "__main__":
    main()
