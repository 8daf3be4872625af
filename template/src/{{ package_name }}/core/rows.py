"""Rows as the service and the prediction log hold them: one dict per row, feature -> value."""

from __future__ import annotations

from collections.abc import Sequence
from operator import itemgetter
from typing import Any

import numpy as np

Row = dict[str, Any]
# The column of a row's prediction: in batch output, the reference sample and the prediction log.
PREDICTION = "prediction"


def numeric_block(rows: Sequence[Row], names: list[str]) -> np.ndarray[Any, Any]:
    """The ``names`` columns of ``rows`` as one float array; ``None`` and absent keys are NaN."""
    if not names or not rows:
        return np.zeros((len(rows), len(names)))
    try:  # itemgetter reads a row's values in one call, not one lookup per name
        values = list(map(itemgetter(*names), rows))
    except KeyError:  # a row without one of the columns
        values = [[row.get(name) for name in names] for row in rows]
    return np.array(values, dtype=float).reshape(len(rows), len(names))
