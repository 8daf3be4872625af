"""Slow tier: the pipeline reruns when its data file changes, in every configuration.

``ingest`` depends on the whole ``data/raw`` folder and refuses a data file elsewhere, so a CSV
or Parquet file brought after generation (the generated README's steps) is watched as much as
the one ``dataset_path`` copies in. Only ``dvc repro ingest`` runs here: the later stages are
covered by ``test_generated.py``.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from .conftest import USER_CSV
from .helpers import render, run

pytestmark = pytest.mark.slow

INGESTED = "data/interim/ingested.parquet"


def set_source(project: Path, source: str) -> None:
    """Point ``data.source`` in params.yaml at ``source``, as a user edits it."""
    params = project / "params.yaml"
    text, count = re.subn(r"(?m)^  source: .*$", f'  source: "{source}"', params.read_text())
    assert count == 1, "params.yaml has one data.source"
    params.write_text(text)


def python(project: Path, code: str) -> str:
    return run(["uv", "run", "--no-sync", "python", "-c", code], project).stdout.strip()


def ingested_rows(project: Path) -> int:
    return int(python(project, f"import pandas as pd; print(len(pd.read_parquet({INGESTED!r})))"))


def repro_ingest(project: Path) -> str:
    result = run(["uv", "run", "--no-sync", "dvc", "repro", "ingest"], project)
    return result.stdout


def keep_rows(path: Path, rows: int) -> None:
    """Cut a CSV file to its header and first ``rows`` rows."""
    lines = path.read_text().splitlines(keepends=True)
    path.write_text("".join(lines[: rows + 1]))


def cancer_csv(project: Path) -> None:
    """``data/raw/cancer.csv``, the example's table, written unless a test wrote it already
    (each test that reads it makes it, so any one of them runs alone)."""
    if (project / "data/raw/cancer.csv").exists():
        return
    (project / "data/raw").mkdir(parents=True, exist_ok=True)  # in git since 0.6.0
    python(
        project,
        "from sklearn.datasets import load_breast_cancer; "
        "load_breast_cancer(as_frame=True).frame.to_csv('data/raw/cancer.csv', index=False)",
    )


@pytest.fixture(scope="module")
def example_project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A default project (the scikit-learn example), set up, its pipeline not run."""
    path = render(tmp_path_factory.mktemp("stale") / "project")
    run(["make", "setup"], path)
    return path


def test_a_csv_brought_after_generation_reruns_ingest_when_it_changes(
    example_project: Path,
) -> None:
    # given the example project switched to a CSV in data/raw/, as its README says
    project = example_project
    cancer_csv(project)
    set_source(project, "data/raw/cancer.csv")
    run(["uv", "run", "--no-sync", "dvc", "add", "data/raw/cancer.csv"], project)
    first = repro_ingest(project)
    assert "Running stage 'ingest'" in first and ingested_rows(project) == 569, first

    # when the CSV is cut from 569 to 100 rows
    keep_rows(project / "data/raw/cancer.csv", 100)
    second = repro_ingest(project)

    # then ingest runs again and reads the new rows
    assert "Running stage 'ingest'" in second, second
    assert ingested_rows(project) == 100


def test_a_parquet_file_in_data_raw_is_watched_too(example_project: Path) -> None:
    project = example_project
    cancer_csv(project)
    write = "import pandas as pd; pd.read_csv('data/raw/cancer.csv').head({}).to_parquet('{}')"
    python(project, write.format(80, "data/raw/cancer.parquet"))
    set_source(project, "data/raw/cancer.parquet")
    repro_ingest(project)
    assert ingested_rows(project) == 80

    python(project, write.format(60, "data/raw/cancer.parquet"))
    second = repro_ingest(project)

    assert "Running stage 'ingest'" in second and ingested_rows(project) == 60, second


def test_a_data_file_outside_data_raw_is_refused_with_where_to_put_it(
    example_project: Path,
) -> None:
    # given a CSV beside data/raw/, where DVC would not see it change
    project = example_project
    cancer_csv(project)
    (project / "data/cancer.csv").write_text((project / "data/raw/cancer.csv").read_text())
    set_source(project, "data/cancer.csv")

    result = run(["uv", "run", "--no-sync", "dvc", "repro", "ingest"], project, check=False)

    assert result.returncode != 0
    assert "outside data/raw/" in result.stderr and "move the file into data/raw/" in (
        result.stderr
    ), result.stderr


def test_the_csv_copied_in_at_generation_reruns_ingest_when_it_changes(
    tmp_path: Path,
) -> None:
    # given a project generated with dataset_path, its first ingest done
    project = render(tmp_path / "project", USER_CSV)
    run(["make", "setup"], project)
    repro_ingest(project)
    rows = ingested_rows(project)

    # when the tracked copy loses rows
    keep_rows(project / "data/raw/dataset.csv", 100)
    second = repro_ingest(project)

    # then ingest runs again on the new file
    assert "Running stage 'ingest'" in second, second
    assert (rows, ingested_rows(project)) == (rows, 100) and rows > 100
