"""Compare current data with the reference: drift, data quality, model quality, shadow model.

The result is a :class:`MonitorSummary` (written as JSON) whose ``alerts`` list every threshold
from ``params.yaml`` (``monitor.alert``) that was crossed; no alerts means the check passed.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from datetime import UTC, datetime

import numpy as np
import pandas as pd
from pydantic import BaseModel, Field
from sklearn import metrics as skm

from ..config import CHAMPION, MonitorParams
from ..core.metrics import improvement
from ..core.schema import category_text
from .drift import LARGEST, ColumnDrift, Kind, column_drift
from .input_checks import CANARY
from .prediction_log import Unreadable, log_column
from .profile import Reference

SERVED_BY = "served_by"

# Metrics that need only labels and predictions (the log keeps no probabilities).
LABEL_METRICS: dict[str, Callable[[np.ndarray, np.ndarray], float]] = {
    "accuracy": skm.accuracy_score,
    "balanced_accuracy": skm.balanced_accuracy_score,
    "f1_macro": lambda y, p: skm.f1_score(y, p, average="macro", zero_division=0),
    "r2": skm.r2_score,
    "rmse": skm.root_mean_squared_error,
    "mae": skm.mean_absolute_error,
}


class DataQuality(BaseModel):
    """Missing values, and values the model never saw in training, for one column."""

    column: str
    missing_reference: float
    missing_current: float
    # numeric: share outside the training range; categorical: share of unseen categories
    out_of_range: float


class ModelQuality(BaseModel):
    metric: str
    reference: float | None
    current: float
    labelled_rows: int


class ShadowComparison(BaseModel):
    """How often the challenger agrees with the served model on the same rows."""

    rows: int
    agreement: float | None  # classification: share of equal predictions
    mean_abs_difference: float | None  # regression
    champion: ColumnDrift  # each side's predictions against the reference predictions
    challenger: ColumnDrift


class ArmQuality(BaseModel):
    """The requests one model answered during a canary release."""

    served_by: str  # champion or canary
    model_versions: list[str]
    rows: int
    quality: ModelQuality | None  # when labels were fed back


class CanaryComparison(BaseModel):
    """Champion and canary on the (disjoint) traffic each answered."""

    share: float  # of the rows, answered by the canary
    arms: list[ArmQuality]


class ModelAge(BaseModel):
    """The age check (``monitor.alert.max_champion_age_days``) of the model the environment
    serves: the alias or version named by ``SERVING_MODEL_URI``, else the champion."""

    model: str  # the model checked, e.g. models:/<name>@production
    days: float | None = None  # since its version was registered; None: no version holds it
    error: str | None = None  # why the check could not be made (the registry's error, redacted)


class MonitorSummary(BaseModel):
    generated_at: str
    current_rows: int
    # Rows of a current table larger than monitor.current_rows: current_rows is its sample.
    table_rows: int | None = None
    reference_rows: int
    features: list[ColumnDrift]
    prediction: ColumnDrift | None
    data_quality: list[DataQuality]
    quality: ModelQuality | None
    shadow: ShadowComparison | None
    canary: CanaryComparison | None = None
    drifted_features: list[str]
    # Prediction log lines skipped and values read as missing (a table: none).
    unreadable: Unreadable = Field(default_factory=Unreadable)
    alerts: list[str]
    # Labelled rows that later got a different label (the first stands): see feedback.py.
    feedback_conflicts: int = 0
    # The age of the model this environment serves (None: no age limit in params.yaml).
    model_age: ModelAge | None = None

    @property
    def not_checked(self) -> list[str]:
        """Checks that could not be made, and why: neither a pass nor a breach."""
        return [self.model_age.error] if self.model_age and self.model_age.error else []

    @property
    def passed(self) -> bool:
        return not self.alerts and not self.not_checked


def _data_quality(
    reference: Reference, current: pd.DataFrame, skip: Collection[str]
) -> list[DataQuality]:
    result = []
    for name, info in reference.summary["numeric"].items():
        if name in skip:
            continue
        values = pd.to_numeric(current[name], errors="coerce")
        outside = (values < info["min"]) | (values > info["max"])
        result.append(
            DataQuality(
                column=name,
                missing_reference=round(info["missing"], 6),
                missing_current=round(float(current[name].isna().mean()), 6),
                out_of_range=round(float(outside.mean()), 6),
            )
        )
    for name, info in reference.summary["categorical"].items():
        if name in skip:
            continue
        values = category_text(current[name]).dropna()
        unseen = ~values.isin(list(info["frequencies"]))
        result.append(
            DataQuality(
                column=name,
                missing_reference=round(info["missing"], 6),
                missing_current=round(float(current[name].isna().mean()), 6),
                out_of_range=round(float(unseen.sum() / max(len(current), 1)), 6),
            )
        )
    return result


def _model_quality(
    current: pd.DataFrame,
    target: str,
    metric: str,
    reference_metrics: dict[str, float],
    predicted: str,
) -> ModelQuality | None:
    if target not in current.columns or metric not in LABEL_METRICS:
        return None
    labelled = current[current[target].notna() & current[predicted].notna()]
    if labelled.empty:
        return None
    y_true, y_pred = labelled[target], labelled[predicted]
    if metric in ("accuracy", "balanced_accuracy", "f1_macro"):
        y_true, y_pred = category_text(y_true), category_text(y_pred)
    else:  # labels or predictions that are not finite numbers cannot be scored
        y_true, y_pred = _finite_pairs(y_true, y_pred)
        if not len(y_true):
            return None
    with np.errstate(over="ignore", invalid="ignore"):  # near the float limit: inf, not a crash
        value = float(LABEL_METRICS[metric](y_true.to_numpy(), y_pred.to_numpy()))
    return ModelQuality(
        metric=metric,
        reference=reference_metrics.get(metric),
        current=round(value, 6),
        labelled_rows=len(labelled),
    )


def _finite_pairs(first: pd.Series, second: pd.Series) -> tuple[pd.Series, pd.Series]:
    """The rows where both are finite numbers, as floats."""
    a = pd.to_numeric(first, errors="coerce").astype("float64")
    b = pd.to_numeric(second, errors="coerce").astype("float64")
    both = np.isfinite(a) & np.isfinite(b)
    return a[both], b[both]


def _shadow(
    reference: Reference, current: pd.DataFrame, params: MonitorParams
) -> ShadowComparison | None:
    predicted, challenged = reference.predicted_column, reference.challenger_column
    if challenged not in current.columns:
        return None
    both = current[current[challenged].notna() & current[predicted].notna()]
    served_by = log_column(SERVED_BY, both.columns)
    if served_by in both.columns:  # canary rows were answered by the challenger itself
        both = both[both[served_by] != CANARY]
    if both.empty:
        return None
    kind: Kind = "categorical" if reference.prediction_type == "categorical" else "numeric"
    effect = _min_effect(params, kind)
    ref_predictions = reference.sample[predicted]
    champion, challenger = both[predicted], both[challenged]
    agreement = difference = None
    if kind == "categorical":
        agreement = round(float((category_text(champion) == category_text(challenger)).mean()), 6)
    else:
        first, second = _finite_pairs(champion, challenger)
        with np.errstate(over="ignore"):  # values near the float limit
            mean = float((first - second).abs().mean()) if len(first) else None
        difference = None if mean is None else round(min(mean, LARGEST), 6)
    return ShadowComparison(
        rows=len(both),
        agreement=agreement,
        mean_abs_difference=difference,
        champion=column_drift(predicted, kind, ref_predictions, champion, params.p_value, effect),
        challenger=column_drift(
            challenged, kind, ref_predictions, challenger, params.p_value, effect
        ),
    )


def _canary(
    current: pd.DataFrame,
    target: str,
    metric: str,
    reference_metrics: dict[str, float],
    predicted: str,
) -> CanaryComparison | None:
    served_by = log_column(SERVED_BY, current.columns)
    if served_by not in current.columns or not (current[served_by] == CANARY).any():
        return None
    arms = []
    for role in (CHAMPION, CANARY):
        rows = current[current[served_by] == role]
        logged = rows.get(log_column("model_version", rows.columns), pd.Series(dtype=object))
        versions = sorted(logged.dropna().astype(str).unique().tolist())
        arms.append(
            ArmQuality(
                served_by=role,
                model_versions=versions,
                rows=len(rows),
                quality=_model_quality(rows, target, metric, reference_metrics, predicted),
            )
        )
    share = arms[1].rows / max(arms[0].rows + arms[1].rows, 1)
    return CanaryComparison(share=round(share, 6), arms=arms)


def _percent(share: float) -> str:
    return f"{100 * share:.1f}%"


def _alerts(
    summary: MonitorSummary, params: MonitorParams, quality: ModelQuality | None
) -> list[str]:
    alert = params.alert
    alerts = []
    if len(summary.drifted_features) > alert.max_drifted_features:
        drifted = ", ".join(column.label for column in summary.features if column.drifted)
        alerts.append(
            f"{len(summary.drifted_features)} feature(s) drifted "
            f"(allowed {alert.max_drifted_features}): {drifted}"
        )
    if alert.prediction_drift and summary.prediction is not None and summary.prediction.drifted:
        alerts.append("the predictions drifted")
    for row in summary.data_quality:
        if row.missing_current - row.missing_reference > alert.max_missing_increase:
            alerts.append(
                f"column {row.column!r}: {_percent(row.missing_current)} missing "
                f"(reference {_percent(row.missing_reference)})"
            )
        if row.out_of_range > alert.max_out_of_range:
            alerts.append(
                f"column {row.column!r}: {_percent(row.out_of_range)} of values outside the "
                f"training range or categories (allowed {_percent(alert.max_out_of_range)})"
            )
    if quality is not None and quality.reference is not None:
        drop = -improvement(quality.metric, quality.current, quality.reference)
        if drop > alert.max_metric_drop:
            alerts.append(
                f"{quality.metric} is {quality.current} on {quality.labelled_rows} labelled rows, "
                f"{drop:.4f} below the reference {quality.reference} "
                f"(allowed drop {alert.max_metric_drop})"
            )
    if summary.canary is not None:
        alerts.extend(_canary_alerts(summary.canary, alert.max_metric_drop))
    unreadable = summary.unreadable
    lines = unreadable.lines_read + unreadable.lines_skipped
    if lines and unreadable.lines_skipped / lines > alert.max_unreadable_lines:
        alerts.append(
            f"{unreadable.describe()} of the prediction log could not be read "
            f"(allowed {_percent(alert.max_unreadable_lines)})"
        )
    return alerts


def model_age_alert(age: ModelAge, limit: float | None) -> str | None:
    """An alert when the served model is older than ``limit`` days: data moves on, and a model
    retrained only on drift can serve for years on a world that changed slowly."""
    if age.days is None or limit is None or age.days <= limit:
        return None
    return f"{age.model} is {age.days:.0f} days old (allowed {limit:g}): retrain on recent data"


def _canary_alerts(canary: CanaryComparison, max_drop: float) -> list[str]:
    """An alert when the canary's labelled quality is below the champion's, beyond ``max_drop``."""
    champion, challenger = (arm.quality for arm in canary.arms)
    if champion is None or challenger is None:
        return []
    drop = -improvement(champion.metric, challenger.current, champion.current)
    if drop <= max_drop:
        return []
    return [
        f"the canary's {champion.metric} is {challenger.current}, {drop:.4f} below the "
        f"champion's {champion.current} over the same period (allowed drop {max_drop})"
    ]


def _min_effect(params: MonitorParams, kind: Kind) -> float:
    return params.min_effect.categorical if kind == "categorical" else params.min_effect.numeric


def _feature_drift(
    reference: Reference, current: pd.DataFrame, params: MonitorParams, skip: Collection[str]
) -> list[ColumnDrift]:
    """Each feature's drift, then each derived column's (those ``current`` holds), tested as
    numbers; a derived column made from a skipped feature is skipped too."""
    sources = reference.derived
    kinds: list[tuple[Kind, list[str]]] = [
        ("numeric", reference.numeric),
        ("categorical", reference.categorical),
        ("numeric", [name for name in sources if name in current.columns]),
    ]
    result = []
    for kind, names in kinds:
        for name in names:
            if name in skip or set(sources.get(name, [])) & set(skip):
                continue
            drift = column_drift(
                name,
                kind,
                reference.sample[name],
                current[name],
                params.p_value,
                _min_effect(params, kind),
            )
            drift.derived_from = sources.get(name, [])
            result.append(drift)
    return result


def _prediction_drift(
    reference: Reference, current: pd.DataFrame, params: MonitorParams
) -> ColumnDrift | None:
    predicted = reference.predicted_column
    if predicted not in current.columns:
        return None
    kind: Kind = "categorical" if reference.prediction_type == "categorical" else "numeric"
    return column_drift(
        predicted,
        kind,
        reference.sample[predicted],
        current[predicted],
        params.p_value,
        _min_effect(params, kind),
    )


def build_summary(
    reference: Reference,
    current: pd.DataFrame,
    params: MonitorParams,
    target: str,
    reference_metrics: dict[str, float],
    skip: Collection[str] = (),
    unreadable: Unreadable | None = None,
) -> MonitorSummary:
    """Everything ``monitor`` reports about ``current`` (features and predictions columns).

    ``skip`` names features not to check, e.g. those the prediction log drops or hashes;
    ``unreadable``: what reading the prediction log skipped.
    """
    features = _feature_drift(reference, current, params, skip)
    predicted, metric = reference.predicted_column, params.quality_metric
    quality = (
        _model_quality(current, target, metric, reference_metrics, predicted)
        if predicted in current.columns
        else None
    )
    summary = MonitorSummary(
        generated_at=datetime.now(UTC).isoformat(timespec="seconds"),
        current_rows=len(current),
        reference_rows=len(reference.sample),
        features=features,
        prediction=_prediction_drift(reference, current, params),
        data_quality=_data_quality(reference, current, skip),
        quality=quality,
        shadow=_shadow(reference, current, params),
        canary=_canary(current, target, metric, reference_metrics, predicted),
        drifted_features=[column.column for column in features if column.drifted],
        unreadable=unreadable or Unreadable(),
        alerts=[],
    )
    summary.alerts = _alerts(summary, params, quality)
    return summary
