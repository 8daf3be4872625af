"""Batch scoring benchmark: ``<package> predict --input --output`` rows/s and peak memory.

    uv run python benchmarks/batch.py --project /tmp/p0 --project /tmp/m2 [--rows 200000]
        [--rounds 3] [--quote-all] [--threads N]

Each project gets a CSV of ``--rows`` rows made from its own test split (every column,
repeated; ``--quote-all`` quotes every field, the path that cannot split on line ends alone).
Its ``predict`` command then scores that file with the champion from its registry, run
straight from the project's ``.venv`` (no ``uv run`` in the timing). Projects run interleaved,
A, B, A, B..., the order rotating each round, so that drift of a shared machine's load hits
all alike; a 10-row run beside each gives the command's start-up (imports, model load). Prints
medians of the rounds: seconds, rows/s with and without start-up, peak RSS of the process, and
CPU seconds of the run (rows per CPU second, start-up's CPU taken off, moves less than wall
time when other jobs share the machine), and each project's rows/s as a share of the first
project's. Figures only, no pass/fail.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
import tomllib
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.helpers import project_env

# Run in the project: argv = output folder, rows, quote-all flag.
MAKE_INPUT = """
import csv, sys
import pandas as pd, yaml
params = yaml.safe_load(open("params.yaml"))
test = pd.read_parquet(params["paths"]["test"])
rows = int(sys.argv[2])
big = pd.concat([test] * (rows // len(test) + 1), ignore_index=True).head(rows)
quoting = csv.QUOTE_ALL if sys.argv[3] == "1" else csv.QUOTE_MINIMAL
big.to_csv(f"{sys.argv[1]}/batch.csv", index=False, quoting=quoting)
big.head(10).to_csv(f"{sys.argv[1]}/tiny.csv", index=False, quoting=quoting)
"""


def command_name(project: Path) -> str:
    """The project's console script (its package name)."""
    scripts = tomllib.loads((project / "pyproject.toml").read_text())["project"]["scripts"]
    return str(next(iter(scripts)))


def score(project: Path, source: Path, output: Path, threads: int | None) -> list[float]:
    """Wall-clock seconds, CPU seconds (user + system) and peak RSS (MiB) of one ``predict``
    run; raises with its output on failure."""
    output.unlink(missing_ok=True)  # the last run's, which predict would refuse to replace
    command = [str(project / ".venv" / "bin" / command_name(project)), "predict"]
    command += ["--input", str(source), "--output", str(output)]
    command += ["--threads", str(threads)] if threads else []
    with tempfile.TemporaryFile() as log:
        start = time.perf_counter()
        process = subprocess.Popen(
            command, cwd=project, env=project_env(), stdout=log, stderr=subprocess.STDOUT
        )
        _, status, usage = os.wait4(process.pid, 0)
        elapsed = time.perf_counter() - start
        process.returncode = os.waitstatus_to_exitcode(status)
        if process.returncode != 0:
            log.seek(0)
            raise SystemExit(f"{' '.join(command)} failed:\n{log.read().decode()[-3000:]}")
    return [elapsed, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024]  # RSS in KiB


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--project", type=Path, action="append", required=True,
        help="a generated project with its pipeline run (repeat to compare)",
    )  # fmt: skip
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--quote-all", action="store_true", help="quote every field")
    parser.add_argument("--threads", type=int, help="predict --threads (default: its own)")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="bench-batch-"))
    folders = {}
    for index, project in enumerate(args.project):
        folder = folders[project] = work / str(index)
        folder.mkdir()
        python = str(project / ".venv" / "bin" / "python")
        flag = str(int(args.quote_all))
        subprocess.run(
            [python, "-c", MAKE_INPUT, str(folder), str(args.rows), flag],
            cwd=project, env=project_env(), check=True,
        )  # fmt: skip
    size = (folders[args.project[0]] / "batch.csv").stat().st_size
    print(f"{args.rows:,} rows ({size / 2**20:,.0f} MiB), {args.rounds} rounds, {os.cpu_count()} "
          f"CPUs, load average {os.getloadavg()[0]:.2f} at start")  # fmt: skip

    runs: dict[Path, list[tuple[list[float], list[float]]]] = {path: [] for path in args.project}
    for round_ in range(args.rounds):
        shift = round_ % len(args.project)
        for project in args.project[shift:] + args.project[:shift]:
            folder = folders[project]
            startup = score(project, folder / "tiny.csv", folder / "tiny-out.csv", args.threads)
            total = score(project, folder / "batch.csv", folder / "out.csv", args.threads)
            lines = sum(1 for _ in (folder / "out.csv").open("rb"))
            if not args.quote_all and lines != args.rows + 1:
                raise SystemExit(f"{project}: {lines} output lines for {args.rows} rows")
            runs[project].append((total, startup))

    baseline = None
    print(f"{'project':<24} {'seconds':>8} {'rows/s':>8} {'w/o start-up':>13} {'start-up':>9} "
          f"{'CPU s':>6} {'rows/CPU s':>10} {'peak RSS':>9} {'share':>6}")  # fmt: skip
    for project, measured in runs.items():
        total, cpu = (statistics.median(run[0][i] for run in measured) for i in (0, 1))
        startup, startup_cpu = (statistics.median(run[1][i] for run in measured) for i in (0, 1))
        peak = max(run[0][2] for run in measured)
        rate = args.rows / total
        baseline = baseline or rate
        net, net_cpu = total - startup, cpu - startup_cpu
        print(
            f"{project!s:<24} {total:>8.2f} {rate:>8,.0f} {args.rows / max(net, 1e-9):>13,.0f} "
            f"{startup:>8.2f}s {cpu:>6.1f} {args.rows / max(net_cpu, 1e-9):>10,.0f} "
            f"{peak:>5,.0f} MiB {rate / baseline:>6.0%}"
        )
    print(f"load average {os.getloadavg()[0]:.2f} at end; inputs in {work}")


if __name__ == "__main__":
    main()
