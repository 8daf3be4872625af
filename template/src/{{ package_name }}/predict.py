"""Batch scoring: a CSV through the model in blocks of whole records, read by pyarrow, scored
by threads that share one model (the reader and the model's native code release the GIL).
A reader gives values, not their spelling ("007", quotes, line endings): each output line is
its input record byte for byte, the prediction inserted before its line ending. A Parquet
input or output goes through :func:`score_table` instead.
"""

from __future__ import annotations

import io
import os
import re
from collections import deque
from collections.abc import Callable, Collection, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import ExitStack
from functools import partial
from itertools import islice
from pathlib import Path
from typing import IO, Any, cast

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
from threadpoolctl import threadpool_limits

from .config import CHAMPION, prediction_column
from .core.models import nonfinite_rows
from .core.schema import DataSchema, DataValidationError, check_columns, feature_frame
from .io.data import (
    ChunkTypesError,
    csv_chunks,
    csv_writer,
    is_parquet,
    output_file,
    parquet_writer,
    read_batches,
)

QUOTE, NEWLINE = b'"', b"\n"


def resolve_model_uri(model: str | None, model_name: str) -> str:
    """``model`` as given (a path or an MLflow URI), or the registry's champion."""
    return model or f"models:/{model_name}@{CHAMPION}"


def available_cores() -> int:
    """Cores this process may run on (its CPU affinity where the OS reports one)."""
    affinity = getattr(os, "sched_getaffinity", None)
    return len(affinity(0)) if affinity else os.cpu_count() or 1


def complete(source: IO[bytes], block: bytes) -> bytes:
    """``block`` read on to the end of its line and of any quoted field it opened (CSV doubles
    a quote inside quotes, so a record ends where its quotes are balanced)."""
    if block and not block.endswith(b"\n"):
        block += source.readline()
    quotes = block.count(QUOTE)
    while quotes % 2 and (line := source.readline()):
        block += line
        quotes += line.count(QUOTE)
    return block


def read_blocks(source: IO[bytes], rows: int) -> Iterator[bytes]:
    """Blocks of about ``rows`` lines that never cut a record: the first read line by line,
    the next ones by its size (splitting every line costs the reading thread more)."""
    block = complete(source, b"".join(islice(source, rows)))
    size = len(block)
    while block:
        yield block
        block = complete(source, source.read(size))


def record_bounds(data: bytes) -> tuple[np.ndarray, np.ndarray]:
    """Where each record of ``data`` starts and ends (before its LF or CRLF), by the rule of
    :func:`complete`. A blank line is an empty record."""
    array = np.frombuffer(data, np.uint8)
    breaks = np.flatnonzero(array == ord("\n"))
    if QUOTE in data:
        breaks = breaks[np.searchsorted(np.flatnonzero(array == ord(QUOTE)), breaks) % 2 == 0]
    if not data.endswith(b"\n"):
        breaks = np.append(breaks, len(data))
    starts = np.append(0, breaks[:-1] + 1)
    return starts, breaks - ((breaks > starts) & (array[breaks - 1] == ord("\r")))


def read_csv_bytes(data: bytes, types: dict[str, Any], first_line: int, **options: Any) -> pa.Table:
    """``data`` (a header on line ``first_line``, then records) read by pyarrow; a record it
    cannot read is named by its line, and the reason cut short (it quotes the record)."""
    try:
        return pacsv.read_csv(
            io.BytesIO(data),
            read_options=pacsv.ReadOptions(use_threads=False, block_size=len(data) + 1),
            convert_options=pacsv.ConvertOptions(column_types=types, **options),
        )
    except pa.ArrowInvalid as error:
        starts, ends = record_bounds(data)
        starts = starts[ends > starts]  # pyarrow counts records from 1, blank lines aside

        def line(found: re.Match[str]) -> str:
            if (record := int(found[1])) > len(starts):  # an open quote hides the lines
                return f"record {record} counted from line {first_line}"
            return f"line {first_line + data.count(NEWLINE, 0, int(starts[record - 1]))}"

        reason = re.sub(r"Row #(\d+)", line, str(error))[:300]
        raise DataValidationError([f"not readable as CSV: {reason}"]) from None


def read_features(
    data: bytes,
    schema: DataSchema,
    first_line: int,
    strings: Collection[str] = (),
    columns: list[str] | None = None,
) -> pd.DataFrame:
    """The model's columns of ``data``, typed as pandas' reader would: dates stay text, and text
    that is not UTF-8 is refused (read as text), not scored as bytes. Columns in ``strings``
    (the model learnt them as text) are read as text as written: a block whose codes are all
    digits ("069") would otherwise read them as numbers (69), categories the model never saw.
    ``columns``, the header's names, find a feature written with surrounding spaces (" age")."""
    written = {name.strip(): name for name in columns or schema.feature_names}
    wanted = [written.get(name, name) for name in schema.feature_names]
    options = {"include_columns": wanted, "strings_can_be_null": True}
    learnt = {written.get(name, name): pa.string() for name in strings}
    learnt = {name: kind for name, kind in learnt.items() if name in wanted}
    table = read_csv_bytes(data, learnt, first_line, **options)
    kinds = (pa.types.is_temporal, pa.types.is_binary)
    if text := {col.name: pa.string() for col in table.schema if any(k(col.type) for k in kinds)}:
        table = read_csv_bytes(data, learnt | text, first_line, **options)
    return cast(pd.DataFrame, table.to_pandas())


def spelt_as_pandas(values: Any) -> Any:
    """Booleans as ``True`` and ``False``, as pandas reads and writes them in a CSV file (the
    training labels' spelling; Arrow's writer has ``true``); other values as they are."""
    return pc.if_else(values, "True", "False") if pa.types.is_boolean(values.type) else values


def csv_bytes(table: pa.Table) -> bytes:
    """``table`` as CSV lines without a header, by Arrow's writer."""
    sink = pa.BufferOutputStream()
    pacsv.write_csv(table, sink, pacsv.WriteOptions(include_header=False, quoting_style="needed"))
    return bytes(sink.getvalue())


def splice(block: bytes, cells: bytes, first_line: int) -> bytes:
    """``block`` with ``,`` and a line of ``cells`` before each record's line ending."""
    starts, ends = record_bounds(block)
    ends = ends[ends > starts]  # blank lines stay as they are
    cell_starts, cell_ends = record_bounds(cells)
    if len(ends) != len(cell_ends):
        reason = f"{len(cell_ends)} records read, {len(ends)} ended outside quotes"
        rule = 'a field holding a quote (") must be quoted, the quote doubled (RFC 4180)'
        raise DataValidationError([f"rows from line {first_line}: {reason}: {rule}"])
    out = np.empty(2 * len(ends) + 1, dtype=object)
    pieces = zip(np.append(0, ends).tolist(), np.append(ends, len(block)).tolist(), strict=True)
    out[0::2] = [block[start:end] for start, end in pieces]
    cell_bounds = zip(cell_starts.tolist(), cell_ends.tolist(), strict=True)
    out[1::2] = [b"," + cells[start:end] for start, end in cell_bounds]
    return b"".join(out.tolist())


def predict_rows(
    model: Any, frame: pd.DataFrame, schema: DataSchema, where: str, strings: Collection[str] = ()
) -> Any:
    """The model's predictions for ``frame``; a bad row or a NaN or infinite prediction stops
    scoring, each reason prefixed with ``where`` (the rows' place in the input). ``strings``:
    the columns the model learnt as text (``feature_frame``)."""
    try:
        values = model.predict(feature_frame(frame, schema, strings))
    except DataValidationError as error:
        raise DataValidationError([f"{where}: {problem}" for problem in error.problems]) from None
    if len(bad := nonfinite_rows(values)):
        raise DataValidationError(
            [
                f"{where}: {len(bad)} prediction(s) are NaN or infinite, "
                f"the first for record {bad[0] + 1} of these rows"
            ]
        )
    return values


def score_block(
    model: Any,
    schema: DataSchema,
    header: bytes,
    columns: list[str],
    block: bytes,
    first_line: int,
    strings: Collection[str] = (),
) -> tuple[bytes, int]:
    """Score one block (its first record on line ``first_line``): its output CSV lines and its
    row count. An input's own prediction column (``config.prediction_column``) is replaced
    where it stands."""
    data = header + block
    top = first_line - header.count(b"\n")  # the header's line, as read_csv_bytes counts
    features = read_features(data, schema, top, strings, columns)
    if features.empty:
        return block, 0  # blank lines only
    where = f"rows from line {first_line}"
    predictions = spelt_as_pandas(pa.array(predict_rows(model, features, schema, where, strings)))
    predicted = prediction_column(schema.feature_names)
    if predicted not in columns:
        cells = csv_bytes(pa.table({predicted: predictions}))
        return splice(block, cells, first_line), len(predictions)
    # Every column read as text keeps its values' spelling; the lines are written anew.
    text = read_csv_bytes(data, dict.fromkeys(columns, pa.string()), top)
    text = text.set_column(columns.index(predicted), predicted, predictions.cast(pa.string()))
    return csv_bytes(text), len(predictions)


def in_order(
    pool: ThreadPoolExecutor,
    function: Callable[..., Any],
    calls: Iterator[tuple[Any, ...]],
    ahead: int,
) -> Iterator[Any]:
    """``function`` of each of ``calls``' arguments, run on ``pool``, its results in their
    order; at most ``ahead + 1`` calls (blocks, and their results) are in memory at once."""
    pending: deque[Future[Any]] = deque()
    for arguments in calls:
        pending.append(pool.submit(function, *arguments))
        while len(pending) > ahead:
            yield pending.popleft().result()
    while pending:
        yield pending.popleft().result()


def scoring_threads(threads: int) -> ThreadPoolExecutor:
    """Threads that each run the model on one core (the caller limits BLAS, process-wide)."""
    # OpenMP's thread limit is per thread: set in each scoring thread
    return ThreadPoolExecutor(threads, initializer=threadpool_limits, initargs=(1, "openmp"))


def score_csv(
    model: Any,
    schema: DataSchema,
    source: Path,
    output: Path,
    chunk_size: int,
    threads: int = 1,
    strings: Collection[str] = (),
) -> Iterator[int]:
    """Score ``source`` into ``output``, yielding rows done per block. At most ``threads +
    1`` blocks are in memory, whatever the file's size; the output is renamed into place once
    complete. ``strings``: the columns the model learnt as text (:func:`read_features`)."""
    with (
        output_file(output) as partial,
        source.open("rb") as reader,
        partial.open("wb") as sink,
        scoring_threads(threads) as pool,
    ):
        header = complete(reader, reader.readline())
        end = len(header.rstrip(b"\r\n"))
        heading = read_csv_bytes(header[:end] + b"\n", {}, 1) if header.strip() else pa.table({})
        if heading.num_rows:  # pyarrow ends a line at a lone CR too, which this file uses
            raise DataValidationError([f"{source.name}: lines must end with LF or CRLF"])
        columns = heading.column_names
        check_columns(columns, schema)
        predicted = prediction_column(schema.feature_names)
        added = b"" if predicted in columns else f",{predicted}".encode()
        sink.write(header[:end] + added + header[end:])

        def blocks() -> Iterator[tuple[Any, ...]]:
            first_line = 1 + header.count(b"\n")
            for block in read_blocks(reader, chunk_size):
                yield model, schema, header, columns, block, first_line, strings
                first_line += block.count(b"\n") + (not block.endswith(b"\n"))

        for scored, rows in in_order(pool, score_block, blocks(), threads):
            sink.write(scored)
            yield rows


def with_predictions(table: pa.Table, predictions: Any, schema: DataSchema) -> pa.Table:
    """``table`` and its predictions' column (``config.prediction_column``: ``prediction``
    unless a feature has that name), which replaces an input's own where it stands."""
    column, name = pa.array(predictions), prediction_column(schema.feature_names)
    if name in table.column_names:
        return table.set_column(table.column_names.index(name), name, column)
    return table.append_column(name, column)


def score_batch(
    model: Any, schema: DataSchema, table: pa.Table, first_row: int, strings: Collection[str]
) -> pa.Table:
    """``table`` (its first row is row ``first_row`` of the input) with its predictions."""
    where = f"rows from row {first_row}"
    predictions = predict_rows(model, table.to_pandas(), schema, where, strings)
    return with_predictions(table, predictions, schema)


def score_table(
    model: Any,
    schema: DataSchema,
    source: Path,
    output: Path,
    chunk_size: int,
    threads: int = 1,
    strings: Collection[str] = (),
    prediction_type: pa.DataType | None = None,
) -> Iterator[int]:
    """Score ``source`` into ``output`` when either is Parquet (the format goes by each
    suffix), batch by batch on ``threads`` threads as :func:`score_csv` does, yielding rows
    done per batch; the output is renamed into place once complete, and nothing is left of it
    when a batch fails. A table without rows gives an output of its columns and the
    predictions' (typed ``prediction_type``, ``io.model_loader.prediction_type``, else as
    text), no row.

    Values, not spellings, are kept here: a table format has no spelling to keep. A CSV file is
    read in chunks that pandas types one by one; when a column's type changes from one chunk to
    the next (digits, then words), the file is scored again from the start with the whole
    file's types, as ingest reads it (``io/data.csv_chunks``), and the rows done so far are
    given back as a negative count.
    """
    tables = partial(table_batches, source, chunk_size, None)
    while True:
        done = 0
        try:
            scored = score_tables(model, schema, tables(), threads, strings, prediction_type)
            for rows in write_tables(scored, output):
                done += rows
                yield rows
            return
        except ChunkTypesError as changed:
            yield -done
            whole = changed.types is None  # booleans beside gaps: no type reads them in chunks
            tables = partial(table_batches, source, chunk_size, changed.types, whole=whole)


def table_batches(
    source: Path, rows: int, types: dict[str, Any] | None, *, whole: bool = False
) -> Iterator[pa.Table]:
    """``source`` as Arrow tables of up to ``rows`` rows: a Parquet file's batches, a CSV file's
    chunks with ``types`` (:func:`io.data.csv_chunks`), or read in one piece if ``whole``."""
    if is_parquet(source) and not source.stat().st_size:
        yield pa.table({})  # no columns, as pandas reads an empty CSV file
    elif is_parquet(source):
        yield from read_batches(source, rows)
    elif whole:
        table = pa.Table.from_pandas(pd.read_csv(source, low_memory=False), preserve_index=False)
        yield from (table.slice(start, rows) for start in range(0, max(table.num_rows, 1), rows))
    else:
        for chunk in csv_chunks(source, rows, types):
            yield pa.Table.from_pandas(chunk, preserve_index=False)


def score_tables(
    model: Any,
    schema: DataSchema,
    tables: Iterator[pa.Table],
    threads: int,
    strings: Collection[str],
    prediction_type: pa.DataType | None,
) -> Iterator[pa.Table]:
    """:func:`score_table`'s tables to write: ``tables`` with their predictions, in one pass;
    for tables without rows, one of their columns and the predictions' alone."""
    columns: list[pa.Schema] = []  # the first table's: an empty file's too

    def batches() -> Iterator[tuple[Any, ...]]:
        first_row = 1
        for table in tables:
            if not columns:
                check_columns(table.column_names, schema)
                columns.append(table.schema)
            if table.num_rows:
                yield model, schema, table, first_row, strings
            first_row += table.num_rows

    with scoring_threads(threads) as pool:
        scored = None
        for scored in in_order(pool, score_batch, batches(), threads):
            yield scored
    if scored is None:
        yield without_rows(columns[0], schema, prediction_type)


def without_rows(
    columns: pa.Schema, schema: DataSchema, prediction_type: pa.DataType | None
) -> pa.Table:
    """A table of the input's ``columns`` and the predictions', no row. A column no value gave
    a type (a CSV file's header alone) is text, as Spark reads it."""
    typed = [f.with_type(pa.string()) if pa.types.is_null(f.type) else f for f in columns]
    predictions = pa.array([], prediction_type or pa.string())
    return with_predictions(pa.schema(typed).empty_table(), predictions, schema)


def write_tables(tables: Iterator[pa.Table], output: Path) -> Iterator[int]:
    """Write ``tables`` into ``output`` (Parquet, or CSV by its suffix) with the first one's
    types, yielding the rows of each; renamed into place once complete, nothing left of it
    when ``tables`` raises. A CSV file spells booleans as pandas does."""
    with output_file(output) as partial_output, ExitStack() as closing:
        writer: Any = None
        first: pa.Schema | None = None  # the first table's types (a CSV writer does not keep them)
        for scored in tables:
            columns = scored.columns
            if not is_parquet(output):
                columns = [spelt_as_pandas(column) for column in columns]
            table = pa.table(columns, scored.column_names)
            if first is None:
                open_writer = parquet_writer if is_parquet(output) else csv_writer
                first = table.schema
                writer = closing.enter_context(open_writer(partial_output, first))
            writer.write_table(table.cast(first))
            yield table.num_rows
