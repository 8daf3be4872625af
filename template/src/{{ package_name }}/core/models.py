"""Estimators by name and task, wrapped with preprocessing into one scikit-learn Pipeline."""

from __future__ import annotations

import importlib
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator
from sklearn.dummy import DummyClassifier, DummyRegressor
from sklearn.ensemble import (
    HistGradientBoostingClassifier,
    HistGradientBoostingRegressor,
    RandomForestClassifier,
    RandomForestRegressor,
)
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.pipeline import Pipeline

from ..config import LIBRARY_KINDS, ModelKind, Task
from .features import build_preprocessor
from .native_params import ignored_hyperparameters
from .schema import DataSchema

ESTIMATORS: dict[Task, dict[ModelKind, type[BaseEstimator]]] = {
    "classification": {
        "linear": LogisticRegression,
        "random_forest": RandomForestClassifier,
        "hist_gradient_boosting": HistGradientBoostingClassifier,
    },
    "regression": {
        "linear": Ridge,
        "random_forest": RandomForestRegressor,
        "hist_gradient_boosting": HistGradientBoostingRegressor,
    },
}

# Gradient-boosting libraries, optional installs (config.LIBRARY_KINDS): imported only when
# params.yaml names them. XGBoost's classifier accepts only labels 0..n-1, so it is wrapped.
LIBRARY_ESTIMATORS: dict[Task, dict[ModelKind, str]] = {
    "classification": {
        "lightgbm": "lightgbm:LGBMClassifier",
        "xgboost": f"{__package__}.boosting:XGBLabelClassifier",
    },
    "regression": {"lightgbm": "lightgbm:LGBMRegressor", "xgboost": "xgboost:XGBRegressor"},
}

# Estimators whose fit draws random numbers take the pipeline seed.
SEEDED: set[ModelKind] = {"random_forest", "hist_gradient_boosting", "lightgbm", "xgboost"}


def estimator_class(task: Task, kind: ModelKind) -> type[BaseEstimator]:
    """The estimator class of ``kind`` for ``task``; a library that is not installed is named
    with the command that installs it."""
    if kind in ESTIMATORS[task]:
        return ESTIMATORS[task][kind]
    module, _, name = LIBRARY_ESTIMATORS[task][kind].partition(":")
    try:
        found: type[BaseEstimator] = getattr(importlib.import_module(module), name)
    except ImportError as error:
        raise ValueError(
            f"train.model is {kind!r} but {error.name} is not installed: run 'make setup' "
            f"(it installs the extra params.yaml names) or 'uv sync --inexact --extra {kind}'"
        ) from None
    return found


def build_estimator(
    task: Task, kind: ModelKind, hyperparameters: dict[str, Any], seed: int
) -> BaseEstimator:
    """Instantiate the estimator ``kind`` for ``task`` with ``hyperparameters``."""
    options = dict(hyperparameters)
    if kind in SEEDED or (task == "classification" and kind == "linear"):
        options.setdefault("random_state", seed)
    try:
        estimator = estimator_class(task, kind)(**options)
    except TypeError as error:
        raise ValueError(f"invalid hyperparameters for {kind} ({task}): {error}") from error
    # scikit-learn's estimators refuse an unknown keyword above; the libraries take any.
    ignored = ignored_hyperparameters(kind, estimator) if kind in LIBRARY_KINDS else []
    if ignored:
        raise ValueError(
            f"invalid hyperparameters for {kind} ({task}): {kind} would ignore "
            f"{', '.join(map(repr, ignored))} and train with its default (a misspelt name? "
            f"the library's own names and aliases are accepted)"
        )
    return estimator


def build_pipeline(
    schema: DataSchema, task: Task, kind: ModelKind, hyperparameters: dict[str, Any], seed: int
) -> Pipeline:
    """Preprocessing followed by the chosen estimator."""
    return Pipeline(
        [
            ("preprocess", build_preprocessor(schema)),
            ("model", build_estimator(task, kind, hyperparameters, seed)),
        ]
    )


def build_baseline(task: Task) -> BaseEstimator:
    """The trivial model every candidate must beat: class priors, or the training mean."""
    if task == "classification":
        return DummyClassifier(strategy="prior")
    return DummyRegressor(strategy="mean")


def fit_baseline(task: Task, labels: pd.Series) -> BaseEstimator:
    """:func:`build_baseline` fitted on the training ``labels`` (it ignores the features).

    A classifier's priors are fitted on each class once, weighted by its count: the same
    priors as one row per label, without sorting every label (scikit-learn sorts to find
    the classes, which at millions of text labels takes seconds).
    """
    baseline = build_baseline(task)
    if task != "classification":
        return baseline.fit(labels.to_frame(), labels)
    counts = labels.value_counts()
    counts = counts[counts > 0]  # a categorical column counts its unused categories too
    classes = counts.index.to_series(name=labels.name)
    return baseline.fit(classes.to_frame(), classes, sample_weight=counts.to_numpy())


def nonfinite_rows(predictions: Any) -> np.ndarray:
    """Positions of NaN or infinite predictions (an overflow in a feature or in the model):
    the service and batch scoring refuse them rather than pass them on as numbers."""
    values = np.asarray(predictions)
    if values.dtype.kind not in "fc":  # class labels, integers: always finite
        return np.empty(0, dtype=np.intp)
    return np.flatnonzero(~np.isfinite(values))
