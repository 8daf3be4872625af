"""Time from render to green (setup + pipeline + test) and of a no-op `dvc repro`.

Measured both ways: with bytecode caching (as on a laptop) and with PYTHONDONTWRITEBYTECODE=1
(as this CI machine is configured). The uv package cache is warmed first, so `make setup`
installs from the cache as it would on a developer's second project.

    uv run python benchmarks/pipeline.py [--noop-repeat N]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from _common import bytecode_label, env_for, median_seconds, render, timed


def measure(bytecode: bool, noop_repeat: int) -> dict[str, float]:
    env = env_for(bytecode)
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        project = render(Path(tmp) / "project")
        figures = {"render": time.perf_counter() - start}
        figures["make setup"] = timed(["make", "setup"], project, env)
        figures["make pipeline"] = timed(["make", "pipeline"], project, env)
        figures["make test"] = timed(["make", "test"], project, env)
        figures["render to green"] = sum(figures.values())
        noop = median_seconds(
            lambda: timed(["uv", "run", "dvc", "repro"], project, env), noop_repeat
        )
        figures["no-op dvc repro (median)"] = noop[0]
        figures["no-op .venv/bin/dvc repro (median)"] = median_seconds(
            lambda: timed([".venv/bin/dvc", "repro"], project, env), noop_repeat
        )[0]
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--noop-repeat", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:  # warm uv's package cache
        project = render(Path(tmp) / "warm")
        timed(["uv", "sync", "--locked"], project, env_for(True))
    results = {flag: measure(flag, args.noop_repeat) for flag in (True, False)}
    print(f"{'seconds':36} {bytecode_label(True):>18} {bytecode_label(False):>26}")
    for key in results[True]:
        print(f"{key:36} {results[True][key]:18.2f} {results[False][key]:26.2f}")


if __name__ == "__main__":
    main()
