"""Write the model card of the candidate the register stage judged, and attach it in MLflow."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..config import Params, Settings
from ..core.model_card import render_model_card, slice_metrics
from ..core.schema import load_schema
from .data import read_table, write_text

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
    slices: dict[str, Any] = {}
    if params.model_card.sensitive_columns:  # the model is loaded only to score the slices
        from .model_loader import load_pipeline

        schema = load_schema(params.paths.schema_file)
        test = read_table(params.paths.test)
        model = load_pipeline(str(params.paths.model))
        slices = slice_metrics(
            params.task,
            test,
            schema.target.name,
            model.predict(test[schema.feature_names]),
            params.model_card.sensitive_columns,
        )
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
        slices=slices,
        intended_use=params.model_card.intended_use,
        limitations=params.model_card.limitations,
    )
    write_text(card, params.paths.model_card)
    client.log_text(run["run_id"], card, ARTIFACT)
    if version is not None:
        client.update_model_version(settings.model_name, version, description=card)
    return card
