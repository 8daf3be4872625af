"""Rendering the template and running what it generated, for every test suite here."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import copier

TEMPLATE_ROOT = Path(__file__).resolve().parents[1]
DATA = Path(__file__).resolve().parent / "data"
PACKAGE = "my_ml_project"


def project_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """Environment for commands run inside a generated project.

    - ``UV_PYTHON_DOWNLOADS=never``: use the machine's Python, never try a download.
    - ``DVC_NO_ANALYTICS=1``: no telemetry calls from DVC.
    - no ``PYTHONDONTWRITEBYTECODE``: let Python cache bytecode as on a user's laptop (this
      machine sets it; with it every import recompiles and the suite runs about twice as long).
    - no ``VIRTUAL_ENV``: the generated project uses its own ``.venv``, not this repository's.
    """
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in {"PYTHONDONTWRITEBYTECODE", "VIRTUAL_ENV", "UV_PROJECT_ENVIRONMENT"}
    }
    env.pop("MLFLOW_TRACKING_URI", None)  # the project's own default, not the caller's server
    env.update({"UV_PYTHON_DOWNLOADS": "never", "DVC_NO_ANALYTICS": "1"})
    if extra:
        env.update(extra)
    return env


def render(dest: Path, data: Mapping[str, Any] | None = None, *, skip_tasks: bool = False) -> Path:
    """Render the working tree of this template (HEAD plus uncommitted changes) into ``dest``."""
    copier.run_copy(
        str(TEMPLATE_ROOT),
        str(dest),
        data=dict(data or {}),
        defaults=True,
        unsafe=True,
        quiet=True,
        vcs_ref="HEAD",
        skip_tasks=skip_tasks,
    )
    return dest


def run(
    command: Sequence[str],
    cwd: Path,
    *,
    check: bool = True,
    timeout: float = 900,
    env: Mapping[str, str] | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run ``command`` in ``cwd``; on an unexpected failure, fail with its output."""
    result = subprocess.run(
        list(command),
        cwd=cwd,
        env=project_env(env),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if check and result.returncode != 0:
        raise AssertionError(
            f"{' '.join(command)} exited {result.returncode} in {cwd}\n"
            f"--- stdout ---\n{result.stdout[-6000:]}\n--- stderr ---\n{result.stderr[-6000:]}"
        )
    return result
