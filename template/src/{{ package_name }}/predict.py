"""Batch scoring: stream a CSV through the model in blocks, with the API's validation.

The file is read as blocks of raw lines. Each block is parsed, validated, scored and turned
back into CSV by one of ``threads`` scoring threads (parsing and the model's native code run
without the GIL, so the cores are used without starting processes that would each load the
model); the main thread writes the blocks in order. Where a block's lines are its records, the
output line is the input line, byte for byte, plus the prediction: the input is neither
re-parsed into a different spelling nor re-formatted, which was most of the cost before.
"""

from __future__ import annotations

import csv
import io
import os
import re
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from itertools import islice
from pathlib import Path
from typing import IO, Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv

from .core.schema import DataSchema, DataValidationError, feature_frame
from .io.data import output_file

PREDICTION = "prediction"
QUOTE = b'"'


def resolve_model_uri(model: str | None, model_name: str) -> str:
    """``model`` as given (a path or an MLflow URI), or the registry's champion."""
    return model or f"models:/{model_name}@champion"


def available_cores() -> int:
    """Cores this process may run on (its CPU affinity where the OS reports one)."""
    affinity = getattr(os, "sched_getaffinity", None)
    return len(affinity(0)) if affinity else os.cpu_count() or 1


def predict_frame(model: Any, frame: pd.DataFrame, schema: DataSchema) -> pd.Series:
    """Predictions for ``frame``; raises :class:`DataValidationError` on bad input."""
    features = feature_frame(frame, schema)
    return pd.Series(model.predict(features), index=frame.index, name=PREDICTION)


def read_blocks(source: IO[bytes], rows: int) -> Iterator[bytes]:
    """Blocks of about ``rows`` lines that never cut a record.

    The first block is read line by line; the next ones by size (the first block's), then to
    the end of the line: splitting lines one by one was the reading thread's main cost. A
    quoted field may hold line breaks, so a block also grows until its quotes are balanced
    (CSV escapes ``"`` as ``""``).
    """
    block = b"".join(islice(source, rows))
    size = len(block)
    while block:
        quotes = block.count(QUOTE)
        while quotes % 2 and (line := source.readline()):
            block += line
            quotes += line.count(QUOTE)
        yield block
        block = source.read(size)
        if block and not block.endswith(b"\n"):
            block += source.readline()


def csv_bytes(frame: pd.DataFrame) -> bytes:
    """``frame`` as CSV lines without a header, by Arrow's writer: C++ number formatting,
    about four times faster than ``DataFrame.to_csv``. Each block gets its own Arrow schema,
    so a column may be all-missing in one block and filled in the next."""
    sink = pa.BufferOutputStream()
    table = pa.Table.from_pandas(frame, preserve_index=False)
    pacsv.write_csv(table, sink, pacsv.WriteOptions(include_header=False, quoting_style="needed"))
    data: bytes = sink.getvalue().to_pybytes()
    return data


def header_line(columns: list[str]) -> bytes:
    """A header line quoted only where needed (Arrow would quote every column name)."""
    line = io.StringIO()
    csv.writer(line, lineterminator="\n").writerow(columns)
    return line.getvalue().encode()


def append_column(block: bytes, values: bytes, rows: int) -> bytes | None:
    """Each line of ``block`` followed by ``,`` and the matching line of ``values``; ``None``
    when the lines are not the records (quoted line breaks, blank or CRLF-ended lines)."""
    if QUOTE in block or b"\r" in block:
        return None
    lines = block.removesuffix(b"\n").split(b"\n")
    cells = values.removesuffix(b"\n").split(b"\n")
    if len(lines) != rows or len(cells) != rows:
        return None
    out = np.empty((rows, 4), dtype=object)
    out[:, 0], out[:, 1], out[:, 2], out[:, 3] = lines, b",", cells, b"\n"
    return b"".join(out.ravel().tolist())


def score_block(
    model: Any,
    schema: DataSchema,
    header: bytes,
    block: bytes,
    first_line: int,
    *,
    keep_lines: bool,
) -> tuple[bytes, int]:
    """Score one block: its output CSV lines and its row count. Errors name the block's first
    line in the file."""
    try:
        frame = pd.read_csv(io.BytesIO(header + block))
    except (pd.errors.ParserError, UnicodeDecodeError) as error:
        # pandas numbers the lines of header + block: line 2 is the block's first line
        reason = re.sub(
            r"line (\d+)",
            lambda found: f"line {first_line + int(found[1]) - 2}",
            str(error).strip() or type(error).__name__,
        )
        raise DataValidationError([f"not readable as CSV: {reason}"]) from None
    try:
        predictions = predict_frame(model, frame, schema)
    except DataValidationError as error:
        raise DataValidationError(
            [f"rows from line {first_line}: {problem}" for problem in error.problems]
        ) from None
    if keep_lines:
        scored = append_column(block, csv_bytes(predictions.to_frame()), len(frame))
        if scored is not None:
            return scored, len(frame)
    return csv_bytes(frame.assign(**{PREDICTION: predictions})), len(frame)


def limit_native_threads() -> None:
    """One OpenMP thread for models called from this thread (OpenMP's limit is per thread)."""
    from threadpoolctl import threadpool_limits

    threadpool_limits(1, user_api="openmp")


def score_csv(
    model: Any,
    schema: DataSchema,
    source: Path,
    destination: Path,
    chunk_size: int,
    threads: int = 1,
) -> Iterator[int]:
    """Score ``source`` into ``destination`` block by block, yielding rows done per block.

    At most ``threads + 1`` blocks are in memory, so memory stays bounded by ``chunk_size``
    whatever the file's size. Each scoring thread runs the model's native code on one core;
    the caller limits BLAS, whose limit is process-wide. The output goes to a temporary file
    renamed at the end, so a failure never leaves a half-written result.
    """
    with (
        output_file(destination) as partial,
        source.open("rb") as reader,
        partial.open("wb") as sink,
        ThreadPoolExecutor(threads, initializer=limit_native_threads) as pool,
    ):
        header = reader.readline()
        if not header.strip():
            raise DataValidationError([f"{source.name}: empty file, no header line"])
        columns = list(pd.read_csv(io.BytesIO(header), nrows=0).columns)
        keep_lines = PREDICTION not in columns
        if keep_lines:
            sink.write(header.rstrip(b"\r\n") + b"," + PREDICTION.encode() + b"\n")
        else:  # the input's own 'prediction' column is replaced, where it stands
            sink.write(header_line(columns))
        pending: deque[Future[tuple[bytes, int]]] = deque()

        def write_done(waiting: int) -> Iterator[int]:
            """Write scored blocks, oldest first, until ``waiting`` are left."""
            while len(pending) > waiting:
                scored, rows = pending.popleft().result()
                sink.write(scored)
                yield rows

        first_line = 2  # the header is line 1
        for block in read_blocks(reader, chunk_size):
            pending.append(
                pool.submit(
                    score_block,
                    model,
                    schema,
                    header,
                    block,
                    first_line,
                    keep_lines=keep_lines,
                )
            )
            first_line += block.count(b"\n") + (not block.endswith(b"\n"))
            yield from write_done(threads)
        yield from write_done(0)
