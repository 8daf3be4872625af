"""Time `copier update` from each recorded older version to the working tree.

For each version in tests/history.py: render it, commit, then time `copier update --trust
--defaults` (tasks included, so `uv lock` runs as for a user). Prints seconds per version;
the figure is the maintainer's wait, not counting `make setup` / `make pipeline` afterwards.

    uv run python benchmarks/update.py [--repeat N]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import copier
from _common import ROOT, env_for

from tests.history import RECORDED, git, template_clone


def one_update(template: Path, ref: str, workdir: Path) -> float:
    project = workdir / "project"
    copier.run_copy(
        str(template), str(project), defaults=True, unsafe=True, quiet=True, vcs_ref=ref,
        data={"model": "linear"} if ref == RECORDED["question-model"].ref else {},
    )  # fmt: skip
    git("add", "--all", cwd=project)
    git("-c", "user.name=b", "-c", "user.email=b@example.com", "commit", "-qm", "old",
        "--no-verify", cwd=project)  # fmt: skip
    start = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "copier", "update", "--trust", "--defaults", "--quiet",
         "--vcs-ref", "HEAD"],
        cwd=project, env=env_for(bytecode=True), check=True, capture_output=True,
    )  # fmt: skip
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    print(f"template: {ROOT} (working tree)")
    print(
        f"PYTHONDONTWRITEBYTECODE in this shell: {os.environ.get('PYTHONDONTWRITEBYTECODE', '')!r}"
    )
    with tempfile.TemporaryDirectory() as tmp:
        template = template_clone(Path(tmp) / "copier-mlops")
        for name, recorded in RECORDED.items():
            times = []
            for run in range(args.repeat):
                workdir = Path(tmp) / f"{name}-{run}"
                workdir.mkdir()
                times.append(one_update(template, recorded.ref, workdir))
            print(
                f"copier update from {name} ({recorded.ref[:7]}): median "
                f"{statistics.median(times):.1f} s over {len(times)} "
                f"(min {min(times):.1f}, max {max(times):.1f})"
            )


if __name__ == "__main__":
    main()
