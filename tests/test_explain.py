"""Explanations and notebooks of a generated project (issue 17, Build 7 and 8).

- ``evaluate`` measures permutation importance: a DVC plot and MLflow artifacts of the run;
- ``explain --input rows.csv`` gives each row's per-feature contributions, with SHAP's tree
  method when the ``explain`` extra is installed;
- ``notebooks/`` holds an exploration notebook, committed without outputs, that the project's
  own tests execute with nbclient.

The slow tests install the ``explain`` and ``notebooks`` extras and run the project's own tests
of both, which skip SHAP's case where it is absent: here they must run, so that skip never
hides in CI.
"""

from __future__ import annotations

import csv
import json
import re
import tomllib
from collections.abc import Iterator
from pathlib import Path

import pytest

from .helpers import PACKAGE, render, run


def test_the_notebook_renders_as_a_clean_notebook_importing_the_package(tmp_path: Path) -> None:
    # given a project rendered under another package name
    project = render(tmp_path / "project", {"package_name": "churn_model"}, skip_tasks=True)

    # when its notebook and its dependencies are read
    notebook = json.loads((project / "notebooks" / "exploration.ipynb").read_text())
    meta = tomllib.loads((project / "pyproject.toml").read_text())
    hooks = (project / ".pre-commit-config.yaml").read_text()

    # then it is an nbformat 4 notebook without outputs that imports that package
    assert notebook["nbformat"] == 4, notebook.keys()
    code = ["".join(cell["source"]) for cell in notebook["cells"] if cell["cell_type"] == "code"]
    assert any("from churn_model.config import" in source for source in code), code
    assert all(
        not cell.get("outputs") and cell.get("execution_count") is None
        for cell in notebook["cells"]
        if cell["cell_type"] == "code"
    ), "the template's notebook must carry no outputs"
    # and Jupyter, SHAP are optional extras, the notebook runner a test dependency, and
    # nbstripout strips outputs on commit
    extras = meta["project"]["optional-dependencies"]
    assert any(d.startswith("jupyterlab") for d in extras["notebooks"]), extras
    assert any(d.startswith("shap") for d in extras["explain"]), extras
    assert any(d.startswith("nbclient") for d in meta["dependency-groups"]["dev"]), meta
    assert "id: nbstripout" in hooks and "types: [jupyter]" in hooks, hooks


@pytest.fixture(scope="module")
def explain_project(default_project: Path) -> Iterator[Path]:
    """The shared default project (pipeline run: a champion) with the explain and notebooks
    extras installed for this module only: the other suites run without them, as users do."""
    run(["uv", "sync", "--locked", "--extra", "explain", "--extra", "notebooks"], default_project)
    yield default_project
    run(["uv", "sync", "--locked"], default_project)


@pytest.mark.slow
def test_generated_explain_and_notebook_tests_run_and_pass(explain_project: Path) -> None:
    # when the project's own explanation and notebook tests run with the extras installed
    tests = ["tests/test_explain.py", "tests/test_notebooks.py"]
    result = run(
        ["uv", "run", "--no-sync", "pytest", *tests, "-v", "-rs", "-p", "no:cacheprovider"],
        explain_project,
    )

    # then they ran, none skipped: SHAP's case included, the notebook executed by nbclient
    summary = result.stdout.strip().splitlines()[-1]
    print(summary)
    assert re.search(r"\b\d+ passed\b", summary) and "skipped" not in summary, result.stdout
    assert "test_notebook_runs_without_error[exploration.ipynb] PASSED" in result.stdout
    assert "test_trees_are_explained_by_shap_values" in result.stdout, result.stdout


# Run in the project (pandas is not a dependency of this repository): argv = the output folder.
MAKE_ROWS = """
import sys
import pandas as pd
rows = pd.read_parquet("data/processed/test.parquet").head(25).drop(columns="target")
rows.to_csv(f"{sys.argv[1]}/rows.csv", index=False)
"""


@pytest.mark.slow
def test_explain_gives_each_row_of_the_champion_shap_contributions(
    explain_project: Path, tmp_path: Path
) -> None:
    # given 25 rows of the held-out data
    run(["uv", "run", "--no-sync", "python", "-c", MAKE_ROWS, str(tmp_path)], explain_project)
    features = next(csv.reader((tmp_path / "rows.csv").open()))

    # when the champion (hist_gradient_boosting) explains them, SHAP installed
    output = tmp_path / "explained.csv"
    command = [PACKAGE, "explain", "--input", str(tmp_path / "rows.csv"), "--output", str(output)]
    result = run(["uv", "run", "--no-sync", *command], explain_project)

    # then each row has its prediction and one contribution per feature, by SHAP's tree method
    with output.open() as file:
        table = list(csv.DictReader(file))
    assert len(table) == 25, result.stdout
    assert set(features) <= set(table[0]), table[0].keys()
    methods = {row["method"] for row in table}
    assert methods == {"shap.TreeExplainer: Shapley values of the raw output"}, methods
    assert all(row["prediction"] in {"0", "1"} for row in table), table[0]
    assert any(float(table[0][name]) != 0.0 for name in features), table[0]


READ_ARTIFACTS = """
import json, mlflow
mlflow.set_tracking_uri("sqlite:///mlflow.db")
run_id = json.load(open("models/run.json"))["run_id"]
client = mlflow.MlflowClient()
print(json.dumps([item.path for item in client.list_artifacts(run_id, "plots")]))
"""


@pytest.mark.slow
def test_evaluate_records_permutation_importance_as_a_plot_and_artifact(
    default_project: Path,
) -> None:
    # when the pipeline has run (the shared fixture ran it once)
    with (default_project / "reports" / "plots" / "importance.csv").open() as file:
        table = list(csv.DictReader(file))
    plots = run(["uv", "run", "--no-sync", "dvc", "plots", "show", "--json"], default_project)
    artifacts = run(
        ["uv", "run", "--no-sync", "python", "-c", READ_ARTIFACTS], default_project
    ).stdout
    metrics = json.loads((default_project / "reports" / "metrics.json").read_text())

    # then every feature has an importance, largest first, on the bounded test sample
    assert len(table) == 30, table  # breast_cancer's features
    importances = [float(row["importance"]) for row in table]
    assert importances == sorted(importances, reverse=True), importances
    assert importances[0] > 0, table[:3]
    assert metrics["importance_rows"] == metrics["test_rows"], metrics  # under the 10,000 bound
    # and DVC draws it, MLflow keeps its table and figure with the run
    assert "Permutation importance" in plots.stdout, plots.stdout[:2000]
    expected = {"plots/importance.json", "plots/importance.png"}
    assert expected <= set(json.loads(artifacts)), artifacts
