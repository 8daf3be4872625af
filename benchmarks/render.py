"""Render time of the template: pure rendering, and a full `copier copy` with its tasks.

uv run python benchmarks/render.py [--repeat N]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from _common import load_average, median_seconds, render


def once(skip_tasks: bool) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        render(Path(tmp) / "project", skip_tasks=skip_tasks)
        return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    print(load_average())
    once(True)  # warm-up: imports, git clone cache
    print(f"{'what':48} {'median s':>9} {'min s':>7} {'max s':>7}")
    for label, skip in (
        ("render only (copier, no tasks)", True),
        ("copier copy with tasks (git init, uv lock)", False),
    ):
        median, low, high = median_seconds(lambda skip=skip: once(skip), args.repeat)
        print(f"{label:48} {median:9.2f} {low:7.2f} {high:7.2f}")
    print(load_average())


if __name__ == "__main__":
    main()
