"""Feature preprocessing: imputation, scaling, one-hot encoding, date parts, text sizes, and
the team's own features (:func:`team_features`).

Everything here is a step of the one scikit-learn pipeline the train stage fits and saves, so
a feature computed here is computed the same way wherever the model runs: the service, batch
scoring, Spark scoring and the monitoring job's scoring never see it as a separate step.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from .schema import DataSchema, DataValidationError, category_text, parse_dates

# The parts of a date column the model sees (pandas' ``Series.dt`` names), in UTC.
DATE_PARTS = ("year", "month", "day", "dayofweek", "dayofyear")


class _Stateless(TransformerMixin, BaseEstimator):  # type: ignore[misc]
    """A transformer that learns only its input column names (for feature names)."""

    def fit(self, frame: pd.DataFrame, _: Any = None) -> _Stateless:
        self.columns_ = [str(name) for name in frame.columns]
        return self

    def get_feature_names_out(self, input_features: Any = None) -> np.ndarray:
        return np.asarray(self.output_names(), dtype=object)

    def output_names(self) -> list[str]:
        raise NotImplementedError


class CategoryText(_Stateless):
    """Categorical columns a reader typed as numbers or booleans (codes 1..5, 7.0 beside a gap)
    as the text of each code (``category_text``): the model learns and scores categories as
    text however a file typed them, and the imputer's text fill suits every column."""

    def transform(self, frame: pd.DataFrame) -> pd.DataFrame:
        typed = {name: frame[name] for name in frame.columns if frame[name].dtype.kind in "biuf"}
        if not typed:
            return frame
        return frame.assign(**{name: category_text(values) for name, values in typed.items()})

    def output_names(self) -> list[str]:
        return self.columns_


class DateParts(_Stateless):
    """Each ISO 8601 date column as its :data:`DATE_PARTS`; a missing date has missing parts.

    A value that is not a date raises :class:`DataValidationError` naming the column (the
    service answers 422 with it) rather than being scored as missing.
    """

    def transform(self, frame: pd.DataFrame) -> pd.DataFrame:
        parts = {}
        for name in self.columns_:
            when = parse_dates(frame[name])
            if (bad := when.isna() & frame[name].notna()).any():
                examples = ", ".join(repr(value) for value in frame[name][bad].head(3))
                raise DataValidationError(
                    [f"column {name!r}: not ISO 8601 dates (2024-01-31T08:00); e.g. {examples}"]
                )
            for part in DATE_PARTS:
                parts[f"{name}_{part}"] = getattr(when.dt, part).astype("float64")
        return pd.DataFrame(parts, index=frame.index)

    def output_names(self) -> list[str]:
        return [f"{name}_{part}" for name in self.columns_ for part in DATE_PARTS]


class TextSize(_Stateless):
    """Each free-text column as its length in characters and in words (missing text: 0).

    A start that needs no vocabulary; words themselves (TF-IDF, embeddings) are a team
    feature to add in :func:`team_features`.
    """

    def transform(self, frame: pd.DataFrame) -> pd.DataFrame:
        sizes = {}
        for name in self.columns_:
            text = frame[name].astype("str").where(frame[name].notna(), "")
            sizes[f"{name}_chars"] = text.str.len().astype("float64")
            sizes[f"{name}_words"] = text.str.count(r"\S+").astype("float64")
        return pd.DataFrame(sizes, index=frame.index)

    def output_names(self) -> list[str]:
        return [f"{name}_{size}" for name in self.columns_ for size in ("chars", "words")]


class Ratio(_Stateless):
    """``numerator / denominator`` of two numeric columns; missing where the denominator is 0.

    An example of a team feature: see :func:`team_features`.
    """

    def __init__(self, numerator: str = "", denominator: str = "") -> None:
        self.numerator = numerator
        self.denominator = denominator

    def transform(self, frame: pd.DataFrame) -> pd.DataFrame:
        top = pd.to_numeric(frame[self.numerator], errors="coerce").astype("float64")
        bottom = pd.to_numeric(frame[self.denominator], errors="coerce").astype("float64")
        return pd.DataFrame({self.output_names()[0]: top / bottom.replace(0.0, np.nan)})

    def output_names(self) -> list[str]:
        return [f"{self.numerator}_per_{self.denominator}"]


def team_features(schema: DataSchema) -> list[tuple[str, Any, list[str]]]:
    """The team's own features: ``(name, transformer, input columns)`` entries.

    The extension point of the pipeline. Each transformer gets a DataFrame of its input
    columns (raw values, as the request or the file holds them) and returns numeric columns,
    which are imputed and scaled like any numeric feature, then reach the model next to the
    schema's features. Input columns must be features in ``data/schema.yaml``. For example::

        return [("income_per_age", Ratio("income", "age"), ["income", "age"])]

    The project's tests train on small tables of their own (``tests/data``): return an entry
    only when ``schema`` has its inputs (``if {"income", "age"} <= set(schema.feature_names)``),
    or those tests fail on the missing columns.

    A transformer class of your own goes in this module and its name in
    ``io/model_loader.py``'s ``TRUSTED_TYPES`` (the service loads models without pickle).
    See docs: "Your own features".
    """
    return []


def observed_median(values: np.ndarray) -> float:
    """A numeric column's fill for missing values: the median of its observed ``values``, or
    0 when it has none (an empty column is kept, as ``keep_empty_features`` does).

    The same value as ``SimpleImputer(strategy="median")``, which sorts the whole table as a
    masked array to find it; ``np.median`` selects it from the observed values of one column,
    so at millions of rows imputation stops being most of preprocessing's fit (docs: "Large
    data", train).
    """
    return float(np.median(values)) if values.size else 0.0


def _numeric() -> Pipeline:
    """Median imputation and scaling (the compiled path of the service reads these names)."""
    return Pipeline(
        [
            ("impute", SimpleImputer(strategy=observed_median, keep_empty_features=True)),
            ("scale", StandardScaler()),
        ]
    )


def build_preprocessor(schema: DataSchema) -> ColumnTransformer:
    """Impute and scale numeric columns; impute and one-hot encode categorical ones; date
    parts, text sizes and the team's features, imputed and scaled as numeric columns.

    Unknown categories at prediction time are encoded as all zeros instead of failing, and
    rare categories (under 1% of rows) share one column, so a new value never breaks serving.
    Date and text steps exist only when the schema has such columns, so a table of numbers
    and categories keeps the plain layout the service's compiled path reads.
    """
    categorical = Pipeline(
        [
            ("text", CategoryText()),
            (
                "impute",
                SimpleImputer(
                    strategy="constant", fill_value="__missing__", keep_empty_features=True
                ),
            ),
            (
                "encode",
                OneHotEncoder(
                    handle_unknown="infrequent_if_exist",
                    min_frequency=0.01,
                    sparse_output=False,
                ),
            ),
        ]
    )
    derived: list[tuple[str, Any, list[str]]] = []
    if schema.datetime_features:
        derived.append(("dates", DateParts(), schema.datetime_features))
    if schema.text_features:
        derived.append(("text", TextSize(), schema.text_features))
    for name, step, columns in team_features(schema):
        missing = sorted(set(columns) - set(schema.feature_names))
        if missing:
            raise ValueError(
                f"team feature {name!r}: input column(s) {missing} are not features of the "
                "schema (data/schema.yaml)"
            )
        derived.append((name, step, columns))
    return ColumnTransformer(
        [
            ("numeric", _numeric(), schema.numeric_features),
            ("categorical", categorical, schema.categorical_features),
            *[
                (name, Pipeline([("derive", step), *_numeric().steps]), columns)
                for name, step, columns in derived
            ],
        ],
        remainder="drop",
        verbose_feature_names_out=False,
    )
