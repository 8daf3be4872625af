"""Session fixtures: generated projects that several slow suites share."""

from __future__ import annotations

from pathlib import Path

import pytest

from .helpers import DATA, render, run

USER_CSV = {"dataset_path": str(DATA / "customers.csv"), "target_column": "churn"}


def _setup_and_run_pipeline(path: Path) -> Path:
    run(["make", "setup"], path)
    run(["make", "pipeline"], path)
    return path


@pytest.fixture(scope="session")
def default_project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A project rendered with every default, set up, with its pipeline run once."""
    path = render(tmp_path_factory.mktemp("default") / "project")
    return _setup_and_run_pipeline(path)


@pytest.fixture(scope="session")
def csv_project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A project trained on a user CSV (categoricals, missing values, string target)."""
    path = render(tmp_path_factory.mktemp("csv") / "project", USER_CSV)
    return _setup_and_run_pipeline(path)
