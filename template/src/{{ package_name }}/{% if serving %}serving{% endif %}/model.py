"""Loading the model the service scores with, and holding it for the app's lifetime."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .contract import Contract, features_from_signature

# Written by `export-model` next to the MLflow model files: which registered version it is.
EXPORT_METADATA = "registered_model.json"


class ModelUnavailableError(RuntimeError):
    """No model can score requests; the message says why (answered as 503)."""


@dataclass(frozen=True)
class LoadedModel:
    """A scikit-learn pipeline with the request contract of its signature."""

    pipeline: Any
    uri: str
    version: str
    contract: Contract


@dataclass
class ModelHolder:
    """The model in service, or the reason there is none.

    ``fallback`` is the seam for a second model that answers when the primary one is missing
    (the monitoring feature fills it); ``active`` prefers the primary model.
    """

    primary: LoadedModel | None = None
    error: str | None = None
    fallback: LoadedModel | None = None

    @property
    def active(self) -> LoadedModel | None:
        return self.primary or self.fallback

    def require(self) -> LoadedModel:
        """The model to score with; raises :class:`ModelUnavailableError` with the reason."""
        model = self.active
        if model is None:
            raise ModelUnavailableError(self.error or "no model is loaded")
        return model


def _pin_registry_uri(uri: str) -> tuple[str, str]:
    """``models:/name@alias`` -> (``models:/name/<version>``, version), so the version we
    report is the version we loaded even if the alias moves meanwhile."""
    from mlflow.tracking import MlflowClient

    name, _, alias = uri.removeprefix("models:/").partition("@")
    if alias:
        version = str(MlflowClient().get_model_version_by_alias(name, alias).version)
        return f"models:/{name}/{version}", version
    return uri, uri.rstrip("/").rpartition("/")[2]


def _folder_version(folder: Path) -> str:
    metadata = folder / EXPORT_METADATA
    if metadata.is_file():
        return str(json.loads(metadata.read_text(encoding="utf-8"))["version"])
    return f"local:{folder.name}"


def load_model(uri: str, *, max_batch_size: int, allow_missing: bool) -> LoadedModel:
    """Load a model folder or MLflow URI (registry aliases resolved to a version)."""
    import mlflow.artifacts
    import mlflow.sklearn
    from mlflow.models import Model

    if uri.startswith("models:/"):
        pinned, version = _pin_registry_uri(uri)
        folder = Path(mlflow.artifacts.download_artifacts(artifact_uri=pinned))
    elif "://" in uri:
        pinned, version = uri, uri
        folder = Path(mlflow.artifacts.download_artifacts(artifact_uri=uri))
    else:
        folder = Path(uri)
        if not (folder / "MLmodel").is_file():
            raise ModelUnavailableError(f"{folder}: not an MLflow model folder (no MLmodel file)")
        pinned, version = str(folder), _folder_version(folder)
    signature = Model.load(str(folder)).signature
    contract = Contract(
        features_from_signature(signature),
        max_batch_size=max_batch_size,
        allow_missing=allow_missing,
    )
    pipeline = mlflow.sklearn.load_model(str(folder))
    # One prediction now: it proves the model can score (else the service is not ready) and
    # pays scikit-learn's first-call costs before the first request does.
    pipeline.predict(contract.frame([dict.fromkeys(contract.names)]))
    return LoadedModel(pipeline=pipeline, uri=pinned, version=version, contract=contract)
