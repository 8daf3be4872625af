"""Stage ``split``: a deterministic train/test split, stratified for classification."""

from __future__ import annotations

import importlib
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from ..config import Params, Settings, Task
from ..engine import exit_now
from ..io.data import read_arrow, write_arrow
from ._runner import run_stage

if TYPE_CHECKING:
    import pyarrow as pa


def split_rows(
    labels: pd.Series | None, rows: int, test_size: float, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Row numbers of the train and test parts, the same for the same seed.

    Only the labels (for stratification) and the row count decide the split, so the rows of
    a large table need not be in memory as a data frame to be split.
    """
    from sklearn.model_selection import train_test_split

    train, test = train_test_split(
        np.arange(rows), test_size=test_size, random_state=seed, stratify=label_codes(labels)
    )
    return train, test


def label_codes(labels: pd.Series | None) -> np.ndarray | None:
    """The labels as integers numbered in the sorted order of the classes.

    scikit-learn sorts the classes itself, so the split is the one the labels give; sorting
    text labels row by row is what made a split of many rows slow, integers sort fast.
    """
    return None if labels is None else pd.factorize(labels, sort=True)[0]


def split_dataset(
    frame: pd.DataFrame, target: str, task: Task, test_size: float, stratify: bool, seed: int
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Split ``frame`` into train and test parts, the same way for the same seed."""
    labels = frame[target] if task == "classification" and stratify else None
    train, test = split_rows(labels, len(frame), test_size, seed)
    return frame.iloc[train].reset_index(drop=True), frame.iloc[test].reset_index(drop=True)


def split_table(
    table: pa.Table, target: str, task: Task, test_size: float, stratify: bool, seed: int
) -> tuple[pa.Table, pa.Table]:
    """:func:`split_dataset` on an Arrow table: the same rows in the same order, without
    converting every column to pandas (the labels only, when stratifying)."""
    labels = table.column(target).to_pandas() if task == "classification" and stratify else None
    train, test = split_rows(labels, table.num_rows, test_size, seed)
    return table.take(train), table.take(test)


def main() -> None:
    def body(params: Params, _: Settings) -> None:
        with ThreadPoolExecutor(max_workers=1) as pool:
            # Arrow reads the table outside Python's lock, so this thread imports scikit-learn
            # for split_rows meanwhile; the two take about as long on a large table.
            reading = pool.submit(read_arrow, params.paths.validated)
            importlib.import_module("sklearn.model_selection")
            table = reading.result()
            train, test = split_table(
                table,
                params.data.target,
                params.task,
                params.split.test_size,
                params.split.stratify,
                params.seed,
            )
            # Parquet encoding runs outside Python's lock too: the two parts are written at once.
            writing = pool.submit(write_arrow, test, params.paths.test)
            write_arrow(train, params.paths.train)
            writing.result()
        print(f"split {table.num_rows} rows into {train.num_rows} train / {test.num_rows} test")

    run_stage("split", body)


if __name__ == "__main__":
    main()
    exit_now()
