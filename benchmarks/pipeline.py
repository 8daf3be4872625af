"""Time from render to green (setup + pipeline + test) and of a no-op `dvc repro`.

Measured both ways: with bytecode caching (as on a laptop) and with PYTHONDONTWRITEBYTECODE=1
(as this CI machine is configured). The uv package cache is warmed first, so `make setup`
installs from the cache as it would on a developer's second project. Each figure is the median
of --repeat fresh renders; the load average is printed because the machine may be shared.

    uv run python benchmarks/pipeline.py [--repeat N] [--noop-repeat N] [--stages]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from _common import (
    bytecode_label,
    env_for,
    load_average,
    median_seconds,
    render,
    timed,
    timed_with_cpu,
)

STAGES = ("ingest", "validate", "split", "train", "evaluate", "reference", "register")


def measure(bytecode: bool, noop_repeat: int, stages: bool) -> dict[str, float]:
    """Wall-clock seconds of each step on a fresh render, and CPU seconds of the make targets."""
    env = env_for(bytecode)
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        project = render(Path(tmp) / "project")
        figures = {"render": time.perf_counter() - start}
        cpu = {}
        for target in ("setup", "pipeline", "test"):
            figures[f"make {target}"], cpu[f"make {target} (CPU s)"] = timed_with_cpu(
                ["make", target], project, env
            )
        figures["render to green"] = sum(figures.values())
        figures.update(cpu)
        noop = median_seconds(
            lambda: timed(["uv", "run", "dvc", "repro"], project, env), noop_repeat
        )
        figures["no-op dvc repro (median)"] = noop[0]
        figures["no-op .venv/bin/dvc repro (median)"] = median_seconds(
            lambda: timed([".venv/bin/dvc", "repro"], project, env), noop_repeat
        )[0]
        if stages:  # each stage alone, as `dvc repro` starts it (imports included)
            for stage in STAGES:
                figures[f"stage {stage}"] = timed(
                    ["uv", "run", "python", "-m", f"my_ml_project.stages.{stage}"], project, env
                )
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=1, help="fresh renders per mode")
    parser.add_argument("--noop-repeat", type=int, default=5)
    parser.add_argument("--stages", action="store_true", help="also time each stage alone")
    parser.add_argument(
        "--mode", choices=("both", "bytecode", "no-bytecode"), default="both", help="bytecode"
    )
    args = parser.parse_args()
    print(f"before: {load_average()}", flush=True)
    with tempfile.TemporaryDirectory() as tmp:  # warm uv's package cache
        project = render(Path(tmp) / "warm")
        timed(["uv", "sync", "--locked"], project, env_for(True))
    flags = {"both": (True, False), "bytecode": (True,), "no-bytecode": (False,)}[args.mode]
    runs = {
        flag: [measure(flag, args.noop_repeat, args.stages) for _ in range(args.repeat)]
        for flag in flags
    }
    results = {
        flag: {key: statistics.median(run[key] for run in done) for key in done[0]}
        for flag, done in runs.items()
    }
    label = "seconds" + (f" (median of {args.repeat})" if args.repeat > 1 else "")
    print(f"{label:36}" + "".join(f" {bytecode_label(flag):>26}" for flag in flags))
    for key in results[flags[0]]:
        print(f"{key:36}" + "".join(f" {results[flag][key]:26.2f}" for flag in flags))
    print(f"after: {load_average()}")


if __name__ == "__main__":
    main()
