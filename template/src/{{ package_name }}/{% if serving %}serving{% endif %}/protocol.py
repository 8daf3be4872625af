"""MLflow's scoring protocol (``/invocations``): every input format turned into JSON records.

Accepted like ``mlflow models serve``: a JSON object with exactly one of ``dataframe_records``
(list of rows), ``dataframe_split`` (``columns`` + ``data``), ``instances`` or ``inputs``
(list of rows, or one list per column); or a CSV body with ``Content-Type: text/csv``. Rows
and columns are counted before any record is built (``limits.py``).
"""

from __future__ import annotations

import csv
import io
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError
from pydantic_core import from_json

from ..core.rows import Row
from .contract import Contract
from .errors import ProtocolError, problem
from .limits import Limits

FORMATS = ("dataframe_records", "dataframe_split", "instances", "inputs")
# CSV cells read as a missing value, as pandas and pyarrow read them by default.
MISSING = frozenset({"", "NA", "N/A", "n/a", "#N/A", "<NA>", "NULL", "null", "NaN", "nan", "None"})
BOOLEANS = {"true": True, "false": False}


class SplitFrame(BaseModel):
    """``dataframe_split``: pandas' ``orient="split"``."""

    model_config = ConfigDict(extra="forbid")

    columns: list[str]
    data: list[list[Any]]
    index: list[Any] | None = None


def _check_size(limits: Limits, key: str, rows: int, columns: int) -> None:
    if rows > limits.max_rows:
        raise problem([key], f"{rows} rows; at most {limits.max_rows} (SERVING_MAX_BATCH_SIZE)")
    if columns > limits.max_columns:
        raise problem([key], f"{columns} columns; the model has {limits.features} features")


def _columns_to_records(columns: dict[str, Any], key: str, limits: Limits) -> list[Any]:
    lengths = {len(values) for values in columns.values() if isinstance(values, list)}
    if len(lengths) != 1 or not all(isinstance(v, list) for v in columns.values()):
        raise problem([key], "columnar input needs one list per column, all of the same length")
    _check_size(limits, key, lengths.pop(), len(columns))
    names = list(columns)
    return [dict(zip(names, values, strict=True)) for values in zip(*columns.values(), strict=True)]


def _split_to_records(value: Any, key: str, limits: Limits) -> list[Any]:
    try:
        split = SplitFrame.model_validate(value)
    except ValidationError as error:
        raise ProtocolError(
            [
                {**item, "loc": ["body", key, *item["loc"]]}
                for item in error.errors(include_url=False, include_input=False)
            ]
        ) from None
    _check_size(limits, key, len(split.data), len(split.columns))
    for position, row in enumerate(split.data):
        if len(row) != len(split.columns):
            raise problem(
                [key, "data", position],
                f"row has {len(row)} values for {len(split.columns)} columns",
            )
    return [dict(zip(split.columns, row, strict=True)) for row in split.data]


def records_from_json(body: bytes, contract: Contract) -> tuple[str, Any]:
    """(format, records) from a JSON body; records are validated by the contract next."""
    limits = contract.limits
    contract.shape.check(body, "invocations")
    try:
        payload = from_json(body, allow_inf_nan=True)
    except ValueError as error:
        raise problem([], f"invalid JSON: {error}", "json_invalid") from None
    if not isinstance(payload, dict):
        raise problem([], f"expected a JSON object with one of the keys {', '.join(FORMATS)}")
    given = [key for key in FORMATS if key in payload]
    unknown = sorted(set(payload) - set(FORMATS))
    if unknown:
        raise problem([unknown[0]], f"unsupported key; use one of {', '.join(FORMATS)}")
    if len(given) != 1:
        raise problem([], f"expected exactly one of the keys {', '.join(FORMATS)}, got {given}")
    key = given[0]
    value = payload[key]
    if key == "dataframe_split":
        return key, _split_to_records(value, key, limits)
    if key in ("instances", "inputs") and isinstance(value, dict):
        return key, _columns_to_records(value, key, limits)
    if isinstance(value, list):
        _check_size(limits, key, len(value), 0)
    return key, value


def _cell_reader(name: str, contract: Contract) -> Any:
    """How a CSV cell of column ``name`` becomes a JSON-like value."""
    if name in contract.booleans:
        return lambda cell: None if cell in MISSING else BOOLEANS.get(cell.lower(), cell)
    if name in contract.strings:
        return lambda cell: None if cell in MISSING else cell

    def number(cell: str) -> Any:
        if cell in MISSING:
            return None
        try:
            return float(cell)
        except ValueError:
            return cell  # the contract says why it is not a number

    return number


def records_from_csv(body: bytes, contract: Contract) -> list[Row]:
    """Rows of a CSV body (a header line, then the rows), read row by row within the limits;
    missing cells become ``None``, numbers of numeric features floats."""
    limits = contract.limits
    try:
        reader = csv.reader(io.StringIO(body.decode("utf-8-sig")), strict=True)
        header = next(reader, None)
        if not header:
            raise problem([], "the CSV has no header line")
        _check_size(limits, "csv", 0, len(header))
        readers = [_cell_reader(name, contract) for name in header]
        records: list[Row] = []
        for line in reader:
            if len(records) == limits.max_rows:
                raise problem(["csv"], f"more than {limits.max_rows} rows (SERVING_MAX_BATCH_SIZE)")
            if len(line) != len(header):
                raise problem(
                    ["csv", len(records)], f"{len(line)} values for {len(header)} columns"
                )
            if any(len(cell) > limits.max_field_bytes for cell in line):
                raise problem(
                    ["csv", len(records)],
                    f"a value longer than {limits.max_field_bytes} characters "
                    "(SERVING_MAX_FIELD_BYTES)",
                )
            records.append(
                {name: read(cell) for name, read, cell in zip(header, readers, line, strict=True)}
            )
    except UnicodeDecodeError as error:
        raise problem([], f"the CSV is not UTF-8: {error.reason} at byte {error.start}") from None
    except csv.Error as error:
        raise problem(["csv"], f"invalid CSV: {error}") from None
    return records
