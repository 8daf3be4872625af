"""Stage ``split``: a deterministic train/test split, stratified for classification."""

from __future__ import annotations

import pandas as pd

from ..config import Params, Settings, Task
from ..engine import exit_now
from ..io.data import read_table, write_table
from ._runner import run_stage


def split_dataset(
    frame: pd.DataFrame, target: str, task: Task, test_size: float, stratify: bool, seed: int
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Split ``frame`` into train and test parts, the same way for the same seed."""
    from sklearn.model_selection import train_test_split

    labels = frame[target] if task == "classification" and stratify else None
    train, test = train_test_split(frame, test_size=test_size, random_state=seed, stratify=labels)
    return train.reset_index(drop=True), test.reset_index(drop=True)


def main() -> None:
    def body(params: Params, _: Settings) -> None:
        frame = read_table(params.paths.validated)
        train, test = split_dataset(
            frame,
            params.data.target,
            params.task,
            params.split.test_size,
            params.split.stratify,
            params.seed,
        )
        write_table(train, params.paths.train)
        write_table(test, params.paths.test)
        print(f"split {len(frame)} rows into {len(train)} train / {len(test)} test")

    run_stage("split", body)


if __name__ == "__main__":
    main()
    exit_now()
