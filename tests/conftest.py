"""Session fixtures: generated projects that several slow suites share."""

from __future__ import annotations

from pathlib import Path

import pytest

from .helpers import DATA, render, run
from .history import template_clone

# CI runs the tests on two workers, a file on one worker at a time, in the order collected
# (`--dist loadfile --no-loadscope-reorder`, .ci/run).
LONG = "long"


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Put the files with the most minutes of `long` tests first, the others after them.

    A worker that started a long file last would run alone at the end while the other waits.
    The sort is stable: a file's tests keep their order.
    """
    minutes: dict[Path, float] = {}
    for item in items:
        long = item.get_closest_marker(LONG)
        minutes[item.path] = minutes.get(item.path, 0.0) + (long.kwargs["minutes"] if long else 0)
    items.sort(key=lambda item: -minutes[item.path])


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


@pytest.fixture(scope="module")
def template_repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """This template's history plus the working tree, tagged with the next release."""
    return template_clone(tmp_path_factory.mktemp("template") / "copier-mlops")
