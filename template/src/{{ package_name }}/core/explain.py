"""Why the model predicts what it does: permutation importance, and each row's contributions.

Permutation importance (scikit-learn's definition and shuffles) is the drop in the primary metric
when one column's values are shuffled: model-agnostic, measured on held-out rows, in the metric
the gate judges.

A row's contributions say how much each column moved that row's output. With SHAP installed
(``uv sync --inexact --extra explain``) a tree ensemble is explained by SHAP's TreeExplainer:
exact Shapley values in the model's own units, fast because it walks the trees. Any other model, or
a project without SHAP, gets a model-agnostic estimate: the output minus the mean output over
background rows with that one column taken from the background. It needs nothing but the model,
is exact for additive models (linear ones), and for others it shows each column's effect on its
own, without sharing interactions out as Shapley values do; the two methods' units are said in
the ``method`` column.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from contextlib import nullcontext
from typing import Any

import numpy as np
import pandas as pd

from ..config import Task, prediction_column
from .metrics import (
    GREATER_IS_BETTER,
    SCORING_BLOCK_ROWS,
    in_blocks,
    metric_method,
    metric_of_outputs,
    metric_score,
)

# Shuffles per column: their mean is the importance, their spread its uncertainty.
IMPORTANCE_REPEATS = 5
# Fewer rows than this are shuffled on one thread (docs: "Large data", permutation importance).
THREADED_IMPORTANCE_ROWS = 1_000
# Rows scored per model call by the model-agnostic method (input rows x background rows).
ABLATION_BATCH_ROWS = 20_000
# The columns contributions() puts before the features', in order. A feature of the same name
# keeps it and the added column is model_-prefixed, as in predict's output (config.MODEL_PREFIX).
ADDED_COLUMNS = ("prediction", "output", "method")
ABLATION = "ablation: output change vs background rows"
TREE_SHAP = "shap.TreeExplainer: Shapley values of the raw output"
# Estimators SHAP's TreeExplainer reads (core/models.py's names).
TREE_ESTIMATORS = {
    "RandomForestClassifier",
    "RandomForestRegressor",
    "HistGradientBoostingClassifier",
    "HistGradientBoostingRegressor",
    "LGBMClassifier",
    "LGBMRegressor",
    "XGBClassifier",
    "XGBRegressor",
}


def permutation_importances(
    model: Any,
    frame: pd.DataFrame,
    features: list[str],
    target: str,
    task: Task,
    metric: str,
    seed: int,
) -> pd.DataFrame:
    """Each feature's mean drop in ``metric`` when shuffled in ``frame``, largest first, and its
    spread over the shuffles (``std``).

    The shuffles and the drops are those of scikit-learn's ``permutation_importance`` (the same
    seed gives the same table), but the model is called on many shuffled copies of ``frame``
    stacked, up to a block of rows, rather than once per column and shuffle: each call costs
    the pipeline's fixed work (selecting columns, imputers, encoders) however few rows it is
    given (docs: "Large data", permutation importance).

    The chunks (:func:`copy_chunks`) run on threads, one per usable core, when ``frame`` has
    at least ``THREADED_IMPORTANCE_ROWS`` rows: the model's predictions run outside Python's
    lock (scikit-learn's trees and boosting, NumPy), and a thread shares the fitted model where
    a worker process would need it pickled; each of them runs the model on one OpenMP thread.
    Every column gets the same shuffles whatever the threads, so the table does not depend on
    them."""
    from threadpoolctl import ThreadpoolController

    X, y = frame[features].reset_index(drop=True), frame[target].reset_index(drop=True)
    orders = shuffle_orders(len(X), seed)
    jobs = importance_threads(len(X), len(features))
    # Several scoring threads each run the model on one OpenMP thread: with OMP_NUM_THREADS
    # exported, each would start that many of its own, threads times threads on the cores.
    # The limit holds for the calling thread only, and is undone after each call.
    controller = ThreadpoolController() if jobs > 1 else None
    classes = getattr(model, "classes_", None)

    def score(copies: list[tuple[str, int]]) -> list[float]:
        stacked = shuffled_copies(X, [(column, orders[repeat]) for column, repeat in copies])
        with controller.limit(limits=1, user_api="openmp") if controller else nullcontext():
            output = in_blocks(metric_method(task, model, metric), stacked)
        rows = len(X)
        parts = [output[i * rows : (i + 1) * rows] for i in range(len(copies))]
        return metric_of_outputs(task, y, parts, classes, metric)

    chunks = copy_chunks(features, len(X), jobs)
    reference = metric_score(task, model, X, y, metric)
    if jobs > 1:
        with ThreadPoolExecutor(max_workers=jobs) as pool:
            results = list(pool.map(score, chunks))
    else:
        results = list(map(score, chunks))
    scores = {column: [0.0] * IMPORTANCE_REPEATS for column in features}
    for chunk, values in zip(chunks, results, strict=True):
        for (column, repeat), value in zip(chunk, values, strict=True):
            scores[column][repeat] = value
    return drop_table(metric, reference, scores)


def drop_table(metric: str, reference: float, scores: dict[str, list[float]]) -> pd.DataFrame:
    """Per column, the mean and the spread of ``metric``'s drop from ``reference`` over its
    shuffles' ``scores`` (a rise, for a metric where lower is better), largest first."""
    sign = 1.0 if GREATER_IS_BETTER[metric] else -1.0
    drops = sign * reference - sign * np.array(list(scores.values()))
    table = pd.DataFrame(
        {
            "feature": list(scores),
            "importance": drops.mean(axis=1).round(6),
            "std": drops.std(axis=1).round(6),
        }
    )
    return table.sort_values("importance", ascending=False, ignore_index=True)


def shuffle_orders(rows: int, seed: int) -> list[np.ndarray]:
    """The row orders of the ``IMPORTANCE_REPEATS`` shuffles, the same for every column.

    scikit-learn's ``permutation_importance`` draws one seed from ``seed``, and each column's
    shuffles from a generator of that seed, each shuffling the order again; taken the same way
    here, so that the table is the one scikit-learn gives."""
    generator = np.random.RandomState(np.random.RandomState(seed).randint(2**31))
    step, order, orders = np.arange(rows), np.arange(rows), []
    for _ in range(IMPORTANCE_REPEATS):
        generator.shuffle(step)
        order = order[step]
        orders.append(order)
    return orders


def shuffled_copies(X: pd.DataFrame, copies: list[tuple[str, np.ndarray]]) -> pd.DataFrame:
    """``X`` once per (column, order) of ``copies``, stacked in that order, each copy's column
    taken in its order (its dtype kept: a categorical stays categorical)."""
    rows = len(X)
    unshuffled = np.tile(np.arange(rows), len(copies))
    positions: dict[str, np.ndarray] = {}  # per shuffled column, the row each stacked row takes
    for index, (column, order) in enumerate(copies):
        positions.setdefault(column, unshuffled.copy())[index * rows : (index + 1) * rows] = order
    stacked = X.iloc[unshuffled].reset_index(drop=True)
    for column, taken in positions.items():
        stacked[column] = X[column].iloc[taken].reset_index(drop=True)
    return stacked


def copy_chunks(features: list[str], rows: int, threads: int) -> list[list[tuple[str, int]]]:
    """Every (column, shuffle) of ``features``, in chunks scored one model call each: as many
    copies of ``rows`` rows as fit in ``SCORING_BLOCK_ROWS`` (one, when ``rows`` is more), so
    that a stacked table is never larger than a block or the sample itself, and at least one
    chunk per thread."""
    copies = [(column, repeat) for column in features for repeat in range(IMPORTANCE_REPEATS)]
    per_chunk = max(1, SCORING_BLOCK_ROWS // max(rows, 1))
    count = min(len(copies), max(threads, -(-len(copies) // per_chunk)))
    return [copies[i::count] for i in range(count)]


def importance_threads(rows: int, columns: int) -> int:
    """Threads for permutation importance: the usable cores (joblib counts the CPU quota of a
    container, not the host's cores), at most one per column; one below
    ``THREADED_IMPORTANCE_ROWS`` rows, where Python's own work per call, which holds the lock,
    outweighs the model's."""
    from joblib import cpu_count

    if rows < THREADED_IMPORTANCE_ROWS:
        return 1
    return max(1, min(columns, int(cpu_count())))


def bounded_sample(frame: pd.DataFrame, rows: int, seed: int) -> pd.DataFrame:
    """``frame`` itself when it has at most ``rows`` rows, else a seeded sample of ``rows``."""
    return frame if len(frame) <= rows else frame.sample(n=rows, random_state=seed)


def _explained_class(model: Any, rows: pd.DataFrame) -> np.ndarray | None:
    """Per row, the index of the class the model predicts (None for a regressor)."""
    if not hasattr(model, "predict_proba"):
        return None
    predicted: np.ndarray = np.asarray(model.predict_proba(rows)).argmax(axis=1)
    return predicted


def _output(model: Any, rows: pd.DataFrame, classes: np.ndarray | None) -> np.ndarray:
    if classes is None:
        return np.asarray(model.predict(rows), dtype=float)
    proba = np.asarray(model.predict_proba(rows))
    explained: np.ndarray = proba[np.arange(len(rows)), classes]
    return explained


def ablation_contributions(
    model: Any, rows: pd.DataFrame, background: pd.DataFrame
) -> tuple[np.ndarray, pd.DataFrame]:
    """Per row and column: the output minus its mean with the column from ``background``.

    Returns the outputs explained (the predicted class's probability, or the prediction) and
    the contributions, one column per column of ``rows``. Rows go through in batches, so the
    frames scored (rows x background rows) stay small whatever the input's size.
    """
    step = max(1, ABLATION_BATCH_ROWS // len(background))
    parts = [_ablate(model, rows.iloc[i : i + step], background) for i in range(0, len(rows), step)]
    outputs = np.concatenate([output for output, _ in parts])
    return outputs, pd.concat([values for _, values in parts], ignore_index=True)


def _ablate(
    model: Any, rows: pd.DataFrame, background: pd.DataFrame
) -> tuple[np.ndarray, pd.DataFrame]:
    classes = _explained_class(model, rows)
    output = _output(model, rows, classes)
    repeat = len(background)
    repeated = rows.iloc[np.repeat(np.arange(len(rows)), repeat)].reset_index(drop=True)
    repeated_classes = None if classes is None else np.repeat(classes, repeat)
    values = np.empty((len(rows), rows.shape[1]))
    for index, column in enumerate(rows.columns):
        swapped = repeated.copy()
        swapped[column] = np.tile(background[column].to_numpy(), len(rows))
        mean = _output(model, swapped, repeated_classes).reshape(len(rows), repeat).mean(axis=1)
        values[:, index] = output - mean
    return output, pd.DataFrame(values, columns=rows.columns)


def _input_columns(preprocess: Any, features: list[str]) -> list[str]:
    """For each column the preprocessing outputs, the input column it was made from."""
    names = [str(name) for name in preprocess.get_feature_names_out()]
    # Longest match first, so a column 'age_band' is not taken for a one-hot 'age' value.
    by_length = sorted(features, key=len, reverse=True)
    return [
        next((f for f in by_length if name == f or name.startswith(f"{f}_")), name)
        for name in names
    ]


def tree_contributions(model: Any, rows: pd.DataFrame) -> tuple[np.ndarray, pd.DataFrame] | None:
    """SHAP values of a tree ensemble summed per input column, or None when SHAP cannot.

    None when SHAP is not installed or the model does not end in a tree ensemble SHAP reads.
    """
    steps = getattr(model, "steps", None)  # a scikit-learn Pipeline: preprocessing, estimator
    # By class or base class: core/boosting.py's XGBLabelClassifier is an XGBClassifier.
    if not steps or not {c.__name__ for c in type(steps[-1][1]).__mro__} & TREE_ESTIMATORS:
        return None
    estimator = steps[-1][1]
    try:
        import shap
    except ImportError:
        return None
    transformed = model[:-1].transform(rows)
    explanation = shap.TreeExplainer(estimator)(transformed)
    values, base = np.asarray(explanation.values), np.asarray(explanation.base_values)
    classes = _explained_class(model, rows)
    if values.ndim == 3:  # one set per class: keep the predicted class's
        picked = np.arange(len(rows))
        values, base = values[picked, :, classes], base.reshape(len(rows), -1)[picked, classes]
    elif classes is not None:  # one set for a binary model's positive class: sign per row
        sign = np.where(classes == 1, 1.0, -1.0)
        values, base = values * sign[:, None], base.reshape(-1) * sign
    owners = _input_columns(model[:-1], list(rows.columns))
    summed = pd.DataFrame(values, columns=owners).T.groupby(level=0, sort=False).sum().T
    # A column the team's features made that is named after no input keeps its own name.
    made = [name for name in summed.columns if name not in rows.columns]
    summed = summed.reindex(columns=[*rows.columns, *made], fill_value=0.0)
    return base.reshape(-1) + values.sum(axis=1), summed


def contributions(model: Any, rows: pd.DataFrame, background: pd.DataFrame) -> pd.DataFrame:
    """Each row's per-column contributions after its prediction, the output explained and how
    (``ADDED_COLUMNS``, each ``model_``-prefixed where a column of ``rows`` has its name)."""
    shap_result = tree_contributions(model, rows)
    method = ABLATION if shap_result is None else TREE_SHAP
    output, values = shap_result or ablation_contributions(model, rows, background)
    # + 0.0 turns the -0.0 that rounding leaves into 0.0
    table = values.round(6).reset_index(drop=True) + 0.0
    added: tuple[Any, ...] = (np.asarray(model.predict(rows)), output.round(6), method)
    for position, (name, value) in enumerate(zip(ADDED_COLUMNS, added, strict=True)):
        table.insert(position, prediction_column(table.columns, name), value)
    return table
