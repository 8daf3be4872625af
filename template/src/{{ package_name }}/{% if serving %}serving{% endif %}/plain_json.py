"""A shortcut past pydantic for plainly valid request bodies of models of numbers only.

pydantic-core validates a row of 30 numeric features in about 4 us, most of a 100-row request's
CPU. msgspec decodes the same body straight into one typed struct per row in about a quarter of
that, checking as it parses what the contract checks: one key (``instances`` for ``/predict``;
``dataframe_records`` or ``instances`` for ``/invocations``), a list of 1 to
``max_batch_size`` objects, each with exactly the model's features, and every value a number
(``int`` or ``float``; ``null`` too where missing values are allowed). JSON has no NaN or
infinity, and a number too large for a float is refused.

Anything else (a string, ``true``, a nested array, a misspelt or a missing feature) makes
:meth:`PlainNumbers.parse` answer ``None``, and pydantic validates the body and words the
errors: this module never refuses a request, so it cannot word one differently. (A key given
twice keeps its last value, in msgspec as in pydantic.)

The rows stay the tuples msgspec read (:class:`TupleRows`) until something asks for one as a
dict: the compiled model and the prediction log read the array of numbers instead.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Annotated, Any, overload

import msgspec
import numpy as np

from ..core.rows import Row

Array = np.ndarray[Any, Any]
# msgspec refuses these in a field's JSON name: such a model has no shortcut.
UNNAMEABLE = frozenset('\\"') | {chr(code) for code in range(32)}


class TupleRows(Sequence[Row]):
    """Rows held as value tuples in ``names`` order; each becomes a dict when first asked for."""

    def __init__(self, names: Sequence[str], values: list[tuple[Any, ...]]) -> None:
        self.names = names
        self.values = values
        self._rows: list[Row] | None = None

    def _materialised(self) -> list[Row]:
        if self._rows is None:
            names = self.names
            self._rows = [dict(zip(names, row, strict=True)) for row in self.values]
        return self._rows

    def __len__(self) -> int:
        return len(self.values)

    @overload
    def __getitem__(self, index: int) -> Row: ...

    @overload
    def __getitem__(self, index: slice) -> list[Row]: ...

    def __getitem__(self, index: int | slice) -> Row | list[Row]:
        return self._materialised()[index]

    def __iter__(self) -> Iterator[Row]:
        return iter(self._materialised())

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Sequence):
            return list(self) == list(other)
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]  # equal to a list: unhashable like one


# The keys of a body that holds its rows as a list of objects, one decoder each.
KEYS = ("instances", "dataframe_records")


class PlainNumbers:
    """Parser of ``{key: [{feature: number, ...}, ...]}`` bodies for ``names``."""

    def __init__(self, names: list[str], *, max_batch_size: int, allow_missing: bool) -> None:
        self.names = names
        value: Any = float | None if allow_missing else float
        # Fields are f0, f1, ... (feature names need not be identifiers), named as the features.
        row = msgspec.defstruct(
            "Row",
            [(f"f{i}", value) for i in range(len(names))],
            rename={f"f{i}": name for i, name in enumerate(names)},
            forbid_unknown_fields=True,
            gc=False,
        )
        batch = Annotated[list[row], msgspec.Meta(min_length=1, max_length=max_batch_size)]  # type: ignore[valid-type]
        self._decoders: dict[str, msgspec.json.Decoder[Any]] = {
            key: msgspec.json.Decoder(
                msgspec.defstruct("Request", [(key, batch)], forbid_unknown_fields=True)
            )
            for key in KEYS
        }

    @classmethod
    def for_names(
        cls, names: list[str], *, max_batch_size: int, allow_missing: bool
    ) -> PlainNumbers | None:
        """The parser, or ``None`` when a feature's name holds a character msgspec cannot
        match (a quote, a backslash, a control character): pydantic alone reads those."""
        if any(UNNAMEABLE.intersection(name) for name in names):
            return None
        return cls(names, max_batch_size=max_batch_size, allow_missing=allow_missing)

    def parse(self, body: bytes, key: str = "instances") -> tuple[TupleRows, Array] | None:
        """The rows under ``key`` (one of ``KEYS``), and their values as an array (rows x
        ``names``, NaN where missing); ``None`` unless the body is plainly valid."""
        try:
            rows = getattr(self._decoders[key].decode(body), key)
        except (msgspec.DecodeError, msgspec.ValidationError):
            return None
        values = list(map(msgspec.structs.astuple, rows))
        numbers = np.array(values, dtype=float).reshape(len(values), len(self.names))
        return TupleRows(self.names, values), numbers
