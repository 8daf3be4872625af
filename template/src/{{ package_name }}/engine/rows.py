"""A request's rows, and the numbers read from them once for the model and the prediction log.

:class:`Rows` is what the request parsers hand the team's code: a sequence of dicts, feature ->
value. The first time something asks for its numeric columns (:func:`numeric_block`), the array
is kept on it, so the model, the micro-batcher and the prediction log read each request's
numbers once. Rows decoded by the shortcut of ``plain_json.py`` come with that array, and stay
the tuples the decoder read until something asks for one as a dict.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from operator import itemgetter
from typing import Any, overload

import numpy as np

Row = dict[str, Any]
Array = np.ndarray[Any, Any]


def read_block(rows: Sequence[Row], names: Sequence[str]) -> Array:
    """The ``names`` columns of ``rows`` as one float array; ``None`` and absent keys are NaN."""
    if not names or not rows:
        return np.zeros((len(rows), len(names)))
    try:  # one C call a row, where a nested comprehension makes one per value
        values = list(map(itemgetter(*names), rows))
    except KeyError:  # a row without one of the columns
        values = [[row.get(name) for name in names] for row in rows]
    return np.array(values, dtype=float).reshape(len(rows), len(names))


class Rows(Sequence[Row]):
    """Rows as dicts, made on first use; ``block`` is the numeric columns read so far."""

    def __init__(
        self,
        rows: list[Row] | None = None,
        *,
        count: int = 0,
        make: Callable[[], list[Row]] | None = None,
        block: tuple[tuple[str, ...], Array] | None = None,
    ) -> None:
        self._rows = rows
        self._count = len(rows) if rows is not None else count
        self._make = make
        self._parts: Sequence[Sequence[Row]] = ()
        self._columns: tuple[str, ...] | None = None  # every row's keys, when known
        self.block = block

    @classmethod
    def from_values(
        cls, names: Sequence[str], values: list[tuple[Any, ...]], numbers: Array
    ) -> Rows:
        """Rows held as value tuples in ``names`` order, with their array (rows x names)."""

        def make() -> list[Row]:
            return [dict(zip(names, row, strict=True)) for row in values]

        rows = cls(count=len(values), make=make, block=(tuple(names), numbers))
        rows._columns = tuple(names)
        return rows

    @classmethod
    def joined(cls, parts: Sequence[Sequence[Row]]) -> Rows:
        """The rows of ``parts`` one after the other; each part keeps its own numbers."""
        joined = cls(count=sum(map(len, parts)), make=lambda: [r for part in parts for r in part])
        joined._parts = parts
        return joined

    def _materialised(self) -> list[Row]:
        if self._rows is None:
            self._rows = self._make() if self._make is not None else []
        return self._rows

    def __len__(self) -> int:
        return self._count

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

    def numbers_only(self) -> bool:
        """Whether the numbers read so far hold every value of the rows (the contract gives
        every row the same keys)."""
        if self.block is None:
            return False
        columns = self._columns
        if columns is None:
            rows = self._materialised()
            columns = tuple(rows[0]) if rows else ()
        return set(columns) <= set(self.block[0])

    def numbers(self, names: Sequence[str]) -> Array:
        """The ``names`` columns (rows x names, NaN where missing), read once and kept."""
        key = tuple(names)
        if self.block is not None:
            have, array = self.block
            if have == key:
                return array
            where = {name: i for i, name in enumerate(have)}
            if all(name in where for name in key):
                return array[:, [where[name] for name in key]]
        if self._parts:
            array = np.concatenate([numeric_block(part, key) for part in self._parts])
        else:
            array = read_block(self, key)
        if self.block is None:
            self.block = (key, array)
        return array


def numeric_block(rows: Sequence[Row], names: Sequence[str]) -> Array:
    """The ``names`` columns of ``rows`` as floats (rows x names); kept on :class:`Rows`."""
    return rows.numbers(names) if isinstance(rows, Rows) else read_block(rows, names)
