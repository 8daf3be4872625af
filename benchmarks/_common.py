"""Shared helpers for the benchmark scripts: timing commands in generated projects."""

from __future__ import annotations

import os
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.helpers import project_env, render  # noqa: E402

__all__ = [
    "ROOT",
    "env_for",
    "load_average",
    "median_seconds",
    "render",
    "timed",
    "timed_with_cpu",
]


def env_for(bytecode: bool) -> dict[str, str]:
    """Project environment with bytecode caching on (a laptop) or off (this machine's default)."""
    env = project_env()
    if not bytecode:
        env["PYTHONDONTWRITEBYTECODE"] = "1"
    return env


def timed(command: Sequence[str], cwd: Path, env: dict[str, str]) -> float:
    """Seconds taken by ``command``; raises with its output when it fails."""
    return timed_with_cpu(command, cwd, env)[0]


def timed_with_cpu(command: Sequence[str], cwd: Path, env: dict[str, str]) -> tuple[float, float]:
    """Wall-clock and CPU seconds (user + system, all its processes) taken by ``command``.

    CPU time barely changes when another job shares the machine; wall-clock time does.
    """
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    result = subprocess.run(list(command), cwd=cwd, env=env, capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if result.returncode != 0:
        raise SystemExit(
            f"{' '.join(command)} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
        )
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return elapsed, cpu


def median_seconds(action: Callable[[], float], repeat: int) -> tuple[float, float, float]:
    """(median, min, max) of ``repeat`` runs of ``action``."""
    values = [action() for _ in range(repeat)]
    return statistics.median(values), min(values), max(values)


def load_average() -> str:
    """The 1/5/15-minute load averages, printed with figures taken on a shared machine."""
    one, five, fifteen = os.getloadavg()
    return f"load average {one:.2f} {five:.2f} {fifteen:.2f} on {os.cpu_count()} CPUs"


def bytecode_label(bytecode: bool) -> str:
    return "bytecode cached" if bytecode else "PYTHONDONTWRITEBYTECODE=1"


os.environ.setdefault("UV_PYTHON_DOWNLOADS", "never")
