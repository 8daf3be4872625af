"""Loading a model the service scores with, with its request contract and compiled copy."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..engine import CompiledPipeline, NotCompilableError, Row, compile_pipeline
from .contract import MAX_FIELD_BYTES, Contract, features_from_signature

logger = logging.getLogger(__name__)


class ModelUnavailableError(RuntimeError):
    """No model can score requests; the message says why (answered as 503)."""


@dataclass(frozen=True)
class LoadedModel:
    """A scikit-learn pipeline with the request contract of its signature.

    ``compiled`` is its NumPy copy (the engine's ``compile_pipeline``), proven at load to give
    the same predictions; it scores batches up to ``compiled_max_rows`` rows, where
    scikit-learn's fixed cost per call dominates. Larger batches go to the pipeline itself.
    """

    pipeline: Any
    uri: str
    version: str
    contract: Contract
    compiled: CompiledPipeline | None = None
    compiled_max_rows: int = 0
    # The trivial baseline (class priors or the mean), not a trained model: it answers only
    # where the operator chose it, and never makes the service ready.
    baseline: bool = False

    @property
    def scorer(self) -> str:
        """What answers requests: ``compiled`` (the checked copy; the library for batches over
        ``compiled_max_rows``), or the library of the model's final step alone."""
        return "compiled" if self.compiled is not None else library_of(self.pipeline)

    def predict(self, rows: Sequence[Row]) -> np.ndarray[Any, Any]:
        """Predictions for rows the contract validated."""
        if self.compiled is not None and len(rows) <= self.compiled_max_rows:
            return self.compiled.predict(rows)
        return np.asarray(self.pipeline.predict(self.contract.frame(rows)))


def library_of(model: Any) -> str:
    """The library whose code predicts for ``model`` (its final step's): ``sklearn``,
    ``lightgbm``, ``xgboost``; a class of this project's counts as the library it extends."""
    final = model.steps[-1][1] if hasattr(model, "steps") else model
    own = {str(__package__).partition(".")[0], "builtins"}
    roots = (cls.__module__.partition(".")[0] for cls in type(final).__mro__)
    return next((root for root in roots if root not in own), "unknown")


def _folder_version(folder: Path) -> str:
    from ..io.model_loader import exported_version

    exported = exported_version(folder)
    return exported[1] if exported else f"local:{folder.name}"


def compile_checked(pipeline: Any, contract: Contract) -> CompiledPipeline | None:
    """The pipeline's NumPy copy if it predicts exactly as the pipeline does on check rows
    (missing values, unseen categories, far-off numbers), else ``None``: scikit-learn scores."""
    if contract.booleans:
        return None
    try:
        compiled = compile_pipeline(pipeline)
        rows = [dict.fromkeys(contract.names) | row for row in compiled.check_rows()]
        same = np.array_equal(compiled.predict(rows), pipeline.predict(contract.frame(rows)))
    except NotCompilableError as error:
        logger.info(
            "scoring with the model's library only",
            extra={"library": library_of(pipeline), "reason": str(error)},
        )
        return None
    except Exception as error:  # a surprise in the copy must never stop the service
        logger.warning("cannot compile the pipeline", extra={"reason": repr(error)})
        return None
    if not same:
        logger.warning("the compiled pipeline disagrees with the model's library; not using it")
        return None
    return compiled


def load_served_model(
    uri: str,
    *,
    max_batch_size: int,
    allow_missing: bool,
    compiled_max_rows: int = 0,
    max_field_bytes: int = MAX_FIELD_BYTES,
) -> LoadedModel:
    """Load a model folder or MLflow URI through the project's loader (``io/model_loader.py``:
    skops only, registry aliases pinned to a version), with its signature's contract.

    With ``compiled_max_rows`` > 0, batches up to that size are scored by the pipeline's
    checked NumPy copy when one can be made.
    """
    from mlflow.models import Model

    from ..io.model_loader import fetch_model, read_pipeline

    fetched = fetch_model(uri)
    pipeline = read_pipeline(fetched)
    contract = Contract(
        features_from_signature(Model.load(str(fetched.path)).signature),
        max_batch_size=max_batch_size,
        allow_missing=allow_missing,
        max_field_bytes=max_field_bytes,
    )
    # One prediction now: it proves the model can score (else the service is not ready) and
    # pays scikit-learn's first-call costs before the first request does.
    pipeline.predict(contract.frame([dict.fromkeys(contract.names)]))
    compiled = compile_checked(pipeline, contract) if compiled_max_rows > 0 else None
    return LoadedModel(
        pipeline=pipeline,
        uri=fetched.uri,
        version=fetched.version or _folder_version(fetched.path),
        contract=contract,
        compiled=compiled,
        compiled_max_rows=compiled_max_rows,
    )
