"""Slow tier: a user's table as a new user brings it, green on the first run.

A five-class, imbalanced daily table whose ``date`` column carries the signal and 5% of whose
rows lack the label: the date becomes date parts (not an ignored identifier), the unlabeled
rows are dropped and counted, the pipeline runs green. The same table as Parquet goes end to
end: import, pipeline, and ``predict`` from Parquet to Parquet.

Green includes the quality gate as generated for a user's table (relative: better than the
dummy baseline and the linear model, no absolute threshold): the model is registered.
"""

from __future__ import annotations

import csv
import json
import math
import random
from pathlib import Path

import pytest
import yaml

from .helpers import render, run

pytestmark = pytest.mark.slow

ROWS = 1000
UNLABELED = 50  # 5%


def weather_row(day: int, rng: random.Random) -> dict[str, object]:
    """Day ``day`` of the table: its season (the date's) decides most of the class."""
    season = math.cos(2 * math.pi * (day % 365) / 365)  # 1 in January, -1 in July
    temperature = round(12 - 10 * season + rng.gauss(0, 8), 1)
    draw = rng.random()
    if season > 0.5:
        label = "snow" if draw < 0.45 else "cloudy" if draw < 0.8 else "storm"
    elif season < -0.5:
        label = "sunny" if draw < 0.85 else "storm" if draw < 0.9 else "cloudy"
    else:
        label = "rain" if draw < 0.5 else "cloudy" if draw < 0.75 else "sunny"
    return {"temperature": temperature, "wind": round(abs(rng.gauss(10, 5)), 1), "label": label}


def write_weather(path: Path) -> None:
    """ROWS days from 2020-01-01, 5% of them without a label."""
    import datetime

    rng = random.Random(17)
    start = datetime.date(2020, 1, 1)
    unlabeled = set(rng.sample(range(ROWS), UNLABELED))
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, ["date", "temperature", "wind", "weather"])
        writer.writeheader()
        for day in range(ROWS):
            row = weather_row(day, rng)
            writer.writerow(
                {
                    "date": (start + datetime.timedelta(days=day)).isoformat(),
                    "temperature": row["temperature"],
                    "wind": row["wind"],
                    "weather": "" if day in unlabeled else row["label"],
                }
            )


def python(project: Path, code: str) -> str:
    return run(["uv", "run", "--no-sync", "python", "-c", code], project).stdout.strip()


@pytest.fixture(scope="module")
def weather_csv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("weather") / "weather.csv"
    write_weather(path)
    return path


@pytest.fixture(scope="module")
def weather_project(weather_csv: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = render(
        tmp_path_factory.mktemp("dated") / "project",
        {"dataset_path": str(weather_csv), "target_column": "weather"},
    )
    run(["make", "setup"], path)
    return path


def test_a_dated_five_class_table_with_unlabeled_rows_runs_green(weather_project: Path) -> None:
    # given a project generated from the weather CSV
    schema = yaml.safe_load((weather_project / "data/schema.yaml").read_text())
    kinds = {column["name"]: (column["type"], column["role"]) for column in schema["columns"]}
    assert kinds["date"] == ("datetime", "feature"), f"the date is a datetime feature: {kinds}"

    # when its pipeline runs
    result = run(["make", "pipeline"], weather_project)

    # then the unlabeled rows were dropped, counted, and said so
    assert f"dropped {UNLABELED} row(s) without a label" in result.stdout, result.stdout[-3000:]
    profile = json.loads((weather_project / "reports/data_profile.json").read_text())
    assert profile["unlabeled_rows_dropped"] == UNLABELED, profile
    assert profile["rows"] == ROWS - UNLABELED, profile
    # and the model saw the date's parts
    names = python(
        weather_project,
        "from my_ml_project.io.model_loader import load_pipeline; "
        "print(list(load_pipeline('models/candidate')"
        ".named_steps['preprocess'].get_feature_names_out()))",
    )
    assert "date_month" in names and "date_dayofyear" in names, names
    metrics = json.loads((weather_project / "reports/metrics.json").read_text())
    baseline, model = metrics["baseline"], metrics["test"]
    assert model["balanced_accuracy"] > baseline["balanced_accuracy"] + 0.2, (
        f"the date carries the signal: {metrics}"
    )
    # and the gate generated for a user's table registered it: green on the first run
    registry = json.loads((weather_project / "reports/registry.json").read_text())
    assert registry["promoted"] and registry["version"] == "1", registry


def test_a_parquet_dataset_goes_end_to_end(
    weather_project: Path, weather_csv: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    # given the weather table as Parquet, its dates as timestamps
    folder = tmp_path_factory.mktemp("parquet")
    source = folder / "weather.parquet"
    python(
        weather_project,
        f"import pandas as pd; frame = pd.read_csv({str(weather_csv)!r}); "
        f"frame.assign(date=pd.to_datetime(frame['date'])).to_parquet({str(source)!r})",
    )

    # when a project is generated from it, set up and its pipeline run
    project = render(folder / "project", {"dataset_path": str(source), "target_column": "weather"})
    assert (project / "data/raw/dataset.parquet").is_file()
    params = yaml.safe_load((project / "params.yaml").read_text())
    assert params["data"]["source"] == "data/raw/dataset.parquet", params["data"]
    schema = yaml.safe_load((project / "data/schema.yaml").read_text())
    assert {"name": "date", "type": "datetime", "role": "feature", "nullable": True} in schema[
        "columns"
    ], schema
    run(["make", "setup"], project)
    run(["make", "pipeline"], project)

    # then batch scoring reads and writes Parquet
    out = folder / "scored.parquet"
    run(
        [
            "uv",
            "run",
            "--no-sync",
            "my_ml_project",
            "predict",
            "--input",
            str(source),
            "--output",
            str(out),
            "--model",
            "models/candidate",
        ],
        project,
    )
    scored = python(
        project,
        f"import pandas as pd; f = pd.read_parquet({str(out)!r}); "
        "print(len(f), f['prediction'].isna().sum(), sorted(f['prediction'].unique()))",
    )
    assert scored.startswith(f"{ROWS} 0 "), scored
    # and the monitoring job checks the Parquet table, its dates and all, against training
    report = folder / "monitor"
    checked = run(
        [
            "uv",
            "run",
            "--no-sync",
            "my_ml_project",
            "monitor",
            "--current",
            str(source),
            "--model",
            "models/candidate",
            "--output-dir",
            str(report),
        ],
        project,
        check=False,
    )
    assert checked.returncode in (0, 1), f"monitor failed to run: {checked.stderr[-2000:]}"
    summary = json.loads((report / "summary.json").read_text())
    assert summary["current_rows"] == ROWS, f"monitor checked every row: {summary}"
    # the date's weekday, derived by the model's own step, was drift-tested; its year was not
    tested = [column["column"] for column in summary["features"]]
    assert "date_dayofweek" in tested and "date_year" not in tested, tested
