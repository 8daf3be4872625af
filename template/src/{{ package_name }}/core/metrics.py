"""Quality metrics and the data behind the evaluation plots.

scikit-learn is imported inside the functions that use it: the register stage needs only
:func:`improvement`, and does not wait for scikit-learn to import.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from ..config import Task

# Direction of each metric, so gates can compare "better" without knowing the task.
GREATER_IS_BETTER: dict[str, bool] = {
    "accuracy": True,
    "balanced_accuracy": True,
    "f1_macro": True,
    "precision_macro": True,
    "recall_macro": True,
    "roc_auc": True,
    "log_loss": False,
    "r2": True,
    "rmse": False,
    "mae": False,
}


def improvement(metric: str, candidate: float, reference: float) -> float:
    """How much better ``candidate`` is than ``reference`` (negative when worse)."""
    if metric not in GREATER_IS_BETTER:
        raise ValueError(f"unknown metric {metric!r}; known: {sorted(GREATER_IS_BETTER)}")
    delta = candidate - reference
    return delta if GREATER_IS_BETTER[metric] else -delta


def classification_metrics(
    y_true: pd.Series, y_pred: np.ndarray, proba: np.ndarray, classes: np.ndarray
) -> dict[str, float]:
    """Label and probability metrics; ROC AUC is one-vs-rest, weighted, for many classes."""
    from sklearn import metrics as skm

    result = {
        "accuracy": skm.accuracy_score(y_true, y_pred),
        "balanced_accuracy": skm.balanced_accuracy_score(y_true, y_pred),
        "f1_macro": skm.f1_score(y_true, y_pred, average="macro", zero_division=0),
        "precision_macro": skm.precision_score(y_true, y_pred, average="macro", zero_division=0),
        "recall_macro": skm.recall_score(y_true, y_pred, average="macro", zero_division=0),
        "log_loss": skm.log_loss(y_true, proba, labels=classes),
    }
    if len(classes) == 2:
        result["roc_auc"] = skm.roc_auc_score(y_true == classes[1], proba[:, 1])
    else:
        result["roc_auc"] = skm.roc_auc_score(
            y_true, proba, multi_class="ovr", average="weighted", labels=classes
        )
    return {name: round(float(value), 6) for name, value in result.items()}


def regression_metrics(y_true: pd.Series, y_pred: np.ndarray) -> dict[str, float]:
    """Error metrics in the target's unit, plus R²."""
    from sklearn import metrics as skm

    result = {
        "r2": skm.r2_score(y_true, y_pred),
        "rmse": skm.root_mean_squared_error(y_true, y_pred),
        "mae": skm.mean_absolute_error(y_true, y_pred),
    }
    return {name: round(float(value), 6) for name, value in result.items()}


def model_metrics(
    task: Task, model: Any, X: pd.DataFrame, y: pd.Series
) -> tuple[dict[str, float], np.ndarray, np.ndarray | None]:
    """Metrics of a fitted ``model`` on ``X, y`` with its predictions (and probabilities)."""
    y_pred = np.asarray(model.predict(X))
    if task == "classification":
        proba = np.asarray(model.predict_proba(X))
        return classification_metrics(y, y_pred, proba, model.classes_), y_pred, proba
    return regression_metrics(y, y_pred), y_pred, None


def curve_points(
    y_true: pd.Series, proba: np.ndarray, classes: np.ndarray
) -> dict[str, pd.DataFrame]:
    """ROC and precision-recall points (micro-averaged one-vs-rest for many classes)."""
    from sklearn import metrics as skm

    if len(classes) == 2:
        positive = (y_true == classes[1]).to_numpy()
        scores = proba[:, 1]
    else:
        positive = (y_true.to_numpy()[:, None] == classes[None, :]).ravel()
        scores = proba.ravel()
    fpr, tpr, _ = skm.roc_curve(positive, scores)
    precision, recall, _ = skm.precision_recall_curve(positive, scores)
    return {
        "roc": pd.DataFrame({"fpr": fpr.round(6), "tpr": tpr.round(6)}),
        "precision_recall": pd.DataFrame(
            {"recall": recall.round(6), "precision": precision.round(6)}
        ),
    }
