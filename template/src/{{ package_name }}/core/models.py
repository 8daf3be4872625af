"""Estimators by name and task, wrapped with preprocessing into one scikit-learn Pipeline."""

from __future__ import annotations

from typing import Any

import numpy as np
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

from ..config import ModelKind, Task
from .features import build_preprocessor
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

# Estimators whose fit draws random numbers take the pipeline seed.
SEEDED: set[ModelKind] = {"random_forest", "hist_gradient_boosting"}


def build_estimator(
    task: Task, kind: ModelKind, hyperparameters: dict[str, Any], seed: int
) -> BaseEstimator:
    """Instantiate the estimator ``kind`` for ``task`` with ``hyperparameters``."""
    estimator_class = ESTIMATORS[task][kind]
    options = dict(hyperparameters)
    if kind in SEEDED or (task == "classification" and kind == "linear"):
        options.setdefault("random_state", seed)
    try:
        return estimator_class(**options)
    except TypeError as error:
        raise ValueError(f"invalid hyperparameters for {kind} ({task}): {error}") from error


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


def nonfinite_rows(predictions: Any) -> np.ndarray:
    """Positions of NaN or infinite predictions (an overflow in a feature or in the model):
    the service and batch scoring refuse them rather than pass them on as numbers."""
    values = np.asarray(predictions)
    if values.dtype.kind not in "fc":  # class labels, integers: always finite
        return np.empty(0, dtype=np.intp)
    return np.flatnonzero(~np.isfinite(values))
