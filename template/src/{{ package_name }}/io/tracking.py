"""MLflow: experiment set-up, run metadata, and the model registry's ``champion`` alias."""

from __future__ import annotations

import importlib.metadata
import os
import subprocess
from dataclasses import dataclass

import mlflow
from mlflow.entities.model_registry import ModelVersion
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from ..config import CHAMPION, Settings, project_root
from .model_loader import connect

# Pinned from the running environment: MLflow would infer them by loading the model again.
RUNTIME_PACKAGES = ("scikit-learn", "pandas", "numpy", "scipy", "skops")
# Optional installs (the lightgbm and xgboost extras): pinned where installed.
LIBRARY_PACKAGES = ("lightgbm", "xgboost", "xgboost-cpu")


def configure(settings: Settings) -> None:
    """Point MLflow at the tracking store, the registry and the experiment from settings."""
    # No progress bars in stage logs (the train stage copies the logged model back to disk).
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    connect(settings)
    name, scheme = settings.mlflow_experiment, settings.mlflow_tracking_uri.partition(":")[0]
    if scheme == "sqlite" and mlflow.get_experiment_by_name(name) is None:
        # MLflow's default artifact folder is ./mlruns of the working directory; a server
        # keeps its own artifact root, so only a local store's experiment is placed here.
        try:
            mlflow.create_experiment(name, artifact_location=str(project_root() / "mlruns" / name))
        except MlflowException as error:
            if error.error_code != "RESOURCE_ALREADY_EXISTS":  # another worker made it first
                raise
    mlflow.set_experiment(name)


def pip_requirements() -> list[str]:
    """Exact versions of the packages a logged scikit-learn model needs to load."""
    pins = []
    for package in (*RUNTIME_PACKAGES, *LIBRARY_PACKAGES):
        try:
            pins.append(f"{package}=={importlib.metadata.version(package)}")
        except importlib.metadata.PackageNotFoundError:
            continue
    return pins


def skops_trusted_types(model: object) -> list[str]:
    """Types skops must be told to trust to load ``model`` back (it serialises ``model``).

    Each must be in the loader's ``TRUSTED_TYPES`` (the loader never takes the artifact's word
    for it): a pipeline holding another type fails here, naming them, rather than registering
    a model that nothing would load. The train stage calls it only when logging failed.
    """
    import skops.io

    from .model_loader import TRUSTED_TYPES, UnsafeModelError

    needed = sorted(skops.io.get_untrusted_types(data=skops.io.dumps(model)))
    if not set(needed) <= TRUSTED_TYPES:
        raise UnsafeModelError(
            f"the pipeline holds {sorted(set(needed) - TRUSTED_TYPES)}, which the model loader "
            "does not trust: review them and add them to TRUSTED_TYPES in io/model_loader.py"
        )
    return needed


def git_commit() -> str:
    """The current commit (``-dirty`` when the work tree has changes), ``unknown`` outside git."""
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return f"{commit}-dirty" if dirty else commit


@dataclass(frozen=True)
class Champion:
    """A registered version holding an alias (``champion``, or an environment's), with its
    run's metrics."""

    version: str
    run_id: str | None
    metrics: dict[str, float]


def with_metrics(client: MlflowClient, version: ModelVersion) -> Champion:
    """``version`` with its training run's metrics (none when it was registered without a run)."""
    try:
        metrics = client.get_run(version.run_id).data.metrics if version.run_id else {}
    except MlflowException:
        # The run lives in another tracking store (a registry read through MLFLOW_REGISTRY_URI):
        # the register stage also wrote each test metric on the version as a tag (audit tags
        # of promotions are named `<environment>.<field>`).
        metrics = {
            name: float(value)
            for name, value in version.tags.items()
            if "." not in name and _number(value)
        }
    return Champion(version=str(version.version), run_id=version.run_id, metrics=dict(metrics))


def _number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


# MLflow's answers for a registered model, version or alias that does not exist (a store
# answers a missing alias with an invalid parameter).
NOT_FOUND = frozenset({"RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE"})


def aliased(client: MlflowClient, model_name: str, alias: str) -> ModelVersion | None:
    """The version holding ``alias``, or ``None`` when none does.

    A registry that fails (down, 5xx, credentials refused) raises: read as "none", the gate
    would pass a candidate with nothing to beat. MLflow's basic-auth server answers the alias
    of a model it does not hold with 403, not "does not exist", so any other error is checked
    with a search by name, which it answers with the models the user may read.
    """
    try:
        version: ModelVersion = client.get_model_version_by_alias(model_name, alias)
    except MlflowException as error:
        if error.error_code in NOT_FOUND or not holds_model(client, model_name):
            return None
        raise
    return version


def holds_model(client: MlflowClient, model_name: str) -> bool:
    """Whether the registry holds a model named ``model_name`` that this user may read."""
    found = client.search_registered_models(filter_string=f"name = '{model_name}'", max_results=1)
    return bool(found)


def get_champion(client: MlflowClient, model_name: str, alias: str = CHAMPION) -> Champion | None:
    """The version holding ``alias`` (the champion by default) with its run's metrics, or
    ``None`` when there is none yet."""
    version = aliased(client, model_name, alias)
    return None if version is None else with_metrics(client, version)


def promote(client: MlflowClient, model_name: str, version: str) -> None:
    """Move the ``champion`` alias to ``version``."""
    client.set_registered_model_alias(model_name, CHAMPION, version)
