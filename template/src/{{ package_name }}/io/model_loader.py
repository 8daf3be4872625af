"""The one way this project loads a model: skops only, trusting the types this code names.

``mlflow.sklearn.load_model`` lets the artifact decide: its ``MLmodel`` file picks the format
(pickle and cloudpickle run code from the file) and lists the types skops should trust. Model
folders and registry aliases are untrusted input, so here the ``MLmodel`` file only says which
file holds the pipeline; the format must be skops and the trusted types are
:data:`TRUSTED_TYPES`. ``MODEL_ALLOW_PICKLE=true`` is the only way around it.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from ..config import LIBRARY_KINDS, get_settings, mlflow_client_variables
from ..redaction import install_log_redaction

if TYPE_CHECKING:
    import pyarrow as pa

    from ..config import Settings
    from ..core.schema import ColumnType, DataSchema

logger = logging.getLogger(__name__)

# Types skops does not trust by default that the pipelines of core/models.py hold, one line per
# estimator family and feature transformer (scikit-learn's preprocessing needs nothing beyond
# numpy.dtype). A new estimator or transformer class needs its types added here after review:
# tests/test_model_loader.py fails until they are. Trusting a tree type lets a crafted file
# crash the process at predict time (skops' own warning), which is why write access to the
# registry stays the boundary of trust. The transformers of core/features.py are our own code.
_FEATURES = __name__.rsplit(".", 2)[0] + ".core.features"
TRUSTED_TYPES: frozenset[str] = frozenset(
    {
        "numpy.dtype",  # every fitted array
        "sklearn.tree._tree.Tree",  # random_forest
        # hist_gradient_boosting
        "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",
        f"{_FEATURES}.observed_median",  # the numeric columns' imputation statistic
        f"{_FEATURES}.CategoryText",  # categorical columns
        f"{_FEATURES}.DateParts",  # datetime columns
        f"{_FEATURES}.TextSize",  # text columns
        f"{_FEATURES}.Ratio",  # the example team feature
        # lightgbm and xgboost: each Booster keeps its trees in the library's own model format
        # (LightGBM's text, XGBoost's UBJSON) and reads them back with the library's parser
        "collections.OrderedDict",  # LightGBM's best_score_: defaultdict(OrderedDict)
        "lightgbm.basic.Booster",
        "lightgbm.sklearn.LGBMClassifier",
        "lightgbm.sklearn.LGBMRegressor",
        "xgboost.core.Booster",
        "xgboost.sklearn.XGBRegressor",
        f"{str(__package__).rpartition('.')[0]}.core.boosting.XGBLabelClassifier",
    }
)
SKOPS = "skops"
MLMODEL = "MLmodel"
# Written by `export-model` next to the MLflow model files: which registered version it is.
EXPORT_METADATA = "registered_model.json"


class ModelLoadError(ValueError):
    """No model this project can load is at the given place; the message says why."""


class ModelNotFoundError(ModelLoadError):
    """The registry holds no version under the alias asked for (or no such registered model)."""


class UnsafeModelError(ModelLoadError):
    """Loading the model would trust the artifact to run code; the message says how."""


@dataclass(frozen=True)
class ModelFolder:
    """A model's files on this machine, and what was asked for.

    ``uri`` pins a registry alias to the version it pointed at when fetched, so what is
    reported is what was loaded. ``version``: the registry version of a ``models:/`` URI,
    ``run:<id>`` for a ``runs:/`` URI, ``None`` otherwise (a folder, or a URI that may carry
    credentials and is never echoed as a version).
    """

    path: Path
    uri: str
    version: str | None

    @cached_property
    def mlmodel(self) -> Any:
        """The folder's ``MLmodel`` file as plain YAML, read at first use and kept: the
        pipeline's flavor and the signature's columns and types all come from it."""
        return yaml.safe_load((self.path / MLMODEL).read_text(encoding="utf-8"))

    @cached_property
    def signature(self) -> Any:
        """The signature MLflow logged with the model (``None`` without one), from
        :attr:`mlmodel` as MLflow reads it."""
        from mlflow.exceptions import MlflowException
        from mlflow.models import Model

        try:
            return Model.from_dict(self.mlmodel).signature
        except (MlflowException, OSError) as error:
            reason = f"{MLMODEL} not readable ({type(error).__name__})"
            raise ModelLoadError(f"{self.uri}: {reason}") from None


def connect(settings: Settings) -> None:
    """Point MLflow at the tracking store and the model registry from settings (here, not in
    ``io/tracking.py``, which imports this module and takes it from here)."""
    import mlflow

    install_log_redaction()  # MLflow's loggers have a handler of their own
    # Credentials kept in the project's .env: MLflow reads only the environment, and there
    # redaction masks them as it masks exported ones.
    os.environ.update(mlflow_client_variables())
    mlflow.set_tracking_uri(settings.mlflow_tracking_uri)
    # Set even when empty (the tracking store's registry): MLflow would read
    # MLFLOW_REGISTRY_URI itself, a relative SQLite file from the working directory.
    mlflow.set_registry_uri(settings.mlflow_registry_uri)


def fetch_model(uri: str) -> ModelFolder:
    """A local folder as is, or an MLflow URI downloaded (``models:/name@alias`` resolved to
    its version through the registry first)."""
    if "://" not in uri and not uri.startswith("models:/"):
        folder = Path(uri)
        if not (folder / MLMODEL).is_file():
            raise ModelLoadError(f"{folder}: not an MLflow model folder (no {MLMODEL} file)")
        return ModelFolder(folder, uri, None)
    import mlflow.artifacts
    from mlflow.tracking import MlflowClient

    # The project's one tracking server and registry, for the lookups inside MLflow too.
    connect(get_settings())
    version = None
    name, at, alias = uri.removeprefix("models:/").partition("@")
    if uri.startswith("models:/") and at:
        with _not_found_said(uri):
            version = str(MlflowClient().get_model_version_by_alias(name, alias).version)
        uri = f"models:/{name}/{version}"
    elif uri.startswith("models:/"):
        version = uri.rstrip("/").rpartition("/")[2]
    elif uri.startswith("runs:/"):
        version = "run:" + uri.removeprefix("runs:/").partition("/")[0]
    path = mlflow.artifacts.download_artifacts(artifact_uri=uri)
    return ModelFolder(Path(path), uri, version)


def exported_version(folder: Path) -> tuple[str, str] | None:
    """The registered model's name and version that ``export-model`` copied into ``folder``
    (its :data:`EXPORT_METADATA` file), or ``None`` for a folder without that file."""
    metadata = folder / EXPORT_METADATA
    if not metadata.is_file():
        return None
    try:
        written = json.loads(metadata.read_text(encoding="utf-8"))
        return str(written["name"]), str(written["version"])
    except (OSError, UnicodeDecodeError, ValueError, KeyError, TypeError) as error:
        raise ModelLoadError(
            f"{metadata}: names no registered version ({type(error).__name__})"
        ) from None


@contextmanager
def _not_found_said(uri: str) -> Iterator[None]:
    """MLflow's "not found" for a registry alias (no such registered model, or no version holds
    the alias) as a :class:`ModelNotFoundError` that says what registers one; any other error
    as it is."""
    from mlflow.exceptions import MlflowException

    try:
        yield
    except MlflowException as error:
        # MLflow reports an alias that no version holds as an invalid parameter
        if error.error_code not in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE"):
            raise
        raise ModelNotFoundError(
            f"{uri}: not in the registry ({error.message}); `make pipeline` registers the "
            "champion once a model passes its quality gate"
        ) from None


def sklearn_flavor(model: ModelFolder) -> dict[str, Any]:
    """The ``sklearn`` section of the folder's ``MLmodel`` file."""
    try:
        flavor = model.mlmodel["flavors"]["sklearn"]
    except (OSError, UnicodeDecodeError, yaml.YAMLError, KeyError, TypeError) as error:
        raise ModelLoadError(
            f"{model.uri}: no scikit-learn model described in {MLMODEL} ({type(error).__name__})"
        ) from None
    if not isinstance(flavor, dict):
        raise ModelLoadError(f"{model.uri}: the sklearn flavor of {MLMODEL} is not a mapping")
    return flavor


def model_file(model: ModelFolder, flavor: dict[str, Any]) -> Path:
    """The file the flavor names, refused unless it lies inside the folder."""
    name = flavor.get("pickled_model")
    path = (model.path / str(name)).resolve()
    if not name or not path.is_relative_to(model.path.resolve()) or not path.is_file():
        raise ModelLoadError(f"{model.uri}: the model file {name!r} is not a file of the folder")
    return path


def refusal(flavor: dict[str, Any]) -> str | None:
    """Why the ``MLmodel`` file asks for trust this project does not give, or ``None``."""
    form = flavor.get("serialization_format", "pickle")  # MLflow's default when absent
    if form != SKOPS:
        return f"it is saved as {form!r}, which runs code from the file when loaded"
    listed = set(flavor.get("skops_trusted_types") or []) - TRUSTED_TYPES
    if listed:
        return f"its {MLMODEL} asks to trust {sorted(listed)}, outside the project's TRUSTED_TYPES"
    return None


def untrusted_content(path: Path) -> str | None:
    """Why the skops file holds types outside :data:`TRUSTED_TYPES`, or ``None``; reads the
    file's schema only, builds nothing."""
    import skops.io

    found = set(skops.io.get_untrusted_types(file=path)) - TRUSTED_TYPES
    return f"it holds {sorted(found)}, outside the project's TRUSTED_TYPES" if found else None


def unsafe(model: ModelFolder, reason: str) -> UnsafeModelError:
    return UnsafeModelError(
        f"{model.uri}: refused to load, {reason}. Load only models trained by this project; "
        "MODEL_ALLOW_PICKLE=true trusts the artifact to run code (only for sources you control)"
    )


def check_model(model: ModelFolder) -> None:
    """Raise :class:`UnsafeModelError` if the model would not load without
    ``MODEL_ALLOW_PICKLE``, without loading it."""
    flavor = sklearn_flavor(model)
    reason = refusal(flavor) or untrusted_content(model_file(model, flavor))
    if reason is not None:
        raise unsafe(model, reason)


def read_pipeline(model: ModelFolder) -> Any:
    """The scikit-learn pipeline of a fetched model folder, under the rule above."""
    import skops.io
    from skops.io.exceptions import UntrustedTypesFoundException

    flavor = sklearn_flavor(model)
    reason = refusal(flavor)
    if reason is None:
        path = model_file(model, flavor)
        try:
            return skops.io.load(path, trusted=sorted(TRUSTED_TYPES))
        except UntrustedTypesFoundException:
            reason = untrusted_content(path) or "skops refused its types"
        except ModuleNotFoundError as error:
            raise missing_library(model, error) from None
    if not get_settings().model_allow_pickle:
        raise unsafe(model, reason)
    logger.warning(
        "MODEL_ALLOW_PICKLE=true: loading a model that may run code from its files",
        extra={"model_uri": model.uri, "reason": reason},
    )
    import mlflow.sklearn

    try:
        return mlflow.sklearn.load_model(str(model.path))
    except ModuleNotFoundError as error:
        raise missing_library(model, error) from None


def missing_library(model: ModelFolder, error: ModuleNotFoundError) -> ModelLoadError:
    """The error for a model whose estimator's library this environment lacks: a LightGBM or
    XGBoost model where the extra is not installed (``uv sync --extra explain`` removes the one
    ``make setup`` installed, as ``uv sync`` removes whatever it is not asked for)."""
    library = (error.name or "").partition(".")[0]
    if library in LIBRARY_KINDS:
        # --inexact keeps what is installed besides (shap, jupyterlab)
        how = f"install it with 'uv sync --inexact --extra {library}'"
    else:
        how = "install it into this environment"
    return ModelLoadError(f"{model.uri}: the model needs {library!r}, not installed here: {how}")


def string_inputs(model: ModelFolder) -> frozenset[str]:
    """The input columns the signature MLflow logged with the model types as text
    (``string``): the model learnt their categories as text, whatever a reader guesses from
    the values of one file ("44" alone reads as a number). None without a signature."""
    signature = model.signature
    if signature is None or signature.inputs is None:
        return frozenset()
    specs = signature.inputs.inputs
    return frozenset(str(spec.name) for spec in specs if getattr(spec.type, "name", "") == "string")


# MLflow's column types as the data contract's; any other (string, boolean) is a category.
SIGNATURE_TYPES: dict[str, ColumnType] = {
    "double": "numeric",
    "float": "numeric",
    "long": "numeric",
    "integer": "numeric",
    "datetime": "datetime",
}


def input_schema(model: ModelFolder, schema: DataSchema) -> DataSchema:
    """``schema`` for the input columns the model was trained on, as the signature MLflow
    logged with it names them (:meth:`DataSchema.for_inputs`): a feature set to ``ignore``
    since still read, one added since not asked for. ``schema`` as is without a signature."""
    signature = model.signature
    if signature is None or signature.inputs is None or not signature.inputs.has_input_names():
        return schema
    return schema.for_inputs(
        {
            str(spec.name): SIGNATURE_TYPES.get(getattr(spec.type, "name", ""), "categorical")
            for spec in signature.inputs.inputs
        }
    )


def prediction_type(model: ModelFolder) -> pa.DataType:
    """The Arrow type of the model's predictions, from the signature MLflow logged with it
    (text without one): the type of a prediction column written without rows."""
    import pyarrow as pa

    signature = model.signature
    if signature is None or signature.outputs is None:
        return pa.string()
    dtype = signature.outputs.numpy_types()[0]
    return pa.string() if dtype.kind in "OUS" else pa.from_numpy_dtype(dtype)


def load_pipeline(uri: str) -> Any:
    """The scikit-learn pipeline behind a model folder or an MLflow model URI."""
    return read_pipeline(fetch_model(uri))
