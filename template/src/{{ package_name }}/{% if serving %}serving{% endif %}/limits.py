"""Request limits enforced while parsing, and large bodies parsed off the event loop.

A few megabytes of ``{},`` or ``[0],`` become millions of Python objects in a generic JSON
parser before any row count is checked. So a JSON body with more commas than the limits allow
is first read by a typed msgspec decoder that refuses it at its first row out of shape; other
bodies go straight to the usual validation. CSV stops one row past the limit (``protocol.py``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from types import GenericAlias
from typing import Annotated, Any

import msgspec
from starlette.concurrency import run_in_threadpool

from ..core.rows import Row
from .errors import problem
from .plain_json import Array

# Rows and, when the parser read them as such, their numeric columns.
Parsed = tuple[Sequence[Row], Array | None]
# Extra columns read beyond the model's features, so that a misspelt one gets a useful error.
COLUMN_SLACK = 8
# Bodies above this size are parsed in a worker thread; smaller ones parse faster than a
# thread hop takes.
PARSE_IN_THREAD_BYTES = 128 * 1024


@dataclass(frozen=True)
class Limits:
    """What one request may hold: rows, columns (the model's features plus a slack) and the
    characters of one text value."""

    features: int
    max_rows: int
    max_field_bytes: int

    @property
    def max_columns(self) -> int:
        return self.features + COLUMN_SLACK

    @property
    def max_items(self) -> int:
        """The most values, rows and keys a JSON body within the limits holds."""
        return (self.max_rows + 1) * (self.max_columns + 1) + 16


async def parse_large_in_thread(parse: Callable[[bytes], Parsed], body: bytes) -> Parsed:
    """``parse(body)``, in a worker thread when the body is large: the event loop keeps
    answering other requests (``/health`` among them) meanwhile."""
    if len(body) > PARSE_IN_THREAD_BYTES:
        return await run_in_threadpool(parse, body)
    return parse(body)


def _list(item: Any, min_length: int = 0, max_length: int | None = None) -> Any:
    """``list[item]`` of ``min_length`` to ``max_length`` items, for msgspec."""
    meta = msgspec.Meta(min_length=min_length, max_length=max_length)
    return Annotated[GenericAlias(list, (item,)), meta]


def _dict(key: Any, value: Any, min_length: int = 0, max_length: int | None = None) -> Any:
    meta = msgspec.Meta(min_length=min_length, max_length=max_length)
    return Annotated[GenericAlias(dict, (key, value)), meta]


def _location(path: str) -> list[str | int]:
    """msgspec's ``$.instances[3].age`` as FastAPI's ``["instances", 3, "age"]``."""
    parts = path.replace("[", ".").replace("]", "").split(".")
    return [int(part) if part.isdigit() else part for part in parts if part]


class ShapeCheck:
    """Typed decoders of the request formats, within ``limits``, for bodies too big to trust."""

    def __init__(self, limits: Limits) -> None:
        self.limits = limits
        rows, width = limits.max_rows, limits.max_columns
        text = Annotated[str, msgspec.Meta(max_length=limits.max_field_bytes)]
        value = text | float | bool | None
        row = _list(value, min_length=limits.features, max_length=width)
        record = _dict(text, value, min_length=limits.features, max_length=width)
        records = _list(record, max_length=rows)
        columns = _dict(text, _list(value, max_length=rows), max_length=width)
        split = msgspec.defstruct(
            "Split",
            [
                ("columns", _list(text, max_length=width)),
                ("data", _list(row, max_length=rows)),
                ("index", _list(value, max_length=rows) | None, None),
            ],
            forbid_unknown_fields=True,
        )
        formats = [
            ("dataframe_records", records | None, None),
            ("dataframe_split", split | None, None),
            ("instances", records | columns | None, None),
            ("inputs", records | columns | None, None),
        ]
        self._decoders = {
            "predict": msgspec.json.Decoder(
                msgspec.defstruct("Predict", [("instances", records)], forbid_unknown_fields=True)
            ),
            "invocations": msgspec.json.Decoder(
                msgspec.defstruct("Invocations", formats, forbid_unknown_fields=True)
            ),
        }

    def check(self, body: bytes, route: str) -> None:
        """Raise :class:`ProtocolError` when ``body`` holds more items than the limits allow
        and is out of shape for ``route`` (``predict`` or ``invocations``)."""
        items = self.limits.max_items
        if len(body) <= items or body.count(b",") <= items:
            return
        try:
            self._decoders[route].decode(body)
        except msgspec.ValidationError as error:
            message, _, path = str(error).partition(" - at `$")
            raise problem(
                _location(path.rstrip("`")),
                f"{message}; a body this large must hold rows of the model's "
                f"{self.limits.features} features, at most {self.limits.max_rows} "
                "(SERVING_MAX_BATCH_SIZE)",
            ) from None
        except msgspec.DecodeError as error:
            raise problem([], f"invalid JSON: {error}", "json_invalid") from None
