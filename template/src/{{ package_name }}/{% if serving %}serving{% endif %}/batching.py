"""Micro-batching: small requests that arrive together are scored in one model call.

A model call has a fixed cost (scikit-learn's input checks and per-tree overhead; in the
compiled copy, one NumPy operation per tree level whatever the row count), so under concurrent
traffic scoring each request alone wastes most of the CPU. Requests queue their rows; the first
one schedules a flush with ``call_soon``, which runs once every request already in the event
loop's ready queue has queued too. No timer, so a lone request waits for nothing. (Serving
frameworks such as Ray Serve do this with a timeout; a few lines suffice inside one event loop
per worker.)
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass

from ..core.rows import Row
from . import telemetry
from .model import LoadedModel, Scored


@dataclass
class _Waiting:
    rows: Sequence[Row]
    future: asyncio.Future[Scored]


class MicroBatcher:
    """Coalesces concurrent predictions per model; results are exactly those of lone calls."""

    def __init__(self) -> None:
        self._queues: dict[int, tuple[LoadedModel, list[_Waiting]]] = {}

    async def score(self, model: LoadedModel, rows: Sequence[Row]) -> Scored:
        """``model.score(rows)``, possibly together with other requests."""
        loop = asyncio.get_running_loop()
        waiting = _Waiting(rows, loop.create_future())
        entry = self._queues.get(id(model))
        if entry is None:
            self._queues[id(model)] = (model, [waiting])
            loop.call_soon(self._flush, id(model))
        else:
            entry[1].append(waiting)
        return await waiting.future

    def _flush(self, key: int) -> None:
        model, batch = self._queues.pop(key)
        telemetry.BATCH_REQUESTS.observe(len(batch))
        if len(batch) > 1:
            try:
                scored = model.score([row for w in batch for row in w.rows])
            except Exception:  # noqa: S110 -- one request's rows may be at fault: retry alone
                pass
            else:
                parts = scored.split([len(w.rows) for w in batch])
                for waiting, part in zip(batch, parts, strict=True):
                    if not waiting.future.done():
                        waiting.future.set_result(part)
                return
        for waiting in batch:
            if waiting.future.done():  # the request was cancelled (client went away)
                continue
            try:
                waiting.future.set_result(model.score(waiting.rows))
            except Exception as error:  # handed to the request that caused it
                waiting.future.set_exception(error)
