"""benchmarks/scale.py on tiny data: its dataset generator and its table (no project rendered)."""

from __future__ import annotations

import csv
import importlib.util
from pathlib import Path
from types import ModuleType

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "scale.py"
MB = 1024 * 1024


@pytest.fixture(scope="module")
def scale() -> ModuleType:
    spec = importlib.util.spec_from_file_location("scale", SCRIPT)
    assert spec and spec.loader, f"cannot load {SCRIPT}"
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_dataset_follows_the_spec_and_is_seeded(scale: ModuleType, tmp_path: Path) -> None:
    # Given two files written with the same seed and one with another seed
    rows = 4000
    first, again, other = tmp_path / "a.csv", tmp_path / "b.csv", tmp_path / "c.csv"
    scale.write_dataset(first, rows, seed=0)
    scale.write_dataset(again, rows, seed=0)
    scale.write_dataset(other, rows, seed=1)

    # When the first is read back
    with first.open(newline="") as handle:
        table = list(csv.DictReader(handle))

    # Then it has the 24 columns, missing values only in x04..x06, and both labels
    assert first.read_bytes() == again.read_bytes(), "the same seed must write the same file"
    assert first.read_bytes() != other.read_bytes(), "another seed must write another file"
    assert len(table) == rows, f"expected {rows} rows, got {len(table)}"
    expected = [f"x{i:02d}" for i in range(20)] + ["region", "plan", "segment", "churned"]
    assert list(table[0]) == expected, f"columns {list(table[0])}"
    for column in expected[:20]:
        empty = sum(row[column] == "" for row in table) / rows
        if column in {"x04", "x05", "x06"}:
            assert 0.03 < empty < 0.07, f"{column}: {empty:.3f} missing, expected about 0.05"
        else:
            assert empty == 0, f"{column} must have no missing values, has {empty:.3f}"
        assert all(row[column] == "" or float(row[column]) == float(row[column]) for row in table)
    assert {row["region"] for row in table} == {"north", "south", "east", "west", "centre"}
    assert {row["plan"] for row in table} == {"basic", "plus", "pro"}
    assert {row["segment"] for row in table} == {"a", "b"}
    share = sum(row["churned"] == "yes" for row in table) / rows
    assert 0.2 < share < 0.8, f"label 'yes' share {share:.2f}: both classes must be common"


def test_table_gives_each_step_its_ratio_to_the_floor_and_its_target(scale: ModuleType) -> None:
    # Given figures of a run: a floor of 100 s / 1,000 MB with a 60 s fit
    disk = {key: 2 * MB for key in scale.DISK}
    stage = {"seconds": 5.0, "cpu_seconds": 4.0, "peak_mb": 500.0, "disk_after": disk}
    results = {
        "generation": {"seconds": 4.0, "peak_mb": 250.0},
        "pipeline": {
            "seconds": 150.0,
            "cpu_seconds": 140.0,
            "peak_mb": 1200.0,
            "startup_seconds": 2.0,
            "disk_before": {key: MB for key in scale.DISK},
            "stages": {"ingest": stage, "train": {**stage, "seconds": 66.0}},
        },
        "floor": {"seconds": 100.0, "peak_mb": 1000.0, "fit_seconds": 60.0, "roc_auc": 0.9},
        "scoring": {"seconds": 20.0, "peak_mb": 400.0, "rows_per_s": 50_000.0},
    }

    # When the table is formatted
    table = scale.format_table(results)

    # Then each step shows its time, CPU time and memory, then time and memory as multiples of
    # the floor, beside its target
    lines = table.splitlines()
    pipeline = next(line for line in lines if line.startswith("| make pipeline |"))
    assert "| 150.0 s | 140.0 s | 1200 MB | 1.50x | 1.20x |" in pipeline, pipeline
    assert "<= 1.5x time, <= 1.2x memory" in pipeline, pipeline
    train = next(line for line in lines if line.startswith("| - train"))
    assert "| 66.0 s | 4.0 s | 500 MB | 1.10x |" in train, f"train is compared to the fit: {train}"
    ingest = next(line for line in lines if line.startswith("| - ingest |"))
    assert "| 0.05x | 0.50x | < 0.10x floor time |" in ingest, ingest
    scoring = next(line for line in lines if line.startswith("| batch scoring"))
    assert "50,000 rows/s" in scoring, scoring
    # and disk use after rendering and after each stage
    assert "| (rendered) | 1.0 MB |" in table, table
    assert "| train | 2.0 MB |" in table, table


def test_stage_commands_are_read_from_dvc_yaml(scale: ModuleType, tmp_path: Path) -> None:
    # Given a dvc.yaml whose stages run Python modules
    (tmp_path / "dvc.yaml").write_text(
        "stages:\n  ingest:\n    cmd: python -m pkg.stages.ingest\n"
        "  train:\n    cmd: python -m pkg.stages.train --fast\n"
    )

    # When the benchmark reads the commands it watches for
    commands = scale.stage_commands(tmp_path)

    # Then each is the end of the stage process's command line, without the interpreter
    assert commands == {"ingest": "-m pkg.stages.ingest", "train": "-m pkg.stages.train --fast"}
