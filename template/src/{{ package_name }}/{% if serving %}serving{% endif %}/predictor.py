"""Scoring a validated batch, then handing the result to the post-prediction hooks."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..core.models import nonfinite_rows
from ..engine import MicroBatcher, Row
from . import telemetry
from .model import LoadedModel
from .rollout import ModelHolder

logger = logging.getLogger(__name__)


class ScoringError(ValueError):
    """The model refused values that passed the contract (answered as 422)."""


@dataclass(frozen=True)
class PredictionEvent:
    """What a hook sees of one scored request."""

    request_id: str
    route: str
    rows: Sequence[Row]
    predictions: np.ndarray[Any, Any]
    model_version: str
    served_by: str  # champion, canary or fallback
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
    batcher: MicroBatcher = field(
        default_factory=lambda: MicroBatcher(observe=telemetry.BATCH_REQUESTS.observe)
    )

    def model(self) -> LoadedModel:
        """The model for a request (the canary's share goes to the canary); raises
        ``ModelUnavailableError`` (503) when there is none."""
        return self.holder.for_request()

    async def score(
        self,
        model: LoadedModel,
        rows: Sequence[Row],
        *,
        route: str,
        request_id: str,
    ) -> tuple[list[Any], LoadedModel]:
        """Predictions for validated ``rows`` as JSON-ready values, and the model that made them.

        If the model breaks (anything but a ``ValueError`` about the values), the holder takes
        it out of service and names the model that answers instead (``ModelHolder.retire``).
        """
        start = time.perf_counter()
        try:
            predictions = await self._predict(model, rows)
        except ValueError as error:
            raise ScoringError(f"the model could not score these rows: {error}") from None
        except Exception as error:
            replacement = self.holder.retire(model, error)
            if replacement is None:
                raise
            model = replacement
            predictions = await self._predict(model, rows)
        if len(bad := nonfinite_rows(predictions)):
            telemetry.NONFINITE_PREDICTIONS.inc(len(bad))
            logger.warning("non-finite predictions refused", extra={"rows": len(bad)})
            raise ScoringError(
                f"the model gave no finite prediction for row(s) {bad[:10].tolist()} "
                "(NaN or infinite); nothing was answered for this request"
            )
        if self.hooks:
            event = PredictionEvent(
                request_id=request_id,
                route=route,
                rows=rows,
                predictions=predictions,
                model_version=model.version,
                served_by=self.holder.role(model),
                latency_s=time.perf_counter() - start,
            )
            for hook in self.hooks:
                try:
                    hook(event)
                except Exception:  # a hook must never fail a prediction
                    logger.exception("prediction hook %r failed", hook)
        result: list[Any] = predictions.tolist()
        return result, model

    async def _predict(self, model: LoadedModel, rows: Sequence[Row]) -> np.ndarray[Any, Any]:
        if len(rows) <= self.coalesce_rows:
            return await self.batcher.predict(model, rows)
        return model.predict(rows)
