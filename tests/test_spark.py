"""``predict --engine spark`` of a generated project: pyspark stays out of the default install,
and with the ``spark`` extra installed the Spark job predicts what the local ``predict`` does on
the same rows (CSV and Parquet), on a real local Spark session (Java 17), also for a model with
date, text and team-feature steps, and refuses NaN predictions as ``predict`` does.

The slow test installs the extra and runs the generated project's own Spark tests, which skip
where pyspark is absent: here they must run, so that skip never hides in CI.
"""

from __future__ import annotations

import json
import re
import tomllib
from collections.abc import Iterator
from pathlib import Path

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
def spark_project(default_project: Path) -> Iterator[Path]:
    """The shared default project (pipeline run: a champion) with the spark extra installed
    for this module only: the other suites run its tests without pyspark, as users do."""
    run(["uv", "sync", "--locked", "--extra", "spark"], default_project)
    yield default_project
    run(["uv", "sync", "--locked"], default_project)


# Generated tests this one names: what the Spark job must do beyond the example's layout.
GENERATED_SPARK_TESTS = [
    "test_spark_scores_dates_text_and_a_team_feature_as_the_local_engine",
    "test_spark_refuses_nan_predictions_and_writes_nothing",
]


@pytest.mark.slow
@pytest.mark.long(minutes=1.5)
def test_generated_spark_tests_run_and_pass(spark_project: Path) -> None:
    # when the project's own Spark tests run with the extra installed
    result = run(
        ["uv", "run", "--no-sync", "pytest", "tests/test_spark.py", "-rs", "-v"],
        spark_project,
        env=LOCAL_SPARK,
    )

    # then they ran, none skipped: a model with date, text and team-feature steps scored as
    # the local engine scores it, NaN predictions refused, among them
    summary = result.stdout.strip().splitlines()[-1]
    print(summary)
    assert re.search(r"\b\d+ passed\b", summary) and "skipped" not in summary, result.stdout
    for name in GENERATED_SPARK_TESTS:
        assert re.search(rf"::{name}(\[\w+\])? PASSED", result.stdout), f"{name} did not pass"


# Run in the project (pandas is not a dependency of this repository): argv = what to do.
MAKE_ROWS = """
import sys
import pandas as pd
rows = pd.read_parquet("data/processed/test.parquet")
rows.insert(0, "row_id", range(len(rows)))
rows.to_csv(f"{sys.argv[1]}/rows.csv", index=False)
rows.to_parquet(f"{sys.argv[1]}/rows.parquet", index=False)
"""
# Prints, per Spark output, rows scored and rows whose prediction differs from the CLI's.
COMPARE = """
import json, sys
from pathlib import Path
import pandas as pd
folder = Path(sys.argv[1])
expected = pd.read_csv(folder / "local.csv").set_index("row_id")["prediction"]
as_csv = pd.concat(pd.read_csv(part) for part in (folder / "spark.csv").glob("part-*"))
found = {"CSV": as_csv, "Parquet": pd.read_parquet(folder / "spark.parquet")}
print(json.dumps({
    name: {
        "rows": len(scored),
        "differ": int((scored.set_index("row_id")["prediction"] != expected).sum()),
        "classes": {str(k): int(v) for k, v in scored["prediction"].value_counts().items()},
    }
    for name, scored in found.items()
}))
"""


@pytest.mark.slow
def test_spark_predictions_equal_the_cli_on_the_same_rows(
    spark_project: Path, tmp_path: Path
) -> None:
    # given the test split with a row id, as CSV and as Parquet
    python = str(spark_project / ".venv" / "bin" / "python")
    run([python, "-c", MAKE_ROWS, str(tmp_path)], spark_project)
    rows = len((tmp_path / "rows.csv").read_text().splitlines()) - 1
    cli = ["uv", "run", "--no-sync", PACKAGE, "predict"]

    # when the single-process CLI and the Spark job score them with the champion
    local = run(
        [*cli, "-i", str(tmp_path / "rows.csv"), "-o", str(tmp_path / "local.csv")], spark_project
    )
    print(f"predict -i rows.csv -o local.csv: {local.stdout.strip()}")
    # The console script itself, as a scheduler runs it: no activated venv on PATH, whose
    # `python3` Spark's Python workers would otherwise run.
    script = [str(spark_project / ".venv" / "bin" / PACKAGE), "predict"]
    for source, output in (("rows.csv", "spark.csv"), ("rows.parquet", "spark.parquet")):
        arguments = ["--engine", "spark", "-i", str(tmp_path / source)]
        spark = run(
            [*script, *arguments, "-o", str(tmp_path / output)], spark_project, env=LOCAL_SPARK
        )
        print(f"predict --engine spark -i {source} -o {output}: {spark.stdout.strip()}")

    # then every row has the same prediction, whatever the input's format
    compared = json.loads(run([python, "-c", COMPARE, str(tmp_path)], spark_project).stdout)
    print(f"{rows} rows: {compared}")
    for name, found in compared.items():
        assert found["rows"] == rows, f"{name}: {found['rows']} rows scored of {rows}"
        assert found["differ"] == 0, f"{name}: {found['differ']} predictions differ from the CLI's"
