"""``predict --engine spark`` of a generated project: pyspark stays out of the default install,
and with the ``spark`` extra installed the Spark job predicts what the local ``predict`` does on
the same rows (CSV and Parquet), on a real local Spark session (Java 17).

The slow test installs the extra and runs the generated project's own Spark tests, which skip
where pyspark is absent: here they must run, so that skip never hides in CI.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pandas as pd
import pytest

from .helpers import PACKAGE, render, run

# Two cores and a small driver: the suite shares the machine.
LOCAL_SPARK = {
    "PYSPARK_SUBMIT_ARGS": "--master local[2] --driver-memory 1g "
    "--conf spark.ui.enabled=false pyspark-shell"
}


def test_pyspark_is_an_optional_extra_not_a_default_dependency(tmp_path: Path) -> None:
    # given a project rendered with every default
    project = render(tmp_path / "project", skip_tasks=True)

    # when its dependencies are read
    meta = tomllib.loads((project / "pyproject.toml").read_text())["project"]

    # then pyspark is in the 'spark' extra only
    assert not [d for d in meta["dependencies"] if d.startswith("pyspark")], meta["dependencies"]
    assert [d for d in meta["optional-dependencies"]["spark"] if d.startswith("pyspark")], meta


@pytest.fixture(scope="module")
def spark_project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A default project with the spark extra installed and its pipeline run (a champion)."""
    project = render(tmp_path_factory.mktemp("spark") / "project")
    run(["uv", "sync", "--locked", "--extra", "spark"], project)
    run(["make", "pipeline"], project)
    return project


@pytest.mark.slow
def test_generated_spark_tests_run_and_pass(spark_project: Path) -> None:
    # when the project's own Spark tests run with the extra installed
    result = run(
        ["uv", "run", "--no-sync", "pytest", "tests/test_spark.py", "-rs", "-q"],
        spark_project,
        env=LOCAL_SPARK,
    )

    # then they ran, none skipped
    summary = result.stdout.strip().splitlines()[-1]
    print(summary)
    assert re.search(r"\b\d+ passed\b", summary) and "skipped" not in summary, result.stdout


@pytest.mark.slow
def test_spark_predictions_equal_the_cli_on_the_same_rows(spark_project: Path) -> None:
    # given the test split with a row id, as CSV and as Parquet
    rows = pd.read_parquet(spark_project / "data/processed/test.parquet")
    rows.insert(0, "row_id", range(len(rows)))
    rows.to_csv(spark_project / "rows.csv", index=False)
    rows.to_parquet(spark_project / "rows.parquet", index=False)
    cli = [PACKAGE, "predict"]

    # when the single-process CLI and the Spark job score them with the champion
    local = run(
        ["uv", "run", "--no-sync", *cli, "-i", "rows.csv", "-o", "local.csv"], spark_project
    )
    outputs = {"spark.csv": "rows.csv", "spark.parquet": "rows.parquet"}
    for output, source in outputs.items():
        spark = run(
            ["uv", "run", "--no-sync", *cli, "--engine", "spark", "-i", source, "-o", output],
            spark_project,
            env=LOCAL_SPARK,
        )
        print(f"predict --engine spark -i {source} -o {output}: {spark.stdout.strip()}")
    print(f"predict -i rows.csv -o local.csv: {local.stdout.strip()}")

    # then every row has the same prediction, whatever the input's format
    expected = pd.read_csv(spark_project / "local.csv").set_index("row_id")["prediction"]
    as_csv = pd.concat(pd.read_csv(p) for p in (spark_project / "spark.csv").glob("part-*"))
    as_parquet = pd.read_parquet(spark_project / "spark.parquet")
    for name, scored in {"CSV": as_csv, "Parquet": as_parquet}.items():
        got = scored.set_index("row_id")["prediction"].sort_index()
        assert len(got) == len(rows), f"{name}: {len(got)} rows of {len(rows)}"
        assert got.tolist() == expected.sort_index().tolist(), f"{name}: predictions differ"
        print(
            f"{name}: {len(got)} rows, predictions equal the CLI's ({got.value_counts().to_dict()})"
        )
