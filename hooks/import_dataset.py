"""Bring the user's table into the generated project and describe it in ``data/schema.yaml``.

Runs once, right after ``copier copy`` when ``dataset_path`` is set:

1. checks that the file is a readable CSV (or Parquet file) with a header, data rows and the
   target column;
2. copies it to ``data/raw/dataset.csv`` (``.parquet``) in one streamed pass that also hashes
   it, and writes the ``.dvc`` file that tracks it (the same ``md5``/``size`` record
   ``dvc add`` writes; the first ``dvc repro`` or ``dvc commit`` stores it in the DVC cache);
3. infers the data contract (numeric / categorical / ISO 8601 datetime / free-text columns,
   identifier-like columns to ignore) into ``data/schema.yaml``, which the pipeline's
   validate stage enforces.

Inference reads a bounded sample, the first ``SAMPLE_ROWS`` rows, here in Copier's Python: the
contract has to exist as soon as the project does (it is the file a team reviews and edits
before the first run, and ``make pipeline`` needs it), and a sample costs the same for a
thousand rows or ten million, where a full pass with the standard library grows with the file.
A value past the sample that does not fit its column's inferred type is not lost: the validate
stage checks every row against the contract and stops naming the column and the reason.

Safe to re-run: an identical copy is left alone and an existing schema is never overwritten.
Only the standard library (and PyYAML, which Copier itself depends on) is used for a CSV,
because the hook runs in Copier's Python before the project's environment exists. Parquet
needs pyarrow (the sample is the first row group(s), read through the file's footer): without
it in Copier's Python, the hook runs itself again through ``uv run --with pyarrow`` (uv is what
the project's ``make setup`` uses anyway).
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import importlib.util
import itertools
import os
import re
import secrets
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import yaml

RAW_FOLDER = Path("data/raw")
SCHEMA = Path("data/schema.yaml")
MISSING = {"", "na", "n/a", "nan", "null", "none", "<na>", "#n/a", "-nan", "nat"}
IDENTIFIER_MIN_ROWS = 20
# Rows read to infer the contract: enough to see each column's kind, bounded at any file size.
SAMPLE_ROWS = 10_000
# What the pipeline reads as a date (pandas' ISO 8601 parser): a day, maybe a time and a zone.
ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}([T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?)?(Z|[+-]\d{2}:?\d{2})?")
# Digits after a leading zero (007, 0000123): a code or an identifier, text rather than a number.
ZERO_PADDED = re.compile(r"[+-]?0\d")
# Free text, not a category: most values hold this many words or more.
TEXT_MIN_WORDS = 3


class DatasetError(Exception):
    """The CSV cannot be used as training data; the message says why."""


@dataclass
class ColumnStats:
    """What one pass over the file learned about one column."""

    name: str
    numeric: bool = True
    dates: bool = True
    missing: int = 0
    wordy: int = 0
    values: set[str] = field(default_factory=set)

    def add(self, raw: str) -> None:
        value = raw.strip()
        if value.lower() in MISSING:
            self.missing += 1
            return
        if self.numeric:
            try:
                float(value)
            except ValueError:
                self.numeric = False
            if ZERO_PADDED.match(value):
                self.numeric = False
        if self.dates and not ISO_DATE.fullmatch(value):
            self.dates = False
        if len(value.split()) >= TEXT_MIN_WORDS:
            self.wordy += 1
        self.values.add(value)


def resolve_source(source: str) -> Path:
    """Resolve ``source`` against the folder copier was started from.

    Copier runs tasks inside the new project, so a relative path is first tried against the
    caller's shell folder (``$PWD``, inherited from the shell that ran copier).
    """
    path = Path(source).expanduser()
    if path.is_absolute():
        return path
    candidates = [Path(os.environ["PWD"]) / path] if os.environ.get("PWD") else []
    candidates.append(Path.cwd() / path)
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    return candidates[0]


def read_rows(path: Path) -> Iterator[list[str]]:
    """Yield the CSV's rows; fail with a clear message on unreadable input."""
    try:
        with path.open(newline="", encoding="utf-8-sig") as handle:
            yield from csv.reader(handle)
    except UnicodeDecodeError as error:
        raise DatasetError(f"{path} is not UTF-8 text: {error}") from error
    except csv.Error as error:
        raise DatasetError(f"{path} is not a valid CSV file: {error}") from error


def read_parquet_rows(path: Path) -> Iterator[list[str]]:
    """Yield the Parquet file's column names, then its first rows as text (dates in ISO 8601).

    Only the footer and the row group(s) holding the sample are read.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        table = pq.ParquetFile(path)
        yield table.schema_arrow.names
        for batch in itertools.islice(table.iter_batches(batch_size=SAMPLE_ROWS), 1):
            columns = [column.to_pylist() for column in batch.columns]
            for row in zip(*columns, strict=True):
                yield [_text(value) for value in row]
    except pa.ArrowException as error:
        raise DatasetError(f"{path} is not a valid Parquet file: {error}") from error


def _text(value: object) -> str:
    if value is None:
        return ""
    isoformat = getattr(value, "isoformat", None)
    return str(isoformat() if isoformat is not None else value)


def column_kind(column: ColumnStats, rows: int) -> str:
    """numeric, datetime, text or categorical: the first that every value fits."""
    if column.missing == rows:
        return "categorical"
    if column.numeric:
        return "numeric"
    if column.dates:
        return "datetime"
    if column.wordy * 2 >= rows - column.missing:
        return "text"
    return "categorical"


@dataclass
class Sample:
    """What the first ``SAMPLE_ROWS`` rows of a table say about its columns."""

    columns: list[ColumnStats]
    rows: int
    whole: bool  # the sample is the whole table: facts about all rows can be judged here


def profile(path: Path) -> Sample:
    """Return per-column statistics of the first ``SAMPLE_ROWS`` data rows at ``path``."""
    if not path.is_file():
        raise DatasetError(f"dataset_path {path} does not exist or is not a file")
    rows = read_parquet_rows(path) if is_parquet(path) else read_rows(path)
    header = next(rows, None)
    if not header or not any(name.strip() for name in header):
        raise DatasetError(f"{path} is empty: expected a header row naming the columns")
    names = [name.strip() for name in header]
    blank = [index + 1 for index, name in enumerate(names) if not name]
    if blank:
        raise DatasetError(f"{path}: column(s) {blank} have no name in the header")
    duplicated = sorted({name for name in names if names.count(name) > 1})
    if duplicated:
        raise DatasetError(f"{path}: duplicated column name(s) {duplicated}")
    columns = [ColumnStats(name) for name in names]
    count = 0
    for line, row in enumerate(rows, start=2):
        if not row:
            continue
        if count == SAMPLE_ROWS:
            return Sample(columns, count, whole=False)
        if len(row) != len(columns):
            raise DatasetError(
                f"{path}, line {line}: expected {len(columns)} fields, found {len(row)}"
            )
        for column, value in zip(columns, row, strict=True):
            column.add(value)
        count += 1
    if count == 0:
        raise DatasetError(f"{path} has a header but no data rows")
    return Sample(columns, count, whole=True)


def infer_schema(sample: Sample, target: str, task: str) -> dict:
    """Describe the dataset as the data contract ``data/schema.yaml`` holds.

    What only the whole table can show (an empty label, a single class) is refused here when
    the sample is the whole table, and otherwise left to the validate stage, which sees it all.
    """
    columns, rows = sample.columns, sample.rows
    by_name = {column.name: column for column in columns}
    if target not in by_name:
        raise DatasetError(
            f"target_column {target!r} is not a column of the dataset; columns: {list(by_name)}"
        )
    label = by_name[target]
    if label.missing == rows and sample.whole:
        raise DatasetError(f"target column {target!r} is empty")
    if task == "regression" and not label.numeric:
        raise DatasetError(
            f"target column {target!r} is not numeric, so it cannot be regressed; "
            "use task=classification or pick a numeric target"
        )
    if task == "classification" and len(label.values) < 2 and sample.whole:
        raise DatasetError(f"target column {target!r} has a single class; nothing to learn")
    entries = []
    for column in columns:
        if column.name == target:
            continue
        kind = column_kind(column, rows)
        identifier_like = (
            kind == "categorical"
            and rows >= IDENTIFIER_MIN_ROWS
            and len(column.values) == rows - column.missing
        )
        entries.append(
            {
                "name": column.name,
                "type": kind,
                "role": "ignore" if identifier_like or column.missing == rows else "feature",
                "nullable": True,
            }
        )
    return {
        "target": {"name": target, "type": "numeric" if task == "regression" else "categorical"},
        "columns": entries,
    }


def file_md5(path: Path) -> str:
    """MD5 of the file's bytes, as DVC 3 records it."""
    digest = hashlib.md5(usedforsecurity=False)
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def copy_hashed(source: Path, target: Path) -> str:
    """Copy ``source`` to ``target`` and return the MD5 of the copy's bytes, in bounded memory.

    The copy is written under a hidden name and renamed into place once complete; a copy
    whose size and MD5 already match is left alone. ``shutil.copyfile`` lets the kernel copy
    (sendfile), then the hash reads the copy back from the page cache: faster than hashing
    while copying through Python (benchmarks in docs/large-data.md).
    """
    if target.is_file() and target.stat().st_size == source.stat().st_size:
        digest = file_md5(target)
        if file_md5(source) == digest:
            return digest
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f".partial-{secrets.token_hex(4)}-{target.name}")
    try:
        shutil.copyfile(source, partial)
        digest = file_md5(partial)
        partial.replace(target)
    finally:
        partial.unlink(missing_ok=True)  # a name made up above
    return digest


def track_with_dvc(data: Path, md5: str) -> None:
    """Write ``<data>.dvc`` and ignore the data file in git, as ``dvc add`` does."""
    record = {
        "outs": [
            {
                "md5": md5,
                "size": data.stat().st_size,
                "hash": "md5",
                "path": data.name,
            }
        ]
    }
    data.with_name(data.name + ".dvc").write_text(yaml.safe_dump(record, sort_keys=False))
    gitignore = data.with_name(".gitignore")
    entry = f"/{data.name}"
    lines = gitignore.read_text().splitlines() if gitignore.exists() else []
    if entry not in lines:
        gitignore.write_text("\n".join([*lines, entry]) + "\n")


SCHEMA_HEADER = """\
# Data contract, enforced by the pipeline's validate stage before anything trains.
# Inferred from {sample} of {source} when the project was generated (validate checks every
# row against it); edit it on purpose.
#   type: numeric | categorical | datetime (ISO 8601: the model sees its date parts) | text
#   role: feature | ignore     nullable: true | false
"""


def is_parquet(path: Path) -> bool:
    return path.suffix.lower() == ".parquet"


def rerun_with_pyarrow(argv: list[str]) -> int:
    """Run this hook again in a Python that has pyarrow, through uv."""
    uv = shutil.which("uv")
    if uv is None:
        print(
            "import_dataset: reading Parquet needs pyarrow, which Copier's Python lacks, or uv "
            "to fetch it: install uv, or copier with pyarrow (uv tool install copier --with "
            "pyarrow)",
            file=sys.stderr,
        )
        return 1
    command = [uv, "run", "--no-project", "--with", "pyarrow", "--with", "pyyaml"]
    return subprocess.run([*command, "python", __file__, *argv], check=False).returncode


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", required=True, help="the user's CSV or Parquet file")
    parser.add_argument("--target", required=True, help="the column to predict")
    parser.add_argument("--task", required=True, choices=["classification", "regression"])
    args = parser.parse_args(argv)

    source = resolve_source(args.source)
    if is_parquet(source) and importlib.util.find_spec("pyarrow") is None:
        return rerun_with_pyarrow(sys.argv[1:] if argv is None else argv)
    raw_data = RAW_FOLDER / ("dataset.parquet" if is_parquet(source) else "dataset.csv")
    try:
        sample = profile(source)
        schema = infer_schema(sample, args.target.strip(), args.task)
    except DatasetError as error:
        print(f"import_dataset: {error}", file=sys.stderr)
        return 1

    track_with_dvc(raw_data, copy_hashed(source, raw_data))
    if not SCHEMA.exists():
        header = SCHEMA_HEADER.format(source=source.name, sample=sample_words(sample))
        SCHEMA.write_text(header + yaml.safe_dump(schema, sort_keys=False, allow_unicode=True))
    features = sum(1 for column in schema["columns"] if column["role"] == "feature")
    print(
        f"import_dataset: {features} feature columns inferred from {sample_words(sample)} "
        f"-> {raw_data}, {SCHEMA}"
    )
    return 0


def sample_words(sample: Sample) -> str:
    return f"{'all' if sample.whole else 'the first'} {sample.rows} rows"


if __name__ == "__main__":
    sys.exit(main())
