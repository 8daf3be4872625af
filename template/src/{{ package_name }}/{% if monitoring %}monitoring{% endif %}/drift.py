"""Two-sample drift tests per column, each paired with an effect size.

A column drifts when its test rejects "same distribution" (p-value below the threshold) *and*
the effect is large enough to matter: with many rows a test flags shifts too small to care
about, with few rows an effect size alone is noisy. Numeric columns: Kolmogorov-Smirnov, and the
Wasserstein distance in reference standard deviations; categorical columns: chi-square, and the
Jensen-Shannon distance between category frequencies (0 = identical, 1 = disjoint).
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import numpy.typing as npt
import pandas as pd
from pydantic import BaseModel, Field
from scipy import stats
from scipy.spatial.distance import jensenshannon

Kind = Literal["numeric", "categorical"]
Numbers = npt.NDArray[np.float64]
# An effect too large for a float is reported as the largest one (JSON has no infinity).
LARGEST = float(np.finfo(np.float64).max)


class ColumnDrift(BaseModel):
    """The outcome of one column's drift test."""

    column: str
    kind: Kind
    test: str
    statistic: float | None
    p_value: float | None
    effect: float | None
    drifted: bool
    reference_rows: int
    current_rows: int
    # A column the model derives (a date part, a text size, a team feature): its features.
    derived_from: list[str] = Field(default_factory=list)

    @property
    def label(self) -> str:
        """The column's name, and for a derived column the features it is made from."""
        if not self.derived_from:
            return self.column
        return f"{self.column} (from {', '.join(self.derived_from)})"


def finite_numbers(values: pd.Series) -> Numbers:
    """The values that are finite numbers, as floats (text, missing and infinite left out)."""
    numbers = pd.to_numeric(values, errors="coerce").to_numpy(dtype="float64", na_value=np.nan)
    finite: Numbers = numbers[np.isfinite(numbers)]
    return finite


def numeric_drift(ref: Numbers, cur: Numbers) -> tuple[float, float, float]:
    """KS statistic, p-value and the Wasserstein distance in reference standard deviations.

    The service accepts any finite float: two values near the limit (1.8e308) are further
    apart than a float can hold, and their squares overflow. The distance and the deviation
    are computed on values scaled by a power of two (exact), which keeps both finite; their
    ratio, the effect, does not depend on the scale.
    """
    result = stats.ks_2samp(ref, cur)
    _, exponent = np.frexp(max(np.abs(ref).max(), np.abs(cur).max()))
    ref, cur = np.ldexp(ref, -exponent), np.ldexp(cur, -exponent)
    distance = float(stats.wasserstein_distance(ref, cur))
    scale = float(np.std(ref))
    with np.errstate(over="ignore"):
        # A constant reference column (or one the scaling rounds to a constant): raw units.
        effect = distance / scale if scale > 0 else float(np.ldexp(distance, exponent))
    return float(result.statistic), float(result.pvalue), min(effect, LARGEST)


def class_names(values: pd.Series) -> pd.Series:
    """Categories (and class labels) as text, a whole number as an integer: "1" from a CSV, 1
    from JSON and 1.0 from a column that also holds missing values (which pandas makes float)
    are one category."""
    as_text = values.astype(object)  # a categorical dtype would keep its unused categories
    return as_text.map(lambda v: str(int(v)) if isinstance(v, float) and v.is_integer() else str(v))


def categorical_drift(reference: pd.Series, current: pd.Series) -> tuple[float, float, float]:
    """Chi-square statistic, p-value and the Jensen-Shannon distance of the frequencies."""
    ref_counts = class_names(reference.dropna()).value_counts()
    cur_counts = class_names(current.dropna()).value_counts()
    categories = sorted(set(ref_counts.index) | set(cur_counts.index))
    table = np.array(
        [
            [ref_counts.get(name, 0) for name in categories],
            [cur_counts.get(name, 0) for name in categories],
        ],
        dtype="float64",
    )
    if len(categories) < 2:
        return 0.0, 1.0, 0.0  # a single category on both sides: nothing can have moved
    statistic, p_value, _, _ = stats.chi2_contingency(table)
    effect = float(jensenshannon(table[0] / table[0].sum(), table[1] / table[1].sum(), base=2))
    return float(statistic), float(p_value), effect


def column_drift(
    column: str,
    kind: Kind,
    reference: pd.Series,
    current: pd.Series,
    p_value: float,
    min_effect: float,
) -> ColumnDrift:
    """Test one column; too few values on either side (numeric: finite numbers, categorical:
    not missing) is reported, not drifted."""
    if kind == "numeric":
        ref, cur = finite_numbers(reference), finite_numbers(current)
        ref_rows, cur_rows = len(ref), len(cur)
    else:
        ref_rows, cur_rows = int(reference.notna().sum()), int(current.notna().sum())
    test = "ks" if kind == "numeric" else "chi2"
    if min(ref_rows, cur_rows) < 2:
        return ColumnDrift(
            column=column,
            kind=kind,
            test=test,
            statistic=None,
            p_value=None,
            effect=None,
            drifted=False,
            reference_rows=ref_rows,
            current_rows=cur_rows,
        )
    if kind == "numeric":
        statistic, p, effect = numeric_drift(ref, cur)
    else:
        statistic, p, effect = categorical_drift(reference, current)
    return ColumnDrift(
        column=column,
        kind=kind,
        test=test,
        statistic=round(statistic, 6),
        p_value=float(f"{p:.6g}"),
        effect=round(effect, 6),
        drifted=p < p_value and effect >= min_effect,
        reference_rows=ref_rows,
        current_rows=cur_rows,
    )
