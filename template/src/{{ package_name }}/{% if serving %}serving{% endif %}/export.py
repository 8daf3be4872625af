"""Copy a registered model out of MLflow into a folder, so an image can serve it offline."""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path

from .model import EXPORT_METADATA


def export_model(model_name: str, alias: str, output: Path) -> str:
    """Download ``models:/<model_name>@<alias>`` into ``output``; return its version.

    The folder is a plain MLflow model (``mlflow models serve -m`` works on it too) plus
    ``registered_model.json``, from which the service reports the version it serves.
    """
    import mlflow.artifacts
    from mlflow.tracking import MlflowClient

    version = MlflowClient().get_model_version_by_alias(model_name, alias)
    output.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=output.parent) as staging:
        folder = Path(
            mlflow.artifacts.download_artifacts(
                artifact_uri=f"models:/{model_name}/{version.version}", dst_path=staging
            )
        )
        metadata = {
            "name": model_name,
            "version": str(version.version),
            "alias": alias,
            "run_id": version.run_id,
        }
        (folder / EXPORT_METADATA).write_text(json.dumps(metadata, indent=2) + "\n")
        shutil.rmtree(output, ignore_errors=True)
        folder.replace(output)
    return str(version.version)
