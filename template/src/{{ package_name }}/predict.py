"""Batch scoring: stream a CSV through the model in chunks, with the API's validation."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv

from .core.schema import DataSchema, DataValidationError, feature_frame

PREDICTION = "prediction"


def resolve_model_uri(model: str | None, model_name: str) -> str:
    """``model`` as given (a path or an MLflow URI), or the registry's champion."""
    return model or f"models:/{model_name}@champion"


def load_model(uri: str) -> Any:
    """Load the scikit-learn pipeline behind an MLflow model URI or a local model folder."""
    import mlflow.sklearn

    return mlflow.sklearn.load_model(uri)


def predict_frame(model: Any, frame: pd.DataFrame, schema: DataSchema) -> pd.Series:
    """Predictions for ``frame``; raises :class:`DataValidationError` on bad input."""
    features = feature_frame(frame, schema)
    return pd.Series(model.predict(features), index=frame.index, name=PREDICTION)


def score_chunks(
    model: Any, chunks: Iterator[pd.DataFrame], schema: DataSchema
) -> Iterator[pd.DataFrame]:
    """Yield each chunk with a ``prediction`` column; errors name the chunk's first row."""
    for chunk in chunks:
        try:
            predictions = predict_frame(model, chunk, schema)
        except DataValidationError as error:
            first = int(chunk.index[0]) + 2  # header is line 1
            raise DataValidationError(
                [f"rows from line {first}: {problem}" for problem in error.problems]
            ) from None
        yield chunk.assign(**{PREDICTION: predictions})


def score_csv(
    model: Any,
    schema: DataSchema,
    source: Path,
    destination: Path,
    chunk_size: int,
) -> Iterator[int]:
    """Score ``source`` into ``destination`` chunk by chunk, yielding rows done per chunk.

    A background thread writes each scored chunk (Arrow's writer releases the GIL) while the
    next one is read and scored; at most one chunk waits, so memory stays bounded by
    ``chunk_size`` whatever the file's size. The output is written to a temporary file and
    renamed at the end, so a failure never leaves a half-written result.
    """
    destination.parent.mkdir(parents=True, exist_ok=True)
    partial = destination.with_name(destination.name + ".partial")
    reader = pd.read_csv(source, chunksize=chunk_size)
    try:
        with pa.OSFile(str(partial), "wb") as sink, ThreadPoolExecutor(1) as writer:
            pending: Future[None] | None = None
            for index, scored in enumerate(score_chunks(model, reader, schema)):
                if pending is not None:
                    pending.result()  # raises the writer's error, if any
                pending = writer.submit(write_csv_chunk, scored, sink, header=index == 0)
                yield len(scored)
            if pending is not None:
                pending.result()
        partial.replace(destination)
    finally:
        partial.unlink(missing_ok=True)


def write_csv_chunk(frame: pd.DataFrame, sink: pa.NativeFile, *, header: bool) -> None:
    """Append ``frame`` as CSV with Arrow's writer: C++ number formatting, about four times
    faster than ``DataFrame.to_csv``, which dominated batch scoring. Each chunk gets its own
    Arrow schema, so a column may be all-missing in one chunk and filled in the next. The
    header line is written by the ``csv`` module: Arrow quotes every column name."""
    if header:
        line = io.StringIO()
        csv.writer(line, lineterminator="\n").writerow(frame.columns)
        sink.write(line.getvalue().encode())
    table = pa.Table.from_pandas(frame, preserve_index=False)
    options = pacsv.WriteOptions(include_header=False, quoting_style="needed")
    pacsv.write_csv(table, sink, options)
