"""Scoring a validated batch, then handing the result to the post-prediction hooks."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..core.rows import Row
from .batching import MicroBatcher
from .model import LoadedModel, Scored
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
    # The numeric inputs the model read (NaN where missing), columns ``numeric``: the
    # prediction log takes these instead of converting the rows a second time.
    numbers: np.ndarray[Any, Any]
    numeric: list[str]
    numbers_only: bool  # the model has no other inputs: ``numbers`` holds every one
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
    batcher: MicroBatcher = field(default_factory=MicroBatcher)

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
        numbers: np.ndarray[Any, Any] | None = None,
    ) -> tuple[list[Any], LoadedModel]:
        """Predictions for validated ``rows`` as JSON-ready values, and the model that made them.

        If the model breaks (anything but a ``ValueError`` about the values), the holder takes
        it out of service and names the model that answers instead (``ModelHolder.retire``).
        ``numbers``: the rows' numeric inputs in ``model.contract.numeric`` order, when the
        parser read them.
        """
        start = time.perf_counter()
        try:
            scored = await self._score(model, rows, numbers)
        except ValueError as error:
            raise ScoringError(f"the model could not score these rows: {error}") from None
        except Exception as error:
            replacement = self.holder.retire(model, error)
            if replacement is None:
                raise
            model = replacement
            scored = await self._score(model, rows, None)  # its columns may differ
        if self.hooks:
            event = PredictionEvent(
                request_id=request_id,
                route=route,
                rows=rows,
                predictions=scored.predictions,
                numbers=scored.numbers,
                numeric=scored.numeric,
                numbers_only=not model.contract.other,
                model_version=model.version,
                served_by=self.holder.role(model),
                latency_s=time.perf_counter() - start,
            )
            for hook in self.hooks:
                try:
                    hook(event)
                except Exception:  # a hook must never fail a prediction
                    logger.exception("prediction hook %r failed", hook)
        result: list[Any] = scored.predictions.tolist()
        return result, model

    async def _score(
        self, model: LoadedModel, rows: Sequence[Row], numbers: np.ndarray[Any, Any] | None
    ) -> Scored:
        if len(rows) <= self.coalesce_rows:
            return await self.batcher.score(model, rows)
        return model.score(rows, numbers)
