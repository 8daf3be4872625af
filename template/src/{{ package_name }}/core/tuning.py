"""Hyperparameter search with Optuna: the search space, the study's key, the CV objective.

Each trial is scored by cross-validation on the training split only, so the test split stays
unseen until ``evaluate``. The running mean over the folds is reported after each fold: the
median pruner stops a trial whose first folds already trail the median of earlier trials.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import pandas as pd

from ..config import SearchParam, Task
from .metrics import GREATER_IS_BETTER, model_metrics

if TYPE_CHECKING:
    import optuna
    from sklearn.pipeline import Pipeline


def suggest(trial: optuna.Trial, space: dict[str, SearchParam]) -> dict[str, Any]:
    """One value per hyperparameter of ``space``, drawn by the trial's sampler."""
    values: dict[str, Any] = {}
    for name, spec in space.items():
        if spec.type == "categorical":
            values[name] = trial.suggest_categorical(name, spec.choices)
        elif spec.type == "int":
            low, high = int(spec.low or 0), int(spec.high or 0)
            values[name] = trial.suggest_int(name, low, high, log=spec.log)
        else:
            low_f, high_f = float(spec.low or 0), float(spec.high or 0)
            values[name] = trial.suggest_float(name, low_f, high_f, log=spec.log)
    return values


def example(space: dict[str, SearchParam]) -> dict[str, Any]:
    """One value per hyperparameter of ``space`` (its low end, or its first choice): a trial's
    names with values it could draw, to check the names before any trial runs."""
    return {
        name: spec.choices[0] if spec.type == "categorical" else spec.low
        for name, spec in space.items()
    }


def study_name(kind: str, data_md5: str, space: dict[str, SearchParam], **setup: Any) -> str:
    """The study's key: the same data, search space and set-up resume the same study.

    ``setup`` holds everything else a trial's score depends on (task, seed, folds, metric,
    the fixed hyperparameters, the data contract, the code), so a changed one starts a new
    study instead of mixing scores, or of reusing a finished study's.
    """
    described = {
        "space": {name: spec.model_dump() for name, spec in sorted(space.items())},
        **setup,
    }
    digest = hashlib.sha256(json.dumps(described, sort_keys=True, default=str).encode())
    return f"{kind}-{data_md5[:12]}-{digest.hexdigest()[:12]}"


def code_digest() -> str:
    """A hash of the code under ``core/``, which builds and scores each trial's pipeline (the
    team's features among it): DVC reruns ``tune`` when it changes, and a study resumed then
    would hand back trials scored by the old code. Line ends count as ``\n``, so a checkout on
    Windows keys the same study as one on Linux."""
    folder = Path(__file__).parent
    digest = hashlib.sha256()
    for path in sorted(folder.rglob("*.py")):
        digest.update(path.relative_to(folder).as_posix().encode())
        digest.update(path.read_bytes().replace(b"\r\n", b"\n"))
    return digest.hexdigest()


def direction(metric: str) -> Literal["maximize", "minimize"]:
    """Optuna's direction for ``metric``."""
    if metric not in GREATER_IS_BETTER:
        raise ValueError(f"unknown metric {metric!r}; known: {sorted(GREATER_IS_BETTER)}")
    return "maximize" if GREATER_IS_BETTER[metric] else "minimize"


def cross_validated_score(
    trial: optuna.Trial,
    build: Callable[[], Pipeline],
    X: pd.DataFrame,
    y: pd.Series,
    task: Task,
    metric: str,
    folds: int,
    seed: int,
) -> float:
    """Mean ``metric`` over ``folds`` folds of ``X, y``; prunes the trial between folds."""
    import optuna
    from sklearn.model_selection import KFold, StratifiedKFold

    splitter_class = StratifiedKFold if task == "classification" else KFold
    splitter = splitter_class(n_splits=folds, shuffle=True, random_state=seed)
    scores: list[float] = []
    for step, (fit_rows, score_rows) in enumerate(splitter.split(X, y)):
        model = build()
        model.fit(X.iloc[fit_rows], y.iloc[fit_rows])
        metrics, _, _ = model_metrics(task, model, X.iloc[score_rows], y.iloc[score_rows])
        scores.append(metrics[metric])
        trial.report(float(np.mean(scores)), step)
        # After the last fold the score is final: a finished trial is kept, never pruned.
        if step + 1 < folds and trial.should_prune():
            raise optuna.TrialPruned(f"pruned after fold {step + 1} of {folds}")
    return float(np.mean(scores))
