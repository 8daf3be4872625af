"""Release strategies: which model answers a request, and which one scores beside it in shadow.

The champion (or the model given) answers. When it cannot, its previous registered version
does (``SERVING_ROLLOUT_FALLBACK``; the trivial baseline only where the operator chose it). The
challenger answers a ``SERVING_ROLLOUT_CANARY_SHARE`` of the requests, drawn by the service, and
scores in shadow where the prediction log records it (``SERVING_ROLLOUT_SHADOW``). Every model
loads through the project's loader (``io/model_loader.py``).
"""

from __future__ import annotations

import logging
import random
from dataclasses import dataclass
from typing import Any, Protocol

import pandas as pd

from ..config import CHAMPION, get_settings
from ..core.models import build_baseline
from ..predict import resolve_model_uri
from ..redaction import redact
from . import telemetry
from .contract import Contract, FeatureSpec
from .model import LoadedModel, ModelUnavailableError, load_served_model
from .settings import ServingSettings

logger = logging.getLogger(__name__)
CHALLENGER_ALIAS = "challenger"

# The canary's share is drawn from the system's random source for each request. A draw from the
# request id (even a keyed hash of it) would let a client that sees which model answered keep
# the ids that reached the arm it wants, and send them again.
_draw = random.SystemRandom().random


@dataclass
class ModelHolder:
    """The models in service, or the reason there is none.

    ``primary`` (the champion or the model given) answers; ``fallback`` answers when it is
    missing; ``canary`` answers a ``canary_share`` of the requests while the primary is healthy.
    """

    primary: LoadedModel | None = None
    error: str | None = None
    fallback: LoadedModel | None = None
    canary: LoadedModel | None = None
    canary_share: float = 0.0

    @property
    def active(self) -> LoadedModel | None:
        return self.primary or self.fallback

    def require(self) -> LoadedModel:
        """The model to score with; raises :class:`ModelUnavailableError` with the reason."""
        model = self.active
        if model is None:
            raise ModelUnavailableError(self.error or "no model is loaded")
        return model

    def for_request(self) -> LoadedModel:
        """The canary for its share of requests, drawn at random (only beside a healthy
        primary), else :meth:`require`."""
        if self.canary is not None and self.primary is not None and _draw() < self.canary_share:
            return self.canary
        return self.require()

    def role(self, model: LoadedModel) -> str:
        """How ``model`` serves: ``champion``, ``canary`` or ``fallback``."""
        if model is self.canary:
            return "canary"
        return "fallback" if model is self.fallback else "champion"

    def retire(self, model: LoadedModel, error: Exception) -> LoadedModel | None:
        """Take a model that failed to predict out of service; the model that answers instead
        (a failed canary leaves its share to the primary, a failed primary its requests to the
        fallback), or ``None``."""
        if model is self.canary:
            logger.exception("canary %s failed; the champion answers its share", model.version)
            self.canary = None
            return self.active
        if self.fallback is None or model is self.fallback:
            return None
        logger.exception("model %s failed; the fallback answers from now on", model.version)
        self.primary = None
        self.error = redact(f"model {model.version} failed to predict: {error!r}")
        telemetry.FALLBACK.set(1)
        return self.fallback


class TrainingSample(Protocol):
    """Rows the trivial baseline is fitted on, with their summary (``task``, ``features``,
    ``numeric``, ``target``): the monitoring feature's reference profile."""

    @property
    def sample(self) -> pd.DataFrame: ...

    @property
    def summary(self) -> dict[str, Any]: ...


def _load(uri: str, serving: ServingSettings) -> LoadedModel:
    return load_served_model(
        uri,
        max_batch_size=serving.max_batch_size,
        allow_missing=serving.allow_missing,
        compiled_max_rows=serving.compiled_max_rows,
        max_field_bytes=serving.max_field_bytes,
    )


def load_primary(serving: ServingSettings) -> ModelHolder:
    """Load the configured model (the champion by default); on failure, keep the reason."""
    from ..io.model_loader import connect

    project = get_settings()
    connect(project)
    uri = resolve_model_uri(serving.model_uri or None, project.model_name)
    try:
        model = _load(uri, serving)
    except Exception as error:  # any failure must leave the process up and say why
        reason = redact(f"cannot load {uri}: {type(error).__name__}: {error}")
        logger.error("model not loaded", extra={"reason": reason})
        return ModelHolder(error=reason)
    logger.info(
        "model loaded",
        extra={
            "model_uri": model.uri,
            "model_version": model.version,
            "compiled": model.compiled is not None,
            "scorer": model.scorer,
        },
    )
    return ModelHolder(primary=model)


def previous_version(model_name: str) -> str | None:
    """The newest registered version older than the one holding the champion alias."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient()
    try:
        champion = int(client.get_model_version_by_alias(model_name, CHAMPION).version)
        versions = client.search_model_versions(f"name = '{model_name}'")
    except Exception:  # no registry, no alias: there is no previous version to go back to
        return None
    older = [int(v.version) for v in versions if int(v.version) < champion]
    return str(max(older)) if older else None


def baseline_model(training: TrainingSample, serving: ServingSettings) -> LoadedModel:
    """Class priors (or the training mean), fitted on the training sample: always loadable."""
    summary = training.summary
    features = [
        FeatureSpec(name, "number" if name in summary["numeric"] else "string")
        for name in summary["features"]
    ]
    sample = training.sample
    pipeline = build_baseline(summary["task"]).fit(
        sample[summary["features"]], sample[summary["target"]]
    )
    contract = Contract(
        features,
        max_batch_size=serving.max_batch_size,
        allow_missing=serving.allow_missing,
        max_field_bytes=serving.max_field_bytes,
    )
    return LoadedModel(
        pipeline=pipeline, uri="baseline", version="baseline", contract=contract, baseline=True
    )


def install_fallback(
    holder: ModelHolder, serving: ServingSettings, training: TrainingSample | None
) -> None:
    """Give the holder a model to answer when the champion cannot: ``SERVING_ROLLOUT_FALLBACK``.

    ``previous`` (the default): when the registry's champion does not load, its previous
    registered version. ``baseline``: that, else the trivial baseline fitted on ``training``
    (the reference profile, with monitoring); and beside a champion that loaded, the baseline,
    in case it fails to predict later. ``none``: nothing. A model given explicitly
    (``SERVING_MODEL_URI``) that does not load is a deployment error: no fallback, ``/ready``
    answers 503 with the reason.
    """
    chosen = serving.rollout.fallback
    if chosen == "none":
        return
    if holder.primary is not None:
        if chosen == "baseline" and training is not None:
            holder.fallback = baseline_model(training, serving)
        return
    if serving.model_uri:
        return
    model_name = get_settings().model_name
    previous = previous_version(model_name)
    if previous is not None:
        try:
            holder.fallback = _load(f"models:/{model_name}/{previous}", serving)
        except Exception as error:  # then the baseline, if chosen
            logger.error("previous version not loadable", extra={"reason": redact(str(error))})
    if holder.fallback is None and chosen == "baseline":
        if training is None:
            logger.error("no baseline: it is fitted on the reference profile, and there is none")
        else:
            holder.fallback = baseline_model(training, serving)
    if holder.fallback is not None:
        logger.warning(
            "champion unavailable, serving the fallback",
            extra={"reason": holder.error, "model_version": holder.fallback.version},
        )


def load_challenger(serving: ServingSettings) -> LoadedModel | None:
    """The challenger (``SERVING_ROLLOUT_CHALLENGER_URI``, else the registry's ``challenger``
    alias), or ``None`` when there is none or it does not load (the reason is logged)."""
    from mlflow.exceptions import MlflowException

    from ..io.model_loader import ModelNotFoundError

    given = serving.rollout.challenger_uri
    uri = given or f"models:/{get_settings().model_name}@{CHALLENGER_ALIAS}"
    try:
        challenger = _load(uri, serving)
    except (MlflowException, ModelNotFoundError):
        if given:
            logger.error("challenger not loadable", extra={"model_uri": redact(uri)})
        return None  # no challenger alias: nothing to release
    except Exception as error:
        logger.error("challenger not loadable", extra={"reason": redact(str(error))})
        return None
    logger.info("challenger loaded", extra={"model_version": challenger.version})
    return challenger


def fitting(
    challenger: LoadedModel | None, served: LoadedModel | None, *, answers: bool
) -> LoadedModel | None:
    """``challenger``, if it can score the rows of every request ``served``'s contract accepts
    (the schema ``/openapi.json`` shows); a canary (``answers``) must accept exactly those
    requests, or a share of them would be refused at random. Else ``None``, and the log says
    which features differ."""
    if challenger is None or served is None:
        return challenger
    accepted, needed = set(served.contract.features), set(challenger.contract.features)
    unknown = sorted(spec.name for spec in needed - accepted)
    unused = sorted(spec.name for spec in accepted - needed) if answers else []
    if not unknown and not unused:
        return challenger
    logger.error(
        "challenger not used: its features differ from those of the model that answers",
        extra={
            "model_version": challenger.version,
            "role": "canary" if answers else "shadow",
            "features_it_needs_in_addition": unknown,
            "features_it_does_not_take": unused,
        },
    )
    return None


def start(serving: ServingSettings, training: TrainingSample | None) -> ModelHolder:
    """The models of the service at start-up: the primary, its fallback, the canary."""
    holder = load_primary(serving)
    install_fallback(holder, serving, training)
    share = serving.rollout.canary_share
    if share > 0:
        canary = fitting(load_challenger(serving), holder.active, answers=True)
        holder.canary, holder.canary_share = canary, share
    return holder


def shadow_model(holder: ModelHolder, serving: ServingSettings) -> LoadedModel | None:
    """The model to score in shadow (it never answers): the challenger, unless
    ``SERVING_ROLLOUT_SHADOW`` is off. Asked once at start-up by what records its predictions."""
    if not serving.rollout.shadow:
        return None
    if serving.rollout.canary_share > 0:
        return holder.canary  # loaded already (None when it did not load or fit)
    return fitting(load_challenger(serving), holder.active, answers=False)
