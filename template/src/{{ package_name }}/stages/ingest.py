"""Stage ``ingest``: load the raw dataset (a CSV file or a scikit-learn example) as a table."""

from __future__ import annotations

from collections.abc import Collection
from pathlib import Path

import pandas as pd

from ..config import Params, Settings, in_project
from ..core.schema import load_schema
from ..engine import exit_now
from ..io.data import (
    is_parquet,
    read_frames,
    read_table,
    table_shape,
    write_batches,
    write_csv_as_parquet,
    write_table,
)
from ._runner import StageError, run_stage

BUILTIN_PREFIX = "sklearn:"
BUILTIN = ("breast_cancer", "diabetes", "iris", "wine")
# Rows read and written at a time: memory stays flat whatever the size of the file.
BATCH_ROWS = 100_000


def load_builtin(name: str, target: str) -> pd.DataFrame:
    """A dataset that ships with scikit-learn, its label column named ``target``."""
    from sklearn import datasets

    if name not in BUILTIN:
        raise StageError(f"unknown built-in dataset {name!r}; choose one of {list(BUILTIN)}")
    frame: pd.DataFrame = getattr(datasets, f"load_{name}")(as_frame=True).frame
    return frame.rename(columns={"target": target})


def source_file(source: str, raw: Path) -> Path:
    """The data file ``source`` names, which must lie inside the folder ``raw``.

    ``dvc.yaml`` makes the stage depend on ``raw`` as a whole, so DVC sees any file there
    change; a file elsewhere would go stale unnoticed, so it is refused.
    """
    path = in_project(Path(source))
    if not path.resolve().is_relative_to(raw.resolve()):
        raise StageError(
            f"data source {path} is outside {raw}/, the folder DVC watches for changes: "
            f"move the file into {raw}/ and set data.source to its new path"
        )
    if not path.is_file():
        raise StageError(f"data source {path} not found (try 'dvc pull')")
    return path


def column_name(name: object) -> str:
    """Column names are stripped of surrounding spaces; nothing else is judged here: an empty
    or malformed table goes on to the validate stage, which says what is wrong with it."""
    return str(name).strip()


def load_source(source: str, target: str, raw: Path) -> pd.DataFrame:
    """The table ``source`` names, in memory: ``sklearn:<name>``, or a CSV or Parquet file
    inside the folder ``raw``; the stage itself copies a file in batches (:func:`ingest`)."""
    if source.startswith(BUILTIN_PREFIX):
        return load_builtin(source.removeprefix(BUILTIN_PREFIX), target)
    return read_table(source_file(source, raw)).rename(columns=column_name)


def ingest(
    source: str, target: str, raw: Path, destination: Path, text: Collection[str] = ()
) -> None:
    """Write the table ``source`` names to ``destination`` as :func:`load_source` reads it,
    a batch of :data:`BATCH_ROWS` rows at a time for a file; a CSV's ``text`` columns as
    written (``007`` stays a code, not the number 7)."""
    if source.startswith(BUILTIN_PREFIX):
        write_table(load_source(source, target, raw), destination)
        return
    path = source_file(source, raw)
    if is_parquet(path):
        frames = read_frames(path, BATCH_ROWS)
        write_batches((frame.rename(columns=column_name) for frame in frames), destination)
    else:
        write_csv_as_parquet(path, destination, BATCH_ROWS, column_name, text)


def main() -> None:
    def body(params: Params, _: Settings) -> None:
        schema = load_schema(params.paths.schema_file)
        text = [column.name for column in schema.columns if column.type in ("categorical", "text")]
        ingest(
            params.data.source, params.data.target, params.paths.raw, params.paths.ingested, text
        )
        rows, columns = table_shape(params.paths.ingested)
        print(f"ingested {rows} rows x {columns} columns from {params.data.source}")

    run_stage("ingest", body)


if __name__ == "__main__":
    main()
    exit_now()
