"""Reading and writing tables, reports and folders.

Every output is written under a new hidden name beside its destination and renamed into
place once complete: a failure never leaves half a file, and nothing is deleted that this
code did not write (a folder is replaced only when it holds the file that marks our own).

pandas and pyarrow are imported by the functions that use them: a stage that only writes JSON
(``tune`` when off) does not wait for them to import.
"""

from __future__ import annotations

import hashlib
import json
import re
import secrets
import shutil
from collections.abc import Callable, Collection, Generator, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor, wait
from contextlib import ExitStack, contextmanager
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd
    import pyarrow as pa
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq


def partial_path(path: Path) -> Path:
    """A new, hidden name beside ``path`` for its content while it is written (ending with
    ``path``'s name, so that writers that go by the suffix write the same format)."""
    return path.with_name(f".partial-{secrets.token_hex(4)}-{path.name}")


@contextmanager
def output_file(path: Path) -> Iterator[Path]:
    """A path to write to, renamed to ``path`` when the block succeeds, removed if it fails."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = partial_path(path)
    try:
        yield partial
        partial.replace(path)
    finally:
        partial.unlink(missing_ok=True)  # a name made up above: nobody else's file


def replaceable(path: Path, marker: str) -> bool:
    """Whether ``path`` may be replaced: absent, an empty folder, or a folder holding
    ``marker`` (the file our own command writes into it)."""
    if not path.exists() and not path.is_symlink():
        return True
    if path.is_symlink() or not path.is_dir():
        return False
    return (path / marker).is_file() or not any(path.iterdir())


@contextmanager
def output_folder(path: Path, marker: str) -> Iterator[Path]:
    """A new empty folder beside ``path`` to fill; it replaces ``path`` when the block succeeds.

    An existing ``path`` that :func:`replaceable` refuses raises ``FileExistsError`` before
    anything is written; it is never deleted.
    """
    if not replaceable(path, marker):
        raise FileExistsError(
            f"{path} exists and is not a folder this command wrote (no {marker} in it); "
            "nothing was changed: choose another path, or move it away yourself"
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = partial_path(path)
    partial.mkdir()
    try:
        yield partial
        if path.exists():
            previous = partial_path(path)
            path.replace(previous)
            partial.replace(path)
            shutil.rmtree(previous)  # the folder ``replaceable`` vouched for
        else:
            partial.replace(path)
    finally:
        if partial.exists():
            shutil.rmtree(partial)  # made above


def is_parquet(path: Path) -> bool:
    """Whether ``path`` names a Parquet file, by its suffix in any case (``.parquet``,
    ``.PARQUET``); every reader and writer here decides by it, anything else is CSV."""
    return path.suffix.lower() == ".parquet"


def read_table(
    path: Path, columns: list[str] | None = None, text: Collection[str] = ()
) -> pd.DataFrame:
    """Read a Parquet or CSV file (only ``columns``, if given; a CSV's ``text`` columns as
    text as written, not as the numbers their values may look like); an empty CSV gives an
    empty frame for validation to judge."""
    import pandas as pd

    if is_parquet(path):
        return pd.read_parquet(path, columns=columns)
    try:
        return pd.read_csv(path, usecols=columns, dtype=dict.fromkeys(text, "str"))
    except pd.errors.EmptyDataError:
        return pd.DataFrame()


def read_sample(path: Path, rows: int, seed: int) -> pd.DataFrame:
    """The rows of a Parquet file that ``read_table(path).sample(n=rows, random_state=seed)``
    draws, in its order (the whole table when it has no more than ``rows``), holding one batch
    of the file at a time besides the sample. pyarrow's ``Dataset.take`` gives the same rows
    but holds far more while it reads; hence this loop over batches."""
    import numpy as np
    import pandas as pd
    import pyarrow as pa
    import pyarrow.parquet as pq

    file = pq.ParquetFile(path, pre_buffer=False)
    total = file.metadata.num_rows
    if total <= rows:
        return read_table(path)
    # pandas draws the positions from the length alone, so a frame of positions draws the same
    positions = pd.RangeIndex(total).to_series().sample(n=rows, random_state=seed).to_numpy()
    order = np.argsort(positions)
    wanted, parts, start = positions[order], [], 0
    for batch in file.iter_batches(batch_size=65_536, use_threads=False):
        low, high = np.searchsorted(wanted, [start, start + batch.num_rows])
        parts.append(batch.take(pa.array(wanted[low:high] - start)))
        start += batch.num_rows
    sample = pa.Table.from_batches(parts, schema=file.schema_arrow).take(np.argsort(order))
    frame: pd.DataFrame = sample.to_pandas()
    return frame.set_axis(positions)


# Rows per Parquet row group: readers that stream or sample a file (reference, monitor, batch
# scoring) hold one row group at a time, so a table written as one group would be read whole.
ROW_GROUP_ROWS = 100_000


def parquet_writer(path: Path | str, schema: pa.Schema) -> pq.ParquetWriter:
    """The writer of every Parquet file written here. It stores all columns but the
    floating-point ones by dictionary: measured values rarely repeat, so pyarrow would build a
    dictionary for each of them in each row group, then drop it when it outgrows its page and
    store the values plain after all, paying for both in time and in file size (docs: "Large
    data")."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    by_dictionary = [field.name for field in schema if not pa.types.is_floating(field.type)]
    return pq.ParquetWriter(path, schema, use_dictionary=by_dictionary)


# A CSV field holding one of these is quoted (RFC 4180).
NEEDS_QUOTES = re.compile(r'[,"\r\n]')


def csv_header(names: Iterable[str]) -> bytes:
    """``names`` as a CSV header line: a name quoted only where CSV requires it (it holds a
    comma, a quote or a line break; RFC 4180), its quotes doubled."""
    cells = [
        '"' + name.replace('"', '""') + '"' if NEEDS_QUOTES.search(name) else name for name in names
    ]
    return (",".join(cells) + "\n").encode()


@contextmanager
def csv_writer(path: Path, schema: pa.Schema) -> Iterator[pacsv.CSVWriter]:
    """Arrow's CSV writer into ``path``, after :func:`csv_header`'s header: Arrow's own quotes
    every name (as it quotes every text value), where scoring a CSV input keeps its header."""
    import pyarrow as pa
    import pyarrow.csv as pacsv

    no_header = pacsv.WriteOptions(include_header=False)
    with pa.OSFile(str(path), "wb") as sink:
        sink.write(csv_header(schema.names))
        with pacsv.CSVWriter(sink, schema, write_options=no_header) as writer:
            yield writer


def write_table(frame: pd.DataFrame, path: Path) -> None:
    """Write ``frame`` as Parquet (or CSV by suffix), creating the folder."""
    if is_parquet(path):
        import pyarrow as pa

        write_arrow(pa.Table.from_pandas(frame, preserve_index=False), path)
        return
    with output_file(path) as partial:
        frame.to_csv(partial, index=False)


def read_batches(path: Path, rows: int) -> Iterator[pa.Table]:
    """``path`` as Arrow tables of up to ``rows`` rows, one held at a time: a Parquet file's
    batches keep its types (a batch without missing values is not read as integers when
    another has some), and an empty file gives one empty table so that its columns are seen;
    a CSV file's chunks are typed by pandas' reader, each chunk on its own (its callers type
    columns by the schema; :func:`write_csv_as_parquet` gives a CSV the whole file's types)."""
    import pandas as pd
    import pyarrow as pa
    import pyarrow.parquet as pq

    if not is_parquet(path):
        # map keeps no chunk once converted: pandas' copy is freed while the caller holds Arrow's
        to_arrow = partial(pa.Table.from_pandas, preserve_index=False)
        yield from map(to_arrow, pd.read_csv(path, chunksize=rows, low_memory=False))
        return
    # Without pre-buffering, a row group's column chunks are read as they are decoded, not
    # held whole: the memory of a batch, not of a row group (which may be the whole file).
    parquet = pq.ParquetFile(path, pre_buffer=False)
    if parquet.metadata.num_rows == 0:
        yield parquet.schema_arrow.empty_table()
    for batch in parquet.iter_batches(batch_size=rows):
        yield pa.Table.from_batches([batch])


def read_frames(path: Path, rows: int) -> Iterator[pd.DataFrame]:
    """:func:`read_batches` as pandas frames. ``map`` keeps no table once converted: of each
    batch, only pandas' copy is held."""
    import pyarrow as pa

    return map(pa.Table.to_pandas, read_batches(path, rows))


def table_shape(path: Path) -> tuple[int, int]:
    """Rows and columns of a table file: a Parquet file's from its footer."""
    if not is_parquet(path):
        return read_table(path).shape
    import pyarrow.parquet as pq

    metadata = pq.read_metadata(path)
    return metadata.num_rows, metadata.num_columns


def write_batches(frames: Iterable[pd.DataFrame], path: Path) -> None:
    """Write ``frames`` one after another as one table (Parquet, or CSV by suffix) in bounded
    memory; nothing is written if ``frames`` raises (see :func:`output_file`).

    Each batch takes the column types of the first, so that a column missing values in one
    batch only still has one type in the file.
    """
    import pandas as pd
    import pyarrow as pa

    if not is_parquet(path):
        with output_file(path) as partial:
            partial.touch()
            for number, frame in enumerate(frames):
                frame.to_csv(partial, index=False, mode="a", header=number == 0)
        return
    with output_file(path) as partial, ExitStack() as stack:
        writer: pq.ParquetWriter | None = None
        for frame in frames:
            schema = writer.schema if writer is not None else None
            table = pa.Table.from_pandas(frame, schema=schema, preserve_index=False)
            if writer is None:
                writer = stack.enter_context(parquet_writer(partial, table.schema))
            writer.write_table(table)
        if writer is None:
            pd.DataFrame().to_parquet(partial)


def read_arrow(path: Path) -> pa.Table:
    """:func:`read_table` as an Arrow table: Parquet is read without pandas."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    if is_parquet(path):
        return pq.read_table(path)
    return pa.Table.from_pandas(read_table(path), preserve_index=False)


def write_arrow(table: pa.Table, path: Path) -> None:
    """:func:`write_table` for an Arrow table."""
    import pyarrow.csv as pc

    with output_file(path) as partial:
        if is_parquet(path):
            with parquet_writer(partial, table.schema) as writer:
                writer.write_table(table, row_group_size=ROW_GROUP_ROWS)
        else:
            pc.write_csv(table, partial)


def read_json(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


def write_json(data: Any, path: Path) -> None:
    """Write ``data`` as stable, indented JSON (diff-friendly for ``dvc metrics diff``)."""
    write_text(json.dumps(data, indent=2, sort_keys=True) + "\n", path)


def write_text(text: str, path: Path) -> None:
    """Write ``text`` (UTF-8) to ``path`` through :func:`output_file`."""
    with output_file(path) as partial:
        partial.write_text(text, encoding="utf-8")


def file_md5(path: Path) -> str:
    """MD5 of a file's bytes: the hash DVC 3 records for it, used as the data version."""
    digest = hashlib.md5(usedforsecurity=False)
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


class ChunkTypesError(Exception):
    """A CSV column that pandas read as different types in different chunks."""

    def __init__(self, types: dict[str, Any] | None) -> None:
        super().__init__(types)
        self.types = types


def whole_file_type(types: set[Any]) -> Any | None:
    """The type pandas gives a column whose chunks it read as ``types``: integers and floats
    make floats (one missing value makes a column of integers float), numbers and text make
    text. ``None`` where no type given to the reader says it: booleans mixed with gaps or text
    (pandas keeps Python objects) and integers past int64 (pandas reads them unsigned)."""
    kinds = {dtype.kind for dtype in types}
    if kinds == {"i", "f"}:
        return "float64"
    return None if kinds & {"b", "u"} else str


def csv_chunks(path: Path, rows: int, types: dict[str, Any] | None) -> Iterator[pd.DataFrame]:
    """``path`` as frames of up to ``rows`` rows, the columns in ``types`` read as that type;
    raises :class:`ChunkTypesError` once a chunk's types differ from the first chunk's,
    after reading the rest of the file for the type each changed column needs (with
    ``types``: the types to read the file again with)."""
    import pandas as pd

    try:
        # low_memory=False: one type per column and chunk (the default parses a long chunk in
        # pieces, which can leave numbers and text in one column)
        reader = pd.read_csv(path, chunksize=rows, dtype=types, low_memory=False)
    except pd.errors.EmptyDataError:
        yield pd.DataFrame()
        return
    with reader:
        first = next(reader, None)
        if first is None:  # a header without rows
            yield pd.read_csv(path, dtype=types)
            return
        seen = {str(name): {dtype} for name, dtype in first.dtypes.items()}
        yield first
        changed = False
        for chunk in reader:
            for name, dtype in chunk.dtypes.items():
                changed |= dtype not in seen[str(name)]
                seen[str(name)].add(dtype)
            if not changed:
                yield chunk
    if changed:
        wanted = {name: whole_file_type(found) for name, found in seen.items() if len(found) > 1}
        unknown = any(kind is None for kind in wanted.values())
        # A column given its type that changed anyway cannot be read in chunks; others join it.
        settled = not wanted.keys().isdisjoint(types or {})
        raise ChunkTypesError(None if unknown or settled else {**(types or {}), **wanted})


def read_ahead(items: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
    """``items`` in order, each next one taken on a worker thread while the caller works on the
    one before: parsing a CSV chunk overlaps with writing the previous one, whose Parquet
    encoding runs outside Python's lock. One item at most is taken ahead. An error in taking
    an item is raised when the caller asks for it; when the caller stops early, ``items`` is
    closed once the item in flight is taken."""
    with ThreadPoolExecutor(1, thread_name_prefix="read-ahead") as pool:
        pending = pool.submit(next, items, None)
        try:
            while (frame := pending.result()) is not None:
                pending = pool.submit(next, items, None)
                yield frame
        finally:
            wait([pending])  # the worker is done with ``items``
            if isinstance(items, Generator):
                items.close()


def write_csv_as_parquet(
    source: Path,
    path: Path,
    rows: int,
    rename: Callable[[str], str] = str,
    text: Collection[str] = (),
) -> None:
    """Write the CSV file ``source`` to the Parquet file ``path`` a chunk of ``rows`` rows at a
    time, with the column types of ``pd.read_csv(source, low_memory=False)``, the columns named
    by ``rename``; those it names in ``text`` as text as written (codes keep their zeros).

    pandas infers types per chunk: a column with a gap is float in that chunk only, digits in
    one chunk and words in another are numbers there and text here. When that happens the
    file is read again, those columns as the whole file's type; booleans mixed with gaps,
    which no type expresses, are read in one piece.
    """
    import pandas as pd

    try:
        header = [str(name) for name in pd.read_csv(source, nrows=0).columns]
    except pd.errors.EmptyDataError:
        header = []
    given = {name: "str" for name in header if rename(name) in text}
    types: dict[str, Any] | None = given or None
    while True:
        chunks = read_ahead(csv_chunks(source, rows, types))
        try:
            write_batches((chunk.rename(columns=rename) for chunk in chunks), path)
            return
        except ChunkTypesError as changed:
            if changed.types is None:
                break
            types = changed.types
    write_table(pd.read_csv(source, low_memory=False, dtype=given).rename(columns=rename), path)
