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
from typing import Any, Protocol

import numpy as np

from ..core.schema import category_label
from ..engine import Counts

CANARY = "canary"  # the ``served_by`` of rows the challenger answered


class CountedStep(Protocol):
    """What :meth:`InputChecks.count` reads of a step of logged requests (the engine's
    ``Step``, made in the log's writer process)."""

    @property
    def numeric(self) -> tuple[str, ...]: ...
    @property
    def others(self) -> dict[str, list[Any]]: ...
    @property
    def served_by(self) -> list[str]: ...
    @property
    def sizes(self) -> list[int]: ...
    @property
    def predictions(self) -> list[Any]: ...
    @property
    def challenger(self) -> list[Any] | None: ...
    def read_numbers(self) -> np.ndarray[Any, Any]: ...


@dataclass(frozen=True)
class InputChecks:
    """The reference's ranges and categories, and the deciles of its predictions."""

    ranges: dict[str, tuple[float, float]]
    categories: dict[str, frozenset[str]]
    deciles: tuple[float, ...] | None = None

    @classmethod
    def from_summary(cls, summary: dict[str, Any]) -> InputChecks:
        """From a reference profile's summary (``monitoring/profile.py``); empty: no checks."""
        numeric: dict[str, Any] = summary.get("numeric", {})
        categorical: dict[str, Any] = summary.get("categorical", {})
        deciles = summary.get("prediction", {}).get("deciles")
        return cls(
            ranges={name: (v["min"], v["max"]) for name, v in numeric.items()},
            categories={name: frozenset(v["frequencies"]) for name, v in categorical.items()},
            deciles=tuple(deciles[1:-1]) if deciles else None,
        )

    def count(self, step: CountedStep) -> Counts:
        """The metric counts of the rows of ``step`` (numbers checked as one array)."""
        missing: Counter[str] = Counter()
        outside: Counter[str] = Counter()
        numbers = step.read_numbers()
        if step.numeric:
            self._count_numbers(step.numeric, numbers, missing, outside)
        for name, values in step.others.items():
            missing[name] += sum(value is None for value in values)
            known = self.categories.get(name)
            if known is not None:
                outside[name] += sum(
                    1
                    for value in values
                    if value is not None and category_label(value) not in known
                )
        served: Counter[str] = Counter()
        for role, size in zip(step.served_by, step.sizes, strict=True):
            served[role] += size
        predictions = step.predictions
        counts: Counts = {
            "rows": {"": len(predictions)},
            "missing": {name: n for name, n in missing.items() if n},
            "out_of_range": {name: n for name, n in outside.items() if n},
            "predicted": self._predicted(predictions),
            "served": dict(served),
        }
        if step.challenger is not None:
            counts["shadow"] = self._agreement(step, step.challenger)
        return counts

    @staticmethod
    def _agreement(step: CountedStep, challenger: list[Any]) -> dict[str, int]:
        """Rows whose answer the shadow challenger agrees with, and the others. The canary's
        rows were answered by the challenger itself: not counted (``monitor`` leaves them out
        of its shadow comparison too)."""
        sizes = zip(step.served_by, step.sizes, strict=True)
        each_row = [role for role, size in sizes for _ in range(size)]
        pairs = [
            (answer, shadow)
            for answer, shadow, role in zip(step.predictions, challenger, each_row, strict=True)
            if role != CANARY
        ]
        agree = sum(str(answer) == str(shadow) for answer, shadow in pairs)
        return {"yes": agree, "no": len(pairs) - agree}

    def _count_numbers(
        self,
        names: tuple[str, ...],
        numbers: np.ndarray[Any, Any],  # (features, rows)
        missing: Counter[str],
        outside: Counter[str],
    ) -> None:
        missing.update(dict(zip(names, np.isnan(numbers).sum(axis=1).tolist(), strict=True)))
        checked = [(i, name) for i, name in enumerate(names) if name in self.ranges]
        if not checked:
            return
        low, high = np.array([self.ranges[name] for _, name in checked]).T
        values = numbers[[i for i, _ in checked]]
        with np.errstate(invalid="ignore"):
            beyond = ((values < low[:, None]) | (values > high[:, None])).sum(axis=1)
        outside.update(dict(zip((name for _, name in checked), beyond.tolist(), strict=True)))

    def _predicted(self, predictions: list[Any]) -> dict[str, int]:
        if self.deciles is not None:
            buckets = np.searchsorted(np.asarray(self.deciles), np.asarray(predictions, float))
            return dict(Counter(f"decile_{bucket + 1}" for bucket in buckets.tolist()))
        try:  # NumPy counts numbers and text alike, much faster than a Counter of each row
            values, counts = np.unique(np.asarray(predictions), return_counts=True)
        except (TypeError, ValueError):  # values NumPy cannot compare with each other
            return dict(Counter(map(str, predictions)))
        return dict(zip(map(str, values.tolist()), counts.tolist(), strict=True))
