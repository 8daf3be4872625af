"""Evaluation figures (PNG for the MLflow UI), drawn from the same tables DVC plots."""

from __future__ import annotations

import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure


def _figure(title: str, xlabel: str, ylabel: str) -> tuple[Figure, Axes]:
    # A Figure of its own, not pyplot's: no GUI backend to choose (stages and CI have no
    # display), no global list of open figures to close; saving as PNG draws with Agg.
    figure = Figure(figsize=(5, 4), layout="constrained")
    axes = figure.subplots()
    axes.set(title=title, xlabel=xlabel, ylabel=ylabel)
    return figure, axes


def confusion_figure(table: pd.DataFrame) -> Figure:
    """The ``count`` of each (actual, predicted) pair as a heat map."""
    counts = table.pivot_table(
        index="actual", columns="predicted", values="count", aggfunc="sum", fill_value=0
    )
    figure, axes = _figure("Confusion matrix", "predicted", "actual")
    axes.imshow(counts.to_numpy(), cmap="Blues")
    axes.set_xticks(range(len(counts.columns)), [str(c) for c in counts.columns])
    axes.set_yticks(range(len(counts.index)), [str(i) for i in counts.index])
    for row, actual in enumerate(counts.index):
        for column, predicted in enumerate(counts.columns):
            axes.text(column, row, str(counts.loc[actual, predicted]), ha="center", va="center")
    return figure


def curve_figure(table: pd.DataFrame, x: str, y: str, title: str) -> Figure:
    """A line plot of ``y`` against ``x`` (ROC or precision-recall)."""
    figure, axes = _figure(title, x, y)
    axes.plot(table[x], table[y])
    axes.set(xlim=(0, 1), ylim=(0, 1.02))
    return figure


def scatter_figure(table: pd.DataFrame, x: str, y: str, title: str) -> Figure:
    """A scatter plot of ``y`` against ``x`` (predicted vs actual, residuals)."""
    figure, axes = _figure(title, x, y)
    axes.scatter(table[x], table[y], s=8, alpha=0.6)
    return figure


def importance_figure(table: pd.DataFrame) -> Figure:
    """Horizontal bars of each feature's permutation importance, the largest on top."""
    shown = table.head(20).iloc[::-1]
    figure, axes = _figure("Permutation importance (top 20)", "drop in the primary metric", "")
    axes.barh(shown["feature"].astype(str), shown["importance"], xerr=shown["std"])
    return figure


def figures(plots: dict[str, pd.DataFrame]) -> dict[str, Figure]:
    """One figure per plot table the evaluate stage wrote, keyed by file name."""
    drawn: dict[str, Figure] = {}
    if "confusion" in plots:
        drawn["confusion_matrix.png"] = confusion_figure(plots["confusion"])
    if "roc" in plots:
        drawn["roc_curve.png"] = curve_figure(plots["roc"], "fpr", "tpr", "ROC curve")
    if "precision_recall" in plots:
        drawn["precision_recall.png"] = curve_figure(
            plots["precision_recall"], "recall", "precision", "Precision-recall curve"
        )
    if "predictions" in plots:
        table = plots["predictions"]
        drawn["predicted_vs_actual.png"] = scatter_figure(
            table, "actual", "predicted", "Predicted vs actual"
        )
        drawn["residuals.png"] = scatter_figure(table, "predicted", "residual", "Residuals")
    if "importance" in plots:
        drawn["importance.png"] = importance_figure(plots["importance"])
    return drawn
