"""Stage ``register``: record the evaluation on the training run, apply the quality gate; only
a passing model becomes ``champion``.

The evaluation is logged to MLflow here rather than by ``evaluate``: this stage talks to the
tracking store anyway, so ``evaluate`` is a computation on local files that needs no tracking
server, and a store that is down fails this quick stage, which reruns on its own, rather than
losing the evaluation (DVC keeps no outputs of a failed stage).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..config import CHAMPION, Params, RegisterParams, Settings, SliceGate
from ..core.metrics import improvement
from ..engine import exit_now
from ..io.data import read_json, read_table, write_json
from ..io.model_card import write_model_card
from ..io.tracking import Champion
from ._runner import StageError, run_stage

if TYPE_CHECKING:
    import pandas as pd
    from mlflow.tracking import MlflowClient


@dataclass
class Decision:
    """Whether the candidate may be promoted, and every reason it may not."""

    promote: bool = True
    reasons: list[str] = field(default_factory=list)

    def reject(self, reason: str) -> None:
        self.promote = False
        self.reasons.append(reason)


def slice_reasons(slices: dict[str, Any], gate: SliceGate) -> list[str]:
    """Why the slices fail ``gate``: a gated slice under ``threshold``, or a gap over ``max_gap``
    (slices marked ``not_gated``, too small or of one class, are only reported)."""
    reasons: list[str] = []
    for column, info in slices.items():
        gated = {name: s for name, s in info["slices"].items() if "not_gated" not in s}
        metric = gate.metric or next(iter(info["gap"]), None)
        if not gated or metric is None:
            continue
        if metric not in info["gap"]:
            reasons.append(f"register.slices.metric {metric!r} is not one of {list(info['gap'])}")
            continue
        for name, scores in gated.items():
            if gate.threshold is None or improvement(metric, scores[metric], gate.threshold) >= 0:
                continue
            reasons.append(
                f"slice {column}={name}: {metric} {scores[metric]} does not meet the "
                f"threshold {gate.threshold}"
            )
        if gate.max_gap is not None and info["gap"][metric] > gate.max_gap:
            reasons.append(
                f"slices of {column}: {metric} gap {info['gap'][metric]} is over {gate.max_gap}"
            )
    return reasons


def decide(
    report: dict[str, Any], gate: RegisterParams, champion: Champion | None, against: str = CHAMPION
) -> Decision:
    """Check thresholds, the gains over the baseline and the linear model, the slices, and the
    score of the version holding the alias ``against`` (the current champion)."""
    decision = Decision()
    metrics: dict[str, float] = report["test"]
    primary: str = report["primary_metric"]
    for name, threshold in gate.thresholds.items():
        if name not in metrics:
            decision.reject(f"threshold on unknown metric {name!r}")
        elif improvement(name, metrics[name], threshold) < 0:
            decision.reject(f"{name} {metrics[name]} does not meet the threshold {threshold}")
    if report["gain_over_baseline"] <= gate.min_gain_over_baseline:
        decision.reject(
            f"{primary} gains {report['gain_over_baseline']} over the baseline; "
            f"more than {gate.min_gain_over_baseline} is required"
        )
    linear_gain = report.get("gain_over_linear")
    if linear_gain is not None and linear_gain < gate.min_gain_over_linear:
        decision.reject(
            f"{primary} gains {linear_gain} over the linear model; at least "
            f"{gate.min_gain_over_linear} is required (train.model: linear may serve as well)"
        )
    for reason in slice_reasons(report.get("slices", {}), gate.slices):
        decision.reject(reason)
    if champion is not None and primary in champion.metrics:
        change = improvement(primary, metrics[primary], champion.metrics[primary])
        if change < -gate.max_loss_vs_champion:
            decision.reject(
                f"{primary} {metrics[primary]} is worse than {against} version "
                f"{champion.version} ({champion.metrics[primary]})"
            )
    return decision


def recheck(candidate: Champion, params: Params, holder: Champion | None, alias: str) -> Decision:
    """The gate again, for ``promote``: a registered version's run metrics against today's
    ``params.yaml`` and against ``holder``, the version holding ``alias`` now."""
    gain = candidate.metrics.get("gain_over_baseline")
    if gain is None:
        decision = Decision()
        decision.reject(
            f"version {candidate.version}'s run has no evaluation metrics (not registered by "
            "the pipeline)"
        )
        return decision
    report = {
        "test": candidate.metrics,
        "primary_metric": params.evaluate.primary_metric,
        "gain_over_baseline": gain,
        "gain_over_linear": candidate.metrics.get("gain_over_linear"),
    }
    return decide(report, params.gate, holder, alias)


def read_plots(folder: Path) -> dict[str, pd.DataFrame]:
    """The plot tables ``evaluate`` wrote, by name (``roc`` for ``roc.csv``)."""
    return {path.stem: read_table(path) for path in sorted(folder.glob("*.csv"))}


def log_evaluation(
    client: MlflowClient, run_id: str, report: dict[str, Any], plots: dict[str, pd.DataFrame]
) -> None:
    """Attach test and baseline metrics, the plot tables and their figures to the training run
    (through the client: the run need not belong to the experiment set in this process)."""
    from mlflow.entities import Metric

    from ..core.figures import figures

    values = {
        **report["test"],
        **{f"baseline_{name}": value for name, value in report["baseline"].items()},
        **{f"linear_{name}": value for name, value in report["linear"].items()},
        "gain_over_baseline": report["gain_over_baseline"],
    }
    if report["gain_over_linear"] is not None:
        values["gain_over_linear"] = report["gain_over_linear"]
    now = int(time.time() * 1000)
    client.log_batch(run_id, metrics=[Metric(key, value, now, 0) for key, value in values.items()])
    for name, table in plots.items():
        # log_dict replaces the file: log_table would append to the table of an earlier
        # evaluation of the same run (the same format: columns and rows)
        client.log_dict(run_id, table.to_dict(orient="split", index=False), f"plots/{name}.json")
    for name, figure in figures(plots).items():
        client.log_figure(run_id, figure, f"plots/{name}")


def main() -> None:
    def body(params: Params, settings: Settings) -> None:
        import mlflow
        from mlflow.tracking import MlflowClient

        from ..io import tracking

        report = read_json(params.paths.metrics)
        run = read_json(params.paths.run)
        tracking.configure(settings)
        client = MlflowClient()
        log_evaluation(client, run["run_id"], report, read_plots(params.paths.plots))
        champion = tracking.get_champion(client, settings.model_name)
        decision = decide(report, params.gate, champion)
        record: dict[str, Any] = {
            "model_name": settings.model_name,
            "run_id": run["run_id"],
            "promoted": decision.promote and not settings.registry_read_only,
            "reasons": decision.reasons,
            "previous_champion": champion.version if champion else None,
            "version": None,
            # whether the champion came from a shared registry (a server), not this machine's
            "shared_registry": mlflow.get_registry_uri().startswith(("http", "databricks")),
            "read_only": settings.registry_read_only,
        }
        if record["promoted"]:
            # The test metrics as tags, written with the version: where its run is out of reach
            # (a registry shared across tracking stores) they are what the gate compares with.
            tags = {name: str(value) for name, value in report["test"].items()}
            version = mlflow.register_model(run["model_uri"], settings.model_name, tags=tags)
            tracking.promote(client, settings.model_name, str(version.version))
            record["version"] = str(version.version)
        write_json(record, params.paths.registry)
        # The parameters the training run logged: params.yaml's own lack the tune stage's values.
        trained_with = client.get_run(run["run_id"]).data.params
        write_model_card(params, settings, client, record, report, run, trained_with)
        if record["promoted"]:
            print(f"registered {settings.model_name} version {record['version']} as champion")
            return
        if decision.promote:  # read-only: the candidate passed, the registry stays as it is
            print("quality gate passed; read-only registry: nothing registered, no alias moved")
            return
        message = "quality gate failed, champion unchanged: " + "; ".join(decision.reasons)
        if params.gate.fail_on_rejection:
            raise StageError(message)
        print(message)

    run_stage("register", body)


if __name__ == "__main__":
    main()
    exit_now()
