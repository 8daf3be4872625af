"""Error answers: bounded in size, never echoing the input, never a 500.

A 422 lists at most ``MAX_ERRORS`` problems, in FastAPI's ``{"loc", "msg", "type"}`` form,
then one saying how many more there were; each location part and message is cut to
``MAX_TEXT`` characters (a feature name or a key comes from the client). Texts that may hold an
error from a library or a URI go through :func:`redact`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import ValidationError

from ..engine import ProtocolError
from ..redaction import redact

MAX_ERRORS = 20
MAX_TEXT = 200
# Past this many, pydantic's error list costs more to build than the request did to send.
MAX_LISTED = 10_000
# Seconds a client should wait before it tries again.
RETRY_AFTER_NO_MODEL = "30"


def clip(text: str, limit: int = MAX_TEXT) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def bounded(items: Iterable[Mapping[str, Any]], total: int | None = None) -> list[dict[str, Any]]:
    """The first ``MAX_ERRORS`` errors (location, message, type only), then their count."""
    kept: list[dict[str, Any]] = []
    count = 0
    for item in items:
        count += 1
        if len(kept) < MAX_ERRORS:
            kept.append(
                {
                    "loc": [
                        part if isinstance(part, int) else clip(str(part)) for part in item["loc"]
                    ],
                    "msg": clip(str(item["msg"])),
                    "type": clip(str(item["type"]), 64),
                }
            )
    more = (total if total is not None else count) - len(kept)
    if more > 0:
        kept.append({"loc": ["body"], "msg": f"and {more} more errors", "type": "too_many_errors"})
    return kept


def located(error: ValidationError, *prefix: str | int) -> list[dict[str, Any]]:
    """Pydantic's errors as a bounded 422 ``detail``, each location under ``prefix``."""
    total = error.error_count()
    if total > MAX_LISTED:
        msg = f"{total} invalid values; does each row hold exactly the model's features?"
        return [{"loc": list(prefix), "msg": msg, "type": "too_many_errors"}]
    items = error.errors(include_url=False, include_input=False, include_context=False)
    return bounded(({**item, "loc": [*prefix, *item["loc"]]} for item in items), total)


def invalid(request: Request, error: Exception) -> JSONResponse:
    """422 for any request FastAPI or a route found invalid."""
    items = error.errors() if isinstance(error, RequestValidationError) else []
    return JSONResponse({"detail": bounded(items)}, status_code=422)


def bad_protocol(request: Request, error: Exception) -> JSONResponse:
    detail = error.detail if isinstance(error, ProtocolError) else []
    return JSONResponse({"detail": bounded(detail)}, status_code=422)


def unscorable(request: Request, error: Exception) -> JSONResponse:
    """422: the model refused values the contract accepted; its reason, redacted."""
    detail = [{"loc": ["body"], "msg": clip(redact(str(error))), "type": "value_error"}]
    return JSONResponse({"detail": detail}, status_code=422)


def unavailable(request: Request, error: Exception) -> JSONResponse:
    """503: no model can answer; why, redacted."""
    return JSONResponse(
        {"detail": clip(redact(str(error)), 1000)},
        status_code=503,
        headers={"Retry-After": RETRY_AFTER_NO_MODEL},
    )
