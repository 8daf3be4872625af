"""Stage ``evaluate``: test-set metrics against a trivial baseline and a linear model, metrics
per slice, feature importance, and the plots' data.

The linear model is refitted here, on at most ``evaluate.linear_rows`` training rows, rather than
read from an earlier run: the comparison must hold for this data version and these features.
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pandas as pd

from ..config import EvaluateParams, Params, Settings, Task
from ..core.explain import bounded_sample, permutation_importances
from ..core.metrics import confusion_counts, curve_points, improvement, model_metrics
from ..core.model_card import slice_metrics
from ..core.models import build_pipeline, fit_baseline
from ..core.schema import DataSchema, load_schema
from ..engine import exit_now
from ..io.data import read_sample, read_table, write_json, write_table
from ._runner import run_stage


def fit_linear(train: pd.DataFrame, schema: DataSchema, params: Params) -> Any | None:
    """The linear model on a seeded sample of at most ``evaluate.linear_rows`` training rows,
    with ``train.hyperparameters.linear``; ``None`` when the candidate is the linear model."""
    if params.train.model == "linear":
        return None
    rows = min(len(train), params.evaluate.linear_rows)
    sample = train.sample(n=rows, random_state=params.seed) if rows < len(train) else train
    hyperparameters = params.train.hyperparameters.get("linear", {})
    linear = build_pipeline(schema, params.task, "linear", hyperparameters, params.seed)
    return linear.fit(sample[schema.feature_names], sample[schema.target.name])


def prediction_plots(
    task: Task,
    model: Any,
    y_test: pd.Series,
    y_pred: Any,
    proba: Any,
    options: EvaluateParams,
    seed: int,
) -> dict[str, pd.DataFrame]:
    """The plots' tables, aggregated here so that their size does not grow with the test set:
    confusion counts and thinned curves for a classifier, a seeded sample of at most
    ``options.plot_rows`` predictions and residuals for a regressor."""
    if task == "regression":
        actual = y_test.to_numpy()
        residual = (actual - y_pred).round(6)
        table = pd.DataFrame({"actual": actual, "predicted": y_pred.round(6), "residual": residual})
        return {"predictions": bounded_sample(table, options.plot_rows, seed)}
    if proba is None:
        raise ValueError("a classifier must provide predict_proba")
    plots = {"confusion": confusion_counts(y_test, y_pred)}
    plots.update(curve_points(y_test, proba, model.classes_, options.plot_points))
    return plots


def evaluate_model(
    model: Any,
    train_labels: pd.DataFrame,
    test: pd.DataFrame,
    schema: DataSchema,
    task: Task,
    options: EvaluateParams,
    seed: int,
    linear: Any | None = None,
    sensitive_columns: Sequence[str] = (),
    slice_min_rows: int = 20,
) -> tuple[dict[str, Any], dict[str, pd.DataFrame]]:
    """Score ``model``, a baseline fitted on ``train_labels`` (a frame holding the training
    set's label column; other columns are ignored) and the fitted ``linear`` model (if any),
    and ``model`` per slice of ``sensitive_columns``; return metrics and plot tables.

    Permutation importance uses at most ``options.importance_rows`` test rows (cost: rows x
    features x repeats)."""
    features, target = schema.feature_names, schema.target.name
    primary_metric = options.primary_metric
    X_test, y_test = test[features], test[target]
    sample = bounded_sample(test, options.importance_rows, seed)
    # Permutation importance runs on a thread of its own while this one scores the test set:
    # predictions run outside Python's lock, so neither waits for the other (docs: "Large data").
    with ThreadPoolExecutor(max_workers=1) as pool:
        importance = pool.submit(
            permutation_importances, model, sample, features, target, task, primary_metric, seed
        )
        metrics, y_pred, proba = model_metrics(task, model, X_test, y_test)
        baseline = fit_baseline(task, train_labels[target])
        baseline_metrics, _, _ = model_metrics(task, baseline, X_test, y_test)
        if linear is not None:
            linear_metrics = model_metrics(task, linear, X_test, y_test)[0]
        else:
            linear_metrics = {}
        if primary_metric not in metrics:
            raise ValueError(
                f"evaluate.primary_metric {primary_metric!r} is not one of {list(metrics)}"
            )
        plots = prediction_plots(task, model, y_test, y_pred, proba, options, seed)
        plots["importance"] = importance.result()

    def gain(reference: dict[str, float]) -> float:
        change = improvement(primary_metric, metrics[primary_metric], reference[primary_metric])
        return round(change, 6)

    report = {
        "test": metrics,
        "baseline": baseline_metrics,
        "linear": linear_metrics,
        "primary_metric": primary_metric,
        "gain_over_baseline": gain(baseline_metrics),
        "gain_over_linear": gain(linear_metrics) if linear_metrics else None,
        "test_rows": len(test),
        "importance_rows": len(sample),
        "slices": slice_metrics(
            task, test, target, y_pred, list(sensitive_columns), slice_min_rows
        ),
    }
    return report, plots


def main() -> None:
    def body(params: Params, _: Settings) -> None:
        from ..io.model_loader import load_pipeline

        schema = load_schema(params.paths.schema_file)
        # Of the training set: its labels (read first, on this thread, which also imports the
        # Parquet readers), and the rows fit_linear would sample from it.
        labels = read_table(params.paths.train, columns=[schema.target.name])
        with ThreadPoolExecutor(max_workers=1) as pool:
            # The sample and the test set are read on a worker thread while the model loads
            # here: Parquet decoding runs outside Python's lock.
            linear_rows = pool.submit(
                read_sample, params.paths.train, params.evaluate.linear_rows, params.seed
            )
            test_rows = pool.submit(read_table, params.paths.test)
            model = load_pipeline(str(params.paths.model))
            sample, test = linear_rows.result(), test_rows.result()
        report, plots = evaluate_model(
            model,
            labels,
            test,
            schema,
            params.task,
            params.evaluate,
            params.seed,
            fit_linear(sample, schema, params),
            params.model_card.sensitive_columns,
            params.gate.slices.min_rows,
        )
        write_json(report, params.paths.metrics)
        for name, table in plots.items():
            write_table(table, params.paths.plots / f"{name}.csv")
        primary = params.evaluate.primary_metric
        linear = report["linear"].get(primary, "the candidate")
        print(
            f"{primary}: {report['test'][primary]} "
            f"(baseline {report['baseline'][primary]}, gain {report['gain_over_baseline']}; "
            f"linear model {linear}, gain {report['gain_over_linear']})"
        )

    run_stage("evaluate", body)


if __name__ == "__main__":
    main()
    exit_now()
