"""Write the model card of the candidate the register stage judged, and attach it in MLflow."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..config import Params, Settings
from ..core.model_card import render_model_card
from .data import write_text

if TYPE_CHECKING:
    from mlflow.tracking import MlflowClient

ARTIFACT = "model_card.md"


def write_model_card(
    params: Params,
    settings: Settings,
    client: MlflowClient,
    record: dict[str, Any],
    report: dict[str, Any],
    run: dict[str, Any],
    parameters: dict[str, Any],
) -> str:
    """Build the card, save it to ``paths.model_card``, log it to the run and the version."""
    version = record["version"]
    if record["promoted"]:
        status = f"registered as version {version}, alias `champion`"
    elif record["reasons"]:
        status = "rejected by the quality gate: " + "; ".join(record["reasons"])
    else:
        status = "passed the quality gate; not registered (read-only registry)"
    card = render_model_card(
        model_name=settings.model_name,
        version=version,
        status=status,
        run=run,
        data_source=params.data.source,
        parameters=parameters,
        report=report,
        slices=report.get("slices", {}),
        intended_use=params.model_card.intended_use,
        limitations=params.model_card.limitations,
    )
    write_text(card, params.paths.model_card)
    client.log_text(run["run_id"], card, ARTIFACT)
    if version is not None:
        client.update_model_version(settings.model_name, version, description=card)
    return card
