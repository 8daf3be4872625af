"""Stage ``ingest``: load the raw dataset (a CSV file or a scikit-learn example) as a table."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from ..config import Params, Settings
from ..engine import exit_now
from ..io.data import read_table, write_table
from ._runner import StageError, run_stage

BUILTIN_PREFIX = "sklearn:"
BUILTIN = ("breast_cancer", "diabetes", "iris", "wine")


def load_builtin(name: str, target: str) -> pd.DataFrame:
    """A dataset that ships with scikit-learn, its label column named ``target``."""
    from sklearn import datasets

    if name not in BUILTIN:
        raise StageError(f"unknown built-in dataset {name!r}; choose one of {list(BUILTIN)}")
    frame: pd.DataFrame = getattr(datasets, f"load_{name}")(as_frame=True).frame
    return frame.rename(columns={"target": target})


def load_source(source: str, target: str, raw: Path) -> pd.DataFrame:
    """Load ``source``: ``sklearn:<name>``, or a CSV or Parquet file inside the folder ``raw``.

    ``dvc.yaml`` makes the stage depend on ``raw`` as a whole, so DVC sees any file there
    change; a file elsewhere would go stale unnoticed, so it is refused. Column names are
    stripped of surrounding spaces; nothing else is judged here: an empty or malformed table
    goes on to the validate stage, which says what is wrong with it.
    """
    if source.startswith(BUILTIN_PREFIX):
        return load_builtin(source.removeprefix(BUILTIN_PREFIX), target)
    path = Path(source)
    if not path.resolve().is_relative_to(raw.resolve()):
        raise StageError(
            f"data source {path} is outside {raw}/, the folder DVC watches for changes: "
            f"move the file into {raw}/ and set data.source to its new path"
        )
    if not path.is_file():
        raise StageError(f"data source {path} not found (try 'dvc pull')")
    frame = read_table(path)
    return frame.rename(columns=lambda name: str(name).strip())


def main() -> None:
    def body(params: Params, _: Settings) -> None:
        frame = load_source(params.data.source, params.data.target, params.paths.raw)
        write_table(frame, params.paths.ingested)
        print(f"ingested {len(frame)} rows x {frame.shape[1]} columns from {params.data.source}")

    run_stage("ingest", body)


if __name__ == "__main__":
    main()
    exit_now()
