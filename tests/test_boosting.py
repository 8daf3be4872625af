"""LightGBM and XGBoost projects, end to end: ``make setup`` installs the library params.yaml
names, the pipeline registers a champion, the generated library tests (which skip where a
library is absent: here both are installed, so the skip never hides) and lint pass, and the live
service, batch ``predict`` and Spark answer the library's own predictions; ``explain`` gives
each library's models SHAP values that add up to the library's raw output.

Two projects cover both libraries and both tasks: LightGBM on a user CSV (classification,
string labels, categories, missing values), XGBoost on the built-in regression example; the
generated ``tests/test_boosting.py`` covers the other two pairs in each project.
"""

from __future__ import annotations

import json
import re
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from .helpers import DATA, PACKAGE, render, run
from .server import Server, call, free_port, start_server, stop_server
from .test_spark import LOCAL_SPARK

pytestmark = pytest.mark.slow

PROJECTS = {
    "lightgbm": {
        "estimator": "lightgbm",
        "dataset_path": str(DATA / "customers.csv"),
        "target_column": "churn",
    },
    "xgboost": {"estimator": "xgboost", "task": "regression"},
}
# The generated tests of the libraries: every library and task in one project (in-process
# training, loading and serving), and the loader's trusted types of every estimator family.
MODEL_TESTS = ["tests/test_boosting.py", "tests/test_model_loader.py"]
# Run in the project, argv[1] a folder: writes the test split's first rows with a row id to
# rows.csv and prints them as JSON instances with the predictions of the model the pipeline
# saved, loaded through the project's loader (the library's own predict).
LIBRARY_PREDICTIONS = f"""
import json, sys
from pathlib import Path
import pandas as pd
from {PACKAGE}.core.schema import load_schema
from {PACKAGE}.io.model_loader import load_pipeline
schema = load_schema(Path("data/schema.yaml"))
rows = pd.read_parquet("data/processed/test.parquet")[schema.feature_names].head(40)
model = load_pipeline("models/candidate")
rows.insert(0, "row_id", range(len(rows)))
rows.to_csv(Path(sys.argv[1]) / "rows.csv", index=False)
features = rows[schema.feature_names]
print(json.dumps({{
    "instances": features.astype(object).where(features.notna(), None).to_dict("records"),
    "predictions": model.predict(features).tolist(),
    "library": type(model[-1]).__module__,
}}))
"""
# Run in the project: the predictions of a batch output (a CSV, or Spark's folder of parts)
# in row id order.
READ_OUTPUT = """
import json, sys
from pathlib import Path
import pandas as pd
path = Path(sys.argv[1])
parts = sorted(path.glob("part-*")) if path.is_dir() else [path]
scored = pd.concat(pd.read_csv(part) for part in parts).sort_values("row_id")
print(json.dumps(scored["prediction"].tolist()))
"""


@pytest.fixture(scope="module", params=list(PROJECTS))
def project(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A project of each library, set up and with its pipeline run."""
    path = render(tmp_path_factory.mktemp(request.param) / "project", PROJECTS[request.param])
    run(["make", "setup"], path)
    run(["make", "pipeline"], path)
    return path


def kind_of(project: Path) -> str:
    answers = yaml.safe_load((project / ".copier-answers.yml").read_text())
    return str(answers["estimator"])


def importable(project: Path, module: str) -> bool:
    python = str(project / ".venv" / "bin" / "python")
    return run([python, "-c", f"import {module}"], project, check=False).returncode == 0


def library_predictions(project: Path, folder: Path) -> dict[str, Any]:
    """Test rows (also written to ``folder``/rows.csv) and the library's predictions."""
    python = str(project / ".venv" / "bin" / "python")
    result = run([python, "-c", LIBRARY_PREDICTIONS, str(folder)], project)
    data: dict[str, Any] = json.loads(result.stdout)
    return data


def test_setup_installs_the_library_params_yaml_names_and_no_other(project: Path) -> None:
    kind = kind_of(project)
    other = ({"lightgbm", "xgboost"} - {kind}).pop()

    assert importable(project, kind), f"make setup did not install {kind}"
    assert not importable(project, other), f"{other} installed though params.yaml names {kind}"


def test_the_pipeline_trains_the_library_and_registers_a_champion(
    project: Path, tmp_path: Path
) -> None:
    registry = json.loads((project / "reports/registry.json").read_text())
    metrics = json.loads((project / "reports/metrics.json").read_text())
    described = (project / "models/candidate/MLmodel").read_text()

    assert registry["promoted"] is True, registry
    assert metrics["gain_over_baseline"] > 0.1, metrics
    assert "serialization_format: skops" in described, described
    assert library_predictions(project, tmp_path)["library"].startswith(kind_of(project))


def test_the_live_service_answers_the_library_predictions(project: Path, tmp_path: Path) -> None:
    # given the library's own predictions on test rows, and the project's service
    expected = library_predictions(project, tmp_path)
    port = free_port()
    server = start_server(["make", "serve", f"PORT={port}"], project, tmp_path / "serve.log", port)
    try:
        # when the service is ready and scores the same rows
        ready = wait_ready(server)
        answer = call(server.base, "/predict", {"instances": expected["instances"]})
    finally:
        stop_server(server)

    # then it says the library scores, and answers exactly the library's predictions
    assert ready.get("scorer") == kind_of(project), ready
    assert answer.status == 200, answer.body
    assert answer.body["predictions"] == expected["predictions"], answer.body
    assert re.search(r'"scorer": ?"' + kind_of(project), server.output()), server.output()


def wait_ready(server: Server) -> dict[str, object]:
    deadline = time.monotonic() + 120
    while True:
        answer = call(server.base, "/ready")
        if answer.status == 200 or time.monotonic() > deadline:
            assert answer.status == 200, (answer.body, server.output())
            return dict(answer.body)
        time.sleep(0.5)


# Once: with both libraries installed the generated tests cover both libraries and tasks.
@pytest.mark.parametrize("project", ["xgboost"], indirect=True)
def test_generated_model_tests_pass_with_both_libraries(project: Path) -> None:
    # given both libraries and SHAP installed, so that no library test of the project skips
    # (SHAP's tree path on each library's models included)
    extras = ["--extra", "lightgbm", "--extra", "xgboost", "--extra", "explain"]
    run(["uv", "sync", "--locked", *extras], project)

    # when the project's library and loader tests run (the whole suite runs on the default and
    # CSV projects: test_generated.py)
    tests = run(["uv", "run", "--no-sync", "pytest", "-rs", *MODEL_TESTS], project)

    # then they pass, and none skips
    summary = tests.stdout.strip().splitlines()[-1]
    assert re.search(r"\b\d+ passed\b", summary), tests.stdout[-3000:]
    assert "skipped" not in summary and "failed" not in summary, tests.stdout[-3000:]


# Lint once: with the libraries typed as Any (mypy skips them), lint does not depend on which
# library is installed.
@pytest.mark.parametrize("project", ["xgboost"], indirect=True)
def test_generated_code_passes_lint(project: Path) -> None:
    run(["make", "lint"], project)


# Spark once, on the LightGBM project: its executors load through the same loader.
@pytest.mark.parametrize("project", ["lightgbm"], indirect=True)
def test_batch_predict_and_spark_answer_the_library_predictions(
    project: Path, tmp_path: Path
) -> None:
    # given test rows with an id, and the spark extra next to the library
    run(["uv", "sync", "--locked", "--extra", "lightgbm", "--extra", "spark"], project)
    expected = library_predictions(project, tmp_path)
    rows = str(tmp_path / "rows.csv")

    # when batch predict scores them in this process and on Spark (the console script, as a
    # scheduler runs it)
    script = str(project / ".venv" / "bin" / PACKAGE)
    run([script, "predict", "-i", rows, "-o", str(tmp_path / "local.csv")], project)
    spark = [script, "predict", "--engine", "spark", "-i", rows, "-o", str(tmp_path / "spark.csv")]
    run(spark, project, env=LOCAL_SPARK)

    # then both answer the library's predictions, row for row
    python = str(project / ".venv" / "bin" / "python")
    for output in ("local.csv", "spark.csv"):
        read = run([python, "-c", READ_OUTPUT, str(tmp_path / output)], project)
        assert json.loads(read.stdout) == expected["predictions"], (output, read.stdout)
