"""Slow tier: a regression project runs end to end, and a forced re-run gives the same metrics.

A file of its own (it renders its own project): CI's workers take whole files, and this one
need not wait behind the other generated-project tests.
"""

from __future__ import annotations

import pytest

from .helpers import render, run
from .test_generated import metrics, registry

pytestmark = pytest.mark.slow


@pytest.mark.long(minutes=4)
def test_regression_project_runs_end_to_end_and_reproducibly(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    project = render(tmp_path_factory.mktemp("regression") / "project", {"task": "regression"})
    run(["make", "setup"], project)
    run(["make", "pipeline"], project)
    first = metrics(project)

    run(["make", "test"], project)
    run(["uv", "run", "dvc", "repro", "--force"], project)

    assert registry(project)["promoted"] is True
    assert first["primary_metric"] == "r2" and first["gain_over_baseline"] > 0.2, first
    assert metrics(project) == first, "a forced re-run must give identical metrics"
