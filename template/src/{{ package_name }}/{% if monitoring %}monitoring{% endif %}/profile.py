"""The reference profile: a sample of the training features, the columns the model derives from
them, and predictions, plus their summary.

Drift is measured against this profile. It is a DVC output of the ``reference`` stage, so it
always matches the model trained on the same data.
"""

from __future__ import annotations

import math
from collections.abc import Collection
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..config import prediction_column
from ..core.features import DATE_PARTS, DateParts
from ..core.schema import DataSchema, category_text
from ..engine import CHALLENGER
from ..io.data import read_json, read_table, write_json, write_table

SAMPLE_FILE = "sample.parquet"
SUMMARY_FILE = "summary.json"


@dataclass(frozen=True)
class Reference:
    """The reference sample (features, target, predictions) and its per-column summary."""

    sample: pd.DataFrame
    summary: dict[str, Any]

    @property
    def numeric(self) -> list[str]:
        return list(self.summary["numeric"])

    @property
    def categorical(self) -> list[str]:
        return list(self.summary["categorical"])

    @property
    def derived(self) -> dict[str, list[str]]:
        """Each derived column the sample holds, with the features it is made from."""
        return dict(self.summary.get("derived", {}))  # none in a profile made before 0.6.0

    @property
    def prediction_type(self) -> str:
        return str(self.summary["prediction_type"])

    @property
    def predicted_column(self) -> str:
        """The predictions' column, here and in the rows compared with it: ``prediction``, or
        ``model_prediction`` beside a feature of that name (``config.prediction_column``)."""
        return prediction_column(self.summary["features"])

    @property
    def challenger_column(self) -> str:
        """The column of the challenger's predictions in the rows compared with the sample."""
        return prediction_column(self.summary["features"], CHALLENGER)


@dataclass(frozen=True)
class Derived:
    """Derived columns of some rows (unscaled) and the features each is made from."""

    values: pd.DataFrame
    sources: dict[str, list[str]] = field(default_factory=dict)


def derive(model: Any, features: pd.DataFrame, date_parts: Collection[str] = DATE_PARTS) -> Derived:
    """The columns the model derives from ``features`` (date parts, text sizes, the team's
    features), computed by the model's own fitted steps, before imputation and scaling.

    The steps are read from the saved pipeline rather than rebuilt from ``core/features.py``:
    a profile of a model trained before a feature changed still matches that model. Of a date,
    only ``date_parts`` are kept. A model without a ``preprocess`` step derives nothing.
    """
    preprocess = getattr(model, "named_steps", {}).get("preprocess")
    values, sources = [], {}
    for _, steps, columns in getattr(preprocess, "transformers_", []):
        step = getattr(steps, "named_steps", {}).get("derive")
        if step is None:  # numeric and categorical features are tested as themselves
            continue
        made = pd.DataFrame(
            np.asarray(step.transform(features[columns]), dtype="float64"),
            columns=[str(name) for name in step.get_feature_names_out()],
            index=features.index,
        )
        if isinstance(step, DateParts):
            kept = [part for part in DATE_PARTS if part in date_parts]
            made = made[[f"{column}_{part}" for column in columns for part in kept]]
        # A derived column named like a feature would hide it: the feature is tested already.
        made = made.drop(columns=[name for name in made.columns if name in features.columns])
        values.append(made)
        sources.update({str(name): list(columns) for name in made.columns})
    return Derived(pd.concat([pd.DataFrame(index=features.index), *values], axis=1), sources)


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
                # 7 and 7.0 (integers beside a gap read as floats) are one category
                for key, value in category_text(sample[name].dropna())
                .value_counts(normalize=True)
                .items()
            },
            "missing": float(sample[name].isna().mean()),
        }
        for name in schema.categorical_features
    }
    predictions = sample[prediction_column(schema.feature_names)]
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
    model: Any = None,
) -> Reference:
    """Keep at most ``rows`` training rows: features, target, the model's predictions and,
    given the ``model``, the columns it derives (all of a date's parts: ``monitor`` picks)."""
    columns = [*schema.feature_names, schema.target.name]
    sample = train[columns].assign(**{prediction_column(schema.feature_names): list(predictions)})
    if len(sample) > rows:
        sample = sample.sample(n=rows, random_state=seed)
    sample = sample.reset_index(drop=True)
    derived = derive(model, sample[schema.feature_names])
    sample = pd.concat([sample, derived.values], axis=1)
    summary = summarize(sample, schema, task)
    return Reference(sample=sample, summary={**summary, "derived": derived.sources})


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
