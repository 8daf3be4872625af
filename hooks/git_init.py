"""Make the generated project a git repository, unless it already is inside one.

Safe to re-run: an existing repository (the project's own or an enclosing one) is left alone.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path


def inside_git_work_tree(path: Path) -> bool:
    """Return True when ``path`` is already inside a git work tree."""
    result = subprocess.run(
        ["git", "rev-parse", "--is-inside-work-tree"],
        cwd=path,
        capture_output=True,
        text=True,
        check=False,
    )
    return result.returncode == 0 and result.stdout.strip() == "true"


def main(path: Path | None = None) -> int:
    """Initialise a repository on branch ``main`` in ``path`` (default: the current folder)."""
    path = path or Path.cwd()
    if shutil.which("git") is None:
        print("git_init: git is not installed; skipping 'git init'", file=sys.stderr)
        return 0
    if inside_git_work_tree(path):
        print("git_init: already inside a git repository; nothing to do")
        return 0
    subprocess.run(["git", "init", "--quiet", "--initial-branch=main", str(path)], check=True)
    print(f"git_init: initialised an empty repository in {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
