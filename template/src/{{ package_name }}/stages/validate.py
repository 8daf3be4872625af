"""Stage ``validate``: enforce the data contract; stop the pipeline before training if broken."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pandas as pd

from ..config import Params, Settings
from ..core.schema import (
    DataSchema,
    DataValidationError,
    Tally,
    Validation,
    check_unlabeled,
    load_schema,
    split_unlabeled,
)
from ..engine import exit_now
from ..io.data import is_parquet, read_ahead, read_frames, read_table, write_batches, write_json
from ._runner import StageError, run_stage

# Rows validated at a time: memory stays flat whatever the size of the table.
BATCH_ROWS = 100_000


def profile(tally: Tally, schema: DataSchema, unlabeled: int = 0) -> dict[str, object]:
    """Small summary of validated data, tracked as a DVC metric."""
    rows = tally.rows
    missing = pd.Series(dtype="float64") if tally.missing is None else tally.missing
    fractions = (missing / rows).round(6) if rows else missing.astype("float64")
    return {
        "rows": rows,
        "unlabeled_rows_dropped": unlabeled,
        "features": len(schema.feature_names),
        "missing_fraction": {
            name: float(fractions[name])
            for name in schema.feature_names
            if name in fractions.index and fractions[name] > 0
        },
    }


def ingested_frames(path: Path) -> Iterator[pd.DataFrame]:
    """The ingested table as frames of up to ``BATCH_ROWS`` rows; a CSV file as one frame."""
    # pandas types each chunk of a CSV on its own: a column could change type from one chunk
    # to the next, and with it the contract's messages and the validated file's types.
    if not is_parquet(path):
        yield read_table(path)
        return
    yield from read_frames(path, BATCH_ROWS)


def validated_batches(params: Params, validation: Validation) -> Iterator[pd.DataFrame]:
    """The ingested table's batches that pass the contract, as they are read; raises
    :class:`DataValidationError` at the end naming every problem of the whole table."""
    target, rows = params.data.target, 0
    for frame in ingested_frames(params.paths.ingested):
        labeled, dropped = split_unlabeled(frame, target)
        validation.unlabeled, rows = validation.unlabeled + dropped, rows + len(frame)
        validated = validation.check(labeled)
        if validated is not None:
            yield validated
    check_unlabeled(validation.unlabeled, rows, target, params.data.max_unlabeled_share)
    problems = validation.problems(params.data.min_rows)
    if problems:
        raise DataValidationError(problems)


def main() -> None:
    def body(params: Params, _: Settings) -> None:
        schema = load_schema(params.paths.schema_file)
        if schema.target.name != params.data.target:
            raise StageError(
                f"data.target is {params.data.target!r} in params.yaml but "
                f"{schema.target.name!r} in {params.paths.schema_file}"
            )
        validation = Validation(schema, params.task)
        try:
            # The next batch is read and checked on a worker thread while this one is written
            # (Parquet encoding runs outside Python's lock); an error still ends the file.
            batches = read_ahead(validated_batches(params, validation))
            write_batches(batches, params.paths.validated)
        except DataValidationError as error:
            raise StageError(f"{params.data.source}: {error}") from None
        unlabeled = validation.unlabeled
        write_json(profile(validation.tally, schema, unlabeled), params.paths.data_profile)
        print(
            f"validated {validation.tally.rows} rows against {params.paths.schema_file}; "
            f"dropped {unlabeled} row(s) without a label ({schema.target.name!r} missing)"
        )

    run_stage("validate", body)


if __name__ == "__main__":
    main()
    exit_now()
