"""Scoring a validated batch, then handing the result to the post-prediction hooks."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from .batching import MicroBatcher
from .contract import Row
from .model import LoadedModel, ModelHolder

logger = logging.getLogger(__name__)


class ScoringError(ValueError):
    """The model refused values that passed the contract (answered as 422)."""


@dataclass(frozen=True)
class PredictionEvent:
    """What a hook sees of one scored request."""

    request_id: str
    route: str
    features: pd.DataFrame
    predictions: np.ndarray[Any, Any]
    model_version: str
    latency_s: float


# Hooks run on the event loop right after scoring: they must only hand the event over (e.g.
# put it on a queue that a thread drains), never do I/O themselves.
PredictionHook = Callable[[PredictionEvent], None]


@dataclass
class Predictor:
    """The one object the prediction routes call: model lookup, scoring, hooks."""

    holder: ModelHolder
    hooks: list[PredictionHook] = field(default_factory=list)
    # Requests of at most this many rows are scored together with concurrent ones (0: never).
    coalesce_rows: int = 64
    batcher: MicroBatcher = field(default_factory=MicroBatcher)

    def model(self) -> LoadedModel:
        """The model to use; raises ``ModelUnavailableError`` (503) when there is none."""
        return self.holder.require()

    async def score(
        self, model: LoadedModel, rows: list[Row], *, route: str, request_id: str
    ) -> tuple[list[Any], LoadedModel]:
        """Predictions for validated ``rows`` as JSON-ready values, and the model that made them.

        If the model breaks (anything but a ``ValueError`` about the values) and the holder has
        a fallback, the fallback answers from now on and the holder says why.
        """
        start = time.perf_counter()
        features = model.contract.frame(rows)
        try:
            if len(rows) <= self.coalesce_rows:
                predictions = await self.batcher.predict(model, features)
            else:
                predictions = model.pipeline.predict(features)
        except ValueError as error:
            raise ScoringError(f"the model could not score these rows: {error}") from None
        except Exception as error:
            fallback = self.holder.fallback
            if fallback is None or model is fallback:
                raise
            logger.exception("model %s failed; the fallback answers from now on", model.version)
            self.holder.primary = None
            self.holder.error = f"model {model.version} failed to predict: {error!r}"
            model, features = fallback, fallback.contract.frame(rows)
            predictions = model.pipeline.predict(features)
        if self.hooks:
            event = PredictionEvent(
                request_id=request_id,
                route=route,
                features=features,
                predictions=predictions,
                model_version=model.version,
                latency_s=time.perf_counter() - start,
            )
            for hook in self.hooks:
                try:
                    hook(event)
                except Exception:  # a hook must never fail a prediction
                    logger.exception("prediction hook %r failed", hook)
        result: list[Any] = predictions.tolist()
        return result, model
