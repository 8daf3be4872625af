"""Quality metrics and the data behind the evaluation plots.

scikit-learn is imported inside the functions that use it: the register stage needs only
:func:`improvement`, and does not wait for scikit-learn to import.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from typing import Any, cast

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


# Classification metrics computed from probabilities; the others need only predicted labels.
PROBABILITY_METRICS = frozenset({"roc_auc", "log_loss"})


def classification_metrics(
    y_true: pd.Series,
    y_pred: np.ndarray | None,
    proba: np.ndarray | None,
    classes: np.ndarray,
    names: Collection[str] | None = None,
) -> dict[str, float]:
    """Label and probability metrics (``names`` only, when given: then ``y_pred`` or ``proba``
    may be ``None`` if none of them needs it); ROC AUC is one-vs-rest, weighted, for many
    classes."""
    from sklearn import metrics as skm

    # Labels as their positions in ``classes`` (-1: a label the model never saw): the metrics
    # are the same, and scikit-learn then sorts integers where it sorted strings, the bulk of
    # the time on a large test set.
    y_true = pd.Series(pd.Categorical(y_true, categories=classes).codes)
    if y_pred is not None:
        y_pred = pd.Categorical(y_pred, categories=classes).codes
    labels = np.arange(len(classes))

    def roc_auc() -> float:
        if len(classes) == 2:
            return float(skm.roc_auc_score(y_true == 1, proba[:, 1]))  # type: ignore[index]
        return float(
            skm.roc_auc_score(y_true, proba, multi_class="ovr", average="weighted", labels=labels)
        )

    scorers: dict[str, Callable[[], float]] = {
        "accuracy": lambda: skm.accuracy_score(y_true, y_pred),
        "balanced_accuracy": lambda: skm.balanced_accuracy_score(y_true, y_pred),
        "f1_macro": lambda: skm.f1_score(y_true, y_pred, average="macro", zero_division=0),
        "precision_macro": lambda: skm.precision_score(
            y_true, y_pred, average="macro", zero_division=0
        ),
        "recall_macro": lambda: skm.recall_score(y_true, y_pred, average="macro", zero_division=0),
        "log_loss": lambda: skm.log_loss(y_true, proba, labels=labels),
        "roc_auc": roc_auc,
    }
    return {name: round(float(scorers[name]()), 6) for name in names or scorers}


def regression_metrics(y_true: pd.Series, y_pred: np.ndarray) -> dict[str, float]:
    """Error metrics in the target's unit, plus R²."""
    from sklearn import metrics as skm

    result = {
        "r2": skm.r2_score(y_true, y_pred),
        "rmse": skm.root_mean_squared_error(y_true, y_pred),
        "mae": skm.mean_absolute_error(y_true, y_pred),
    }
    return {name: round(float(value), 6) for name, value in result.items()}


# Rows on which labels read off the probabilities are checked against the model's ``predict``.
LABEL_CHECK_ROWS = 1_000
# Rows per call of the model when scoring a table. Tree ensembles walk each tree over every row
# they are given: a block of rows stays in the CPU's cache from one tree to the next, where the
# rows of a whole large test set are read from memory again for every tree (docs: "Large data",
# evaluate). Also the default block of batch scoring (`predict --chunk-size`).
SCORING_BLOCK_ROWS = 20_000


def in_blocks(method: Callable[[pd.DataFrame], Any], X: pd.DataFrame) -> np.ndarray:
    """``method(X)`` (a model's ``predict`` or ``predict_proba``) called on blocks of at most
    :data:`SCORING_BLOCK_ROWS` rows, its results joined in order."""
    if len(X) <= SCORING_BLOCK_ROWS:
        return np.asarray(method(X))
    blocks = range(0, len(X), SCORING_BLOCK_ROWS)
    return np.concatenate([np.asarray(method(X.iloc[i : i + SCORING_BLOCK_ROWS])) for i in blocks])


def predictions(task: Task, model: Any, X: pd.DataFrame) -> tuple[np.ndarray, np.ndarray | None]:
    """The model's predictions on ``X`` and, for a classifier, its probabilities, scored in
    blocks of rows (:func:`in_blocks`).

    A classifier's labels are the most probable classes when its ``predict`` says so on the
    first :data:`LABEL_CHECK_ROWS` rows, so the model runs once over ``X`` rather than twice;
    a model that decides otherwise (a tuned threshold, say) is asked for all its labels.
    """
    if task == "regression":
        return in_blocks(model.predict, X), None
    proba = in_blocks(model.predict_proba, X)
    labels = np.asarray(model.classes_)[proba.argmax(axis=1)]
    head = X.iloc[:LABEL_CHECK_ROWS]
    if not np.array_equal(np.asarray(model.predict(head)), labels[: len(head)]):
        labels = in_blocks(model.predict, X)
    return labels, proba


def model_metrics(
    task: Task, model: Any, X: pd.DataFrame, y: pd.Series
) -> tuple[dict[str, float], np.ndarray, np.ndarray | None]:
    """Metrics of a fitted ``model`` on ``X, y`` with its predictions (and probabilities)."""
    y_pred, proba = predictions(task, model, X)
    if proba is not None:
        return classification_metrics(y, y_pred, proba, model.classes_), y_pred, proba
    return regression_metrics(y, y_pred), y_pred, None


def metric_method(task: Task, model: Any, metric: str) -> Callable[[pd.DataFrame], Any]:
    """The method of ``model`` whose output ``metric`` is computed from: ``predict_proba`` for
    a classifier's probability metric, else ``predict``."""
    if task == "classification" and metric in PROBABILITY_METRICS:
        return cast("Callable[[pd.DataFrame], Any]", model.predict_proba)
    return cast("Callable[[pd.DataFrame], Any]", model.predict)


def metric_of_output(
    task: Task, y: pd.Series, output: np.ndarray, classes: np.ndarray | None, metric: str
) -> float:
    """``metric`` of the output of :func:`metric_method` on rows whose labels are ``y``
    (``classes``: a classifier's ``classes_``)."""
    if task == "regression":
        return regression_metrics(y, output)[metric]
    if classes is None:
        raise ValueError(f"{metric} of a classifier needs its classes_")
    if metric in PROBABILITY_METRICS:
        return classification_metrics(y, None, output, classes, [metric])[metric]
    return classification_metrics(y, output, None, classes, [metric])[metric]


def metric_of_outputs(
    task: Task, y: pd.Series, outputs: list[np.ndarray], classes: np.ndarray | None, metric: str
) -> list[float]:
    """:func:`metric_of_output` of each of ``outputs``, all on the rows whose labels are ``y``.

    A binary classifier's ROC AUC of several outputs is one scikit-learn call, in its multilabel
    form (a column per output, each scored as a binary problem of its own): the same values as
    a call per output, without the input checks of each call (docs: "Large data", permutation
    importance)."""
    if metric != "roc_auc" or classes is None or len(classes) != 2 or len(outputs) < 2:
        return [metric_of_output(task, y, output, classes, metric) for output in outputs]
    from sklearn import metrics as skm

    positive = pd.Categorical(y, categories=classes).codes == 1
    truth = np.repeat(positive[:, None], len(outputs), axis=1)
    scores = np.column_stack([output[:, 1] for output in outputs])
    return [round(float(value), 6) for value in skm.roc_auc_score(truth, scores, average=None)]


def metric_score(task: Task, model: Any, X: pd.DataFrame, y: pd.Series, metric: str) -> float:
    """One metric of a fitted ``model`` on ``X, y``, from only the predictions it needs."""
    output = in_blocks(metric_method(task, model, metric), X)
    return metric_of_output(task, y, output, getattr(model, "classes_", None), metric)


def thin(curve: pd.DataFrame, points: int) -> pd.DataFrame:
    """At most ``points`` rows of ``curve``, evenly spaced along it, its first and last kept:
    a curve of one point per test row is as heavy to draw as the test set, not more legible."""
    if len(curve) <= points:
        return curve
    kept = np.unique(np.linspace(0, len(curve) - 1, max(points, 2)).round().astype(int))
    return curve.iloc[kept].reset_index(drop=True)


def curve_points(
    y_true: pd.Series, proba: np.ndarray, classes: np.ndarray, points: int
) -> dict[str, pd.DataFrame]:
    """ROC and precision-recall points (micro-averaged one-vs-rest for many classes), each
    curve thinned to at most ``points`` points."""
    from sklearn import metrics as skm

    if len(classes) == 2:
        positive = (y_true == classes[1]).to_numpy()
        scores = proba[:, 1]
    else:
        positive = (y_true.to_numpy()[:, None] == classes[None, :]).ravel()
        scores = proba.ravel()
    fpr, tpr, _ = skm.roc_curve(positive, scores)
    precision, recall, _ = skm.precision_recall_curve(positive, scores)
    roc = pd.DataFrame({"fpr": fpr.round(6), "tpr": tpr.round(6)})
    pr = pd.DataFrame({"recall": recall.round(6), "precision": precision.round(6)})
    return {"roc": thin(roc, points), "precision_recall": thin(pr, points)}


def confusion_counts(actual: pd.Series, predicted: np.ndarray) -> pd.DataFrame:
    """One row per (actual, predicted) pair that occurs, with its ``count`` of test rows."""
    pairs = pd.DataFrame({"actual": actual.astype(str).to_numpy(), "predicted": predicted})
    pairs["predicted"] = pairs["predicted"].astype(str)
    counts = pairs.value_counts(sort=False).rename("count").reset_index()
    return counts.sort_values(["actual", "predicted"], ignore_index=True)
