"""The model card: what a registered model is, how well it does overall and per slice.

Slices come from ``model_card.sensitive_columns`` in ``params.yaml``: metrics per value of each
column (numeric columns are cut into quartiles), and the gap between the best and worst slice,
so a fairness problem shows up before the model serves anyone. A slice too small to give a
stable metric, or holding one class only, is reported with the reason and left out of the gap:
the register stage gates only on the others.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from ..config import Task

QUARTILES = 4


def _slice_scores(
    task: Task, y_true: pd.Series, y_pred: np.ndarray, positive: str | None
) -> dict[str, float]:
    """Accuracy and, for two classes, the share predicted positive (demographic parity)."""
    from sklearn import metrics as skm

    if task == "classification":
        scores = {"accuracy": float(skm.accuracy_score(y_true.astype(str), y_pred.astype(str)))}
        if positive is not None:
            scores[f"predicted_{positive}"] = float((y_pred.astype(str) == positive).mean())
        return scores
    return {
        "mae": float(skm.mean_absolute_error(y_true, y_pred)),
        "rmse": float(skm.root_mean_squared_error(y_true, y_pred)),
    }


def _ungated(task: Task, y_true: pd.Series, min_rows: int) -> str | None:
    """Why a slice is reported but not gated, or ``None``."""
    if len(y_true) < min_rows:
        return f"fewer than {min_rows} rows"
    if task == "classification" and y_true.nunique() < 2:
        return "one class only"
    return None


def slice_metrics(
    task: Task,
    frame: pd.DataFrame,
    target: str,
    predictions: np.ndarray,
    columns: list[str],
    min_rows: int = 20,
) -> dict[str, Any]:
    """Per column: metrics for each of its values, and the gaps between the gated slices."""
    result: dict[str, Any] = {}
    y_pred = pd.Series(predictions, index=frame.index)
    classes = sorted(frame[target].astype(str).unique())
    positive = classes[-1] if task == "classification" and len(classes) == 2 else None
    for column in columns:
        if column not in frame.columns:
            raise ValueError(f"model_card.sensitive_columns: {column!r} is not in the test data")
        values = frame[column]
        if pd.api.types.is_numeric_dtype(values) and values.nunique() > QUARTILES:
            values = pd.qcut(values, QUARTILES, precision=2, duplicates="drop").astype(str)
        groups = values.astype(object).where(values.notna(), "missing").astype(str)
        slices: dict[str, dict[str, Any]] = {}
        for name in sorted(groups.unique()):
            mask = groups == name
            y_true = frame.loc[mask, target]
            scores = _slice_scores(task, y_true, y_pred[mask].to_numpy(), positive)
            rounded = {k: round(v, 6) for k, v in scores.items()}
            slices[str(name)] = {"rows": int(mask.sum()), **rounded}
            if reason := _ungated(task, y_true, min_rows):
                slices[str(name)]["not_gated"] = reason
        gated = [s for s in slices.values() if "not_gated" not in s]
        names = sorted(next(iter(slices.values()), {}).keys() - {"rows", "not_gated"})
        gaps = {
            metric: round(max(s[metric] for s in gated) - min(s[metric] for s in gated), 6)
            for metric in names
            if gated
        }
        result[column] = {"slices": slices, "gap": gaps}
    return result


def _table(rows: dict[str, dict[str, Any]], key: str) -> list[str]:
    columns = list(dict.fromkeys(name for row in rows.values() for name in row))
    lines = [f"| {key} | " + " | ".join(columns) + " |", "|---" * (len(columns) + 1) + "|"]
    lines += [
        f"| {name} | " + " | ".join(str(row.get(c, "")) for c in columns) + " |"
        for name, row in rows.items()
    ]
    return lines


def _data_section(data_source: str, run: dict[str, Any], report: dict[str, Any]) -> list[str]:
    return [
        "## Data",
        "",
        f"- source: `{data_source}`",
        f"- data version (MD5 of the validated table, as DVC records it): `{run.get('data_md5')}`",
        f"- MLflow run: `{run.get('run_id')}`",
        f"- test rows: {report.get('test_rows')}",
        "",
    ]


def _metrics_section(report: dict[str, Any]) -> list[str]:
    metrics = {
        name: {
            "model": value,
            "baseline": report["baseline"].get(name, ""),
            "linear": report.get("linear", {}).get(name, ""),
        }
        for name, value in report["test"].items()
    }
    return [
        "## Metrics on the test set, against the baseline and the linear model",
        "",
        *_table(metrics, "metric"),
        "",
        f"Primary metric `{report['primary_metric']}` gains {report['gain_over_baseline']} "
        "over the baseline (class priors or the training mean)"
        + (
            f" and {report['gain_over_linear']} over the linear model."
            if report.get("gain_over_linear") is not None
            else "."
        ),
        "",
    ]


def _slices_section(slices: dict[str, Any]) -> list[str]:
    lines = ["## Metrics per slice", ""]
    if not slices:
        lines.append(
            "No `model_card.sensitive_columns` are set in `params.yaml`, so no slice was checked."
        )
    for column, info in slices.items():
        gaps = ", ".join(f"{k} {v}" for k, v in info["gap"].items()) or "no slice to compare"
        table = _table(info["slices"], "slice")
        lines += [f"### `{column}`", "", *table, "", f"Gap between gated slices: {gaps}", ""]
    return lines


def _statement(heading: str, text: str, setting: str) -> list[str]:
    """A section the team writes in ``params.yaml``, or a note that it is missing."""
    return [
        f"## {heading}",
        "",
        text.strip() or f"Not stated yet (set `model_card.{setting}` in params.yaml).",
        "",
    ]


def render_model_card(
    *,
    model_name: str,
    version: str | None,
    status: str,
    run: dict[str, Any],
    data_source: str,
    parameters: dict[str, Any],
    report: dict[str, Any],
    slices: dict[str, Any],
    intended_use: str,
    limitations: str,
) -> str:
    """The card as Markdown (one file, readable in the MLflow UI and in a pull request)."""
    title = f"{model_name} version {version}" if version else f"{model_name} (candidate)"
    lines = [
        f"# Model card: {title}",
        "",
        f"**Status:** {status}",
        "",
        *_data_section(data_source, run, report),
        "## Parameters",
        "",
        *[f"- `{name}`: `{value}`" for name, value in sorted(parameters.items())],
        "",
        *_metrics_section(report),
        *_slices_section(slices),
        "",
        *_statement("Intended use", intended_use, "intended_use"),
        *_statement("Limitations", limitations, "limitations"),
    ]
    return "\n".join(lines)
