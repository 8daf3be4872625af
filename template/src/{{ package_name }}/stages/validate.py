"""Stage ``validate``: enforce the data contract; stop the pipeline before training if broken."""

from __future__ import annotations

import pandas as pd

from ..config import Params, Settings
from ..core.schema import (
    DataSchema,
    DataValidationError,
    drop_unlabeled,
    load_schema,
    validate_frame,
)
from ..engine import exit_now
from ..io.data import read_table, write_json, write_table
from ._runner import StageError, run_stage


def profile(frame: pd.DataFrame, schema: DataSchema, unlabeled: int = 0) -> dict[str, object]:
    """Small summary of validated data, tracked as a DVC metric."""
    missing = frame[schema.feature_names].isna().mean().round(6)
    return {
        "rows": len(frame),
        "unlabeled_rows_dropped": unlabeled,
        "features": len(schema.feature_names),
        "missing_fraction": {name: float(value) for name, value in missing.items() if value > 0},
    }


def main() -> None:
    def body(params: Params, _: Settings) -> None:
        schema = load_schema(params.paths.schema_file)
        if schema.target.name != params.data.target:
            raise StageError(
                f"data.target is {params.data.target!r} in params.yaml but "
                f"{schema.target.name!r} in {params.paths.schema_file}"
            )
        frame = read_table(params.paths.ingested)
        try:
            labeled, unlabeled = drop_unlabeled(
                frame, schema.target.name, params.data.max_unlabeled_share
            )
            validated = validate_frame(labeled, schema, params.task, params.data.min_rows)
        except DataValidationError as error:
            raise StageError(f"{params.data.source}: {error}") from None
        write_table(validated, params.paths.validated)
        write_json(profile(validated, schema, unlabeled), params.paths.data_profile)
        print(
            f"validated {len(validated)} rows against {params.paths.schema_file}; dropped "
            f"{unlabeled} row(s) without a label ({schema.target.name!r} missing)"
        )

    run_stage("validate", body)


if __name__ == "__main__":
    main()
    exit_now()
