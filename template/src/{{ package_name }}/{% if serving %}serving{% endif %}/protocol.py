"""MLflow's scoring protocol (``/invocations``): every input format turned into JSON records.

Accepted like ``mlflow models serve``: a JSON object with exactly one of ``dataframe_records``
(list of rows), ``dataframe_split`` (``columns`` + ``data``), ``instances`` or ``inputs``
(list of rows, or one list per column); or a CSV body with ``Content-Type: text/csv``.
"""

from __future__ import annotations

import io
from typing import Any

import pandas as pd
from pydantic import BaseModel, ConfigDict, ValidationError
from pydantic_core import from_json

from ..core.rows import Row

FORMATS = ("dataframe_records", "dataframe_split", "instances", "inputs")


class ProtocolError(ValueError):
    """The body does not follow the scoring protocol; ``detail`` lists FastAPI-style errors."""

    def __init__(self, detail: list[dict[str, Any]]) -> None:
        super().__init__(detail)
        self.detail = detail


def _error(loc: list[str | int], msg: str, kind: str = "value_error") -> ProtocolError:
    return ProtocolError([{"loc": ["body", *loc], "msg": msg, "type": kind}])


class SplitFrame(BaseModel):
    """``dataframe_split``: pandas' ``orient="split"``."""

    model_config = ConfigDict(extra="forbid")

    columns: list[str]
    data: list[list[Any]]
    index: list[Any] | None = None


def _columns_to_records(columns: dict[str, Any], key: str) -> list[Any]:
    lengths = {len(values) for values in columns.values() if isinstance(values, list)}
    if len(lengths) != 1 or not all(isinstance(v, list) for v in columns.values()):
        raise _error([key], "columnar input needs one list per column, all of the same length")
    names = list(columns)
    return [dict(zip(names, values, strict=True)) for values in zip(*columns.values(), strict=True)]


def records_from_json(body: bytes) -> tuple[str, Any]:
    """(format, records) from a JSON body; records are validated by the contract next."""
    try:
        payload = from_json(body, allow_inf_nan=True)
    except ValueError as error:
        raise _error([], f"invalid JSON: {error}", "json_invalid") from None
    if not isinstance(payload, dict):
        raise _error([], f"expected a JSON object with one of the keys {', '.join(FORMATS)}")
    given = [key for key in FORMATS if key in payload]
    unknown = sorted(set(payload) - set(FORMATS))
    if unknown:
        raise _error([unknown[0]], f"unsupported key; use one of {', '.join(FORMATS)}")
    if len(given) != 1:
        raise _error([], f"expected exactly one of the keys {', '.join(FORMATS)}, got {given}")
    key = given[0]
    value = payload[key]
    if key == "dataframe_split":
        try:
            split = SplitFrame.model_validate(value)
        except ValidationError as error:
            raise ProtocolError(
                [
                    {**item, "loc": ["body", key, *item["loc"]]}
                    for item in error.errors(include_url=False, include_input=False)
                ]
            ) from None
        for position, row in enumerate(split.data):
            if len(row) != len(split.columns):
                raise _error(
                    [key, "data", position],
                    f"row has {len(row)} values for {len(split.columns)} columns",
                )
        return key, [dict(zip(split.columns, row, strict=True)) for row in split.data]
    if key in ("instances", "inputs") and isinstance(value, dict):
        return key, _columns_to_records(value, key)
    return key, value


def records_from_csv(body: bytes, text_columns: list[str]) -> list[Row]:
    """Rows of a CSV body (header line first); empty cells become ``None``."""
    try:
        frame = pd.read_csv(io.BytesIO(body), dtype=dict.fromkeys(text_columns, "string"))
    except (ValueError, pd.errors.ParserError) as error:
        raise _error([], f"invalid CSV: {error}") from None
    frame = frame.astype(object).where(frame.notna(), None)
    records: list[Row] = frame.to_dict(orient="records")  # type: ignore[assignment]
    return records
