"""The reference profile: a sample of the training features and predictions, plus their summary.

Drift is measured against this profile. It is a DVC output of the ``reference`` stage, so it
always matches the model trained on the same data.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..config import PREDICTION
from ..core.schema import DataSchema
from ..io.data import read_json, read_table, write_json, write_table

SAMPLE_FILE = "sample.parquet"
SUMMARY_FILE = "summary.json"


@dataclass(frozen=True)
class Reference:
    """The reference sample (features, target, ``prediction``) and its per-column summary."""

    sample: pd.DataFrame
    summary: dict[str, Any]

    @property
    def numeric(self) -> list[str]:
        return list(self.summary["numeric"])

    @property
    def categorical(self) -> list[str]:
        return list(self.summary["categorical"])

    @property
    def prediction_type(self) -> str:
        return str(self.summary["prediction_type"])


def moments(values: pd.Series) -> tuple[float | None, float | None]:
    """Mean and (sample) standard deviation; ``None`` where there is none, or it passes the
    float limit. Computed on values scaled by a power of two (exact): the plain sums overflow
    for values near the limit (1.8e308), which the service accepts."""
    numbers = pd.to_numeric(values, errors="coerce").to_numpy(dtype="float64", na_value=np.nan)
    numbers = numbers[np.isfinite(numbers)]
    if not len(numbers):
        return None, None
    _, exponent = np.frexp(np.abs(numbers).max())
    scaled = np.ldexp(numbers, -exponent)
    spread = scaled.std(ddof=1) if len(scaled) > 1 else np.nan
    with np.errstate(over="ignore"):
        found = [float(np.ldexp(value, exponent)) for value in (scaled.mean(), spread)]
    mean, std = (value if math.isfinite(value) else None for value in found)
    return mean, std


def _numeric_summary(values: pd.Series) -> dict[str, float | None]:
    mean, std = moments(values)
    return {
        "min": float(values.min()),
        "max": float(values.max()),
        "mean": mean,
        "std": std,
        "missing": float(values.isna().mean()),
    }


def summarize(sample: pd.DataFrame, schema: DataSchema, task: str) -> dict[str, Any]:
    """Ranges, missing shares and category frequencies: what the live checks compare against."""
    numeric = {name: _numeric_summary(sample[name]) for name in schema.numeric_features}
    categorical = {
        name: {
            "frequencies": {
                str(key): float(value)
                for key, value in sample[name].value_counts(normalize=True).items()
            },
            "missing": float(sample[name].isna().mean()),
        }
        for name in schema.categorical_features
    }
    predictions = sample[PREDICTION]
    if task == "classification":
        prediction: dict[str, Any] = {
            "frequencies": {
                str(k): float(v) for k, v in predictions.value_counts(normalize=True).items()
            }
        }
    else:
        deciles = predictions.astype(float).quantile([i / 10 for i in range(11)])
        prediction = {"deciles": [float(v) for v in deciles]}
    return {
        "rows": len(sample),
        "task": task,
        "target": schema.target.name,
        "features": schema.feature_names,
        "numeric": numeric,
        "categorical": categorical,
        "prediction_type": "categorical" if task == "classification" else "numeric",
        "prediction": prediction,
    }


def build_reference(
    train: pd.DataFrame,
    predictions: Any,
    schema: DataSchema,
    task: str,
    rows: int,
    seed: int,
) -> Reference:
    """Keep at most ``rows`` training rows: features, target, and the model's predictions."""
    columns = [*schema.feature_names, schema.target.name]
    sample = train[columns].assign(**{PREDICTION: list(predictions)})
    if len(sample) > rows:
        sample = sample.sample(n=rows, random_state=seed)
    sample = sample.reset_index(drop=True)
    return Reference(sample=sample, summary=summarize(sample, schema, task))


def save_reference(reference: Reference, folder: Path) -> None:
    write_table(reference.sample, folder / SAMPLE_FILE)
    write_json(reference.summary, folder / SUMMARY_FILE)


def load_reference(folder: Path) -> Reference:
    """Read the profile the ``reference`` stage wrote; say how to make it if it is missing."""
    if not (folder / SUMMARY_FILE).is_file():
        raise FileNotFoundError(f"no reference profile in {folder}; run 'make pipeline' first")
    return Reference(
        sample=read_table(folder / SAMPLE_FILE), summary=read_json(folder / SUMMARY_FILE)
    )
