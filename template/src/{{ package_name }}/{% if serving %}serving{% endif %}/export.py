"""Copy a registered model out of MLflow into a folder, so an image can serve it offline."""

from __future__ import annotations

from pathlib import Path

import msgspec

from ..io.data import output_folder
from ..io.model_loader import EXPORT_METADATA, ModelFolder, check_model


def export_model(model_name: str, alias: str, output: Path) -> str:
    """Download ``models:/<model_name>@<alias>`` into ``output``; return its version.

    The folder is a plain MLflow model (``mlflow models serve -m`` works on it too) plus
    ``registered_model.json``, from which the service reports the version it serves and by
    which a later export knows the folder as its own: an existing ``output`` is replaced only
    if it holds that file (or is empty), else ``FileExistsError``. A model the project's loader
    would refuse is not exported (``UnsafeModelError``).
    """
    import mlflow.artifacts
    from mlflow.tracking import MlflowClient

    version = MlflowClient().get_model_version_by_alias(model_name, alias)
    uri = f"models:/{model_name}/{version.version}"
    with output_folder(output, EXPORT_METADATA) as folder:
        mlflow.artifacts.download_artifacts(artifact_uri=uri, dst_path=str(folder))
        check_model(ModelFolder(folder, uri, str(version.version)))
        metadata = {
            "name": model_name,
            "version": str(version.version),
            "alias": alias,
            "run_id": version.run_id,
        }
        (folder / EXPORT_METADATA).write_bytes(
            msgspec.json.format(msgspec.json.encode(metadata)) + b"\n"
        )
    return str(version.version)
