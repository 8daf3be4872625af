"""Counts of what the service received and answered, for its live metrics.

The prediction log's writer process counts each step of logged rows against the training
data's reference profile: missing values, numbers outside the training range, categories never
seen in training, predictions by class (regression: by decile of the reference's predictions),
rows by the model that answered, and agreement with the shadow challenger. The worker adds the
counts to its Prometheus counters (``serving/live_monitoring.py``).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from ..core.rows import numeric_block

if TYPE_CHECKING:
    from .log_writer import ScoredRequest

# Metric -> label value -> count, e.g. {"missing": {"age": 3}}.
Counts = dict[str, dict[str, int]]


@dataclass(frozen=True)
class InputChecks:
    """The reference's ranges and categories, and the deciles of its predictions."""

    ranges: dict[str, tuple[float, float]]
    categories: dict[str, frozenset[str]]
    deciles: tuple[float, ...] | None = None

    @classmethod
    def from_summary(cls, summary: dict[str, Any]) -> InputChecks:
        """From a reference profile's summary (``monitoring/reference.py``); empty: no checks."""
        numeric: dict[str, Any] = summary.get("numeric", {})
        categorical: dict[str, Any] = summary.get("categorical", {})
        deciles = summary.get("prediction", {}).get("deciles")
        return cls(
            ranges={name: (v["min"], v["max"]) for name, v in numeric.items()},
            categories={name: frozenset(v["frequencies"]) for name, v in categorical.items()},
            deciles=tuple(deciles[1:-1]) if deciles else None,
        )

    def count(self, requests: list[ScoredRequest], challenger: list[Any] | None) -> Counts:
        """The metric counts of the rows of ``requests``."""
        rows = [row for request in requests for row in request.rows]
        predictions = [p for request in requests for p in request.predictions]
        served = Counter(request.served_by for request in requests for _ in request.rows)
        numeric = list(self.ranges)
        block = numeric_block(rows, numeric)  # reference's numeric columns; missing values are NaN
        others = [name for name in (rows[0] if rows else {}) if name not in self.ranges]
        missing = dict(zip(numeric, np.isnan(block).sum(axis=0).tolist(), strict=True))
        missing.update({name: sum(row.get(name) is None for row in rows) for name in others})
        counts: Counts = {
            "rows": {"": len(rows)},
            "missing": {name: count for name, count in missing.items() if count},
            "out_of_range": self._out_of_range(rows, numeric, block),
            "predicted": self._predicted(predictions),
            "served": dict(served),
        }
        if challenger is not None:
            agree = sum(str(a) == str(b) for a, b in zip(predictions, challenger, strict=True))
            counts["shadow"] = {"yes": agree, "no": len(rows) - agree}
        return counts

    def _out_of_range(
        self, rows: list[dict[str, Any]], numeric: list[str], block: np.ndarray[Any, Any]
    ) -> dict[str, int]:
        outside: dict[str, int] = {}
        if numeric and rows:
            low, high = np.array([self.ranges[name] for name in numeric]).T
            with np.errstate(invalid="ignore"):
                beyond = ((block < low) | (block > high)).sum(axis=0)
            outside.update({name: int(n) for name, n in zip(numeric, beyond, strict=True) if n})
        for name, known in self.categories.items():
            unseen = sum(
                1 for row in rows if row.get(name) is not None and str(row[name]) not in known
            )
            if unseen:
                outside[name] = unseen
        return outside

    def _predicted(self, predictions: list[Any]) -> dict[str, int]:
        if self.deciles is not None:
            buckets = np.searchsorted(np.asarray(self.deciles), np.asarray(predictions, float))
            return dict(Counter(f"decile_{bucket + 1}" for bucket in buckets.tolist()))
        return dict(Counter(str(value) for value in predictions))
