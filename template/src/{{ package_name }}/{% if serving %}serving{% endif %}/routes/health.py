"""Liveness (``/health``) and readiness (``/ready``: does a real model serve, and if not, why)."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from ...redaction import redact
from ..deps import HolderDep
from ..errors import RETRY_AFTER_NO_MODEL, clip
from ..schemas import Health, Readiness

router = APIRouter(tags=["health"])
NOT_READY = {"Retry-After": RETRY_AFTER_NO_MODEL}


# HEAD too (left out of the schema): uptime checks and load balancers that probe with it get
# the status GET would.
@router.get("/health")
@router.head("/health", include_in_schema=False)
async def health() -> Health:
    """200 while the process is alive."""
    return Health(status="ok")


@router.get(
    "/ready",
    responses={503: {"model": Readiness, "description": "No real model serves: the reason"}},
)
@router.head("/ready", include_in_schema=False)
async def ready(holder: HolderDep) -> JSONResponse:
    """200 when a real model serves (the champion, a previous registered version, or the model
    given); 503 with the reason when none does, or only the trivial baseline answers."""
    model = holder.active
    reason = clip(redact(holder.error), 1000) if holder.error else None
    if model is None:
        body = Readiness(status="unavailable", reason=reason or "no model is loaded")
        return JSONResponse(body.model_dump(), status_code=503, headers=NOT_READY)
    body = Readiness(
        status="ready",
        model_uri=redact(model.uri),
        model_version=model.version,
        scorer=model.scorer,
    )
    if model is holder.fallback:  # answers instead of the champion: say so, and why
        body.status, body.reason = "fallback", reason
        if model.baseline:  # the operator's choice, but no model: not ready
            return JSONResponse(body.model_dump(), status_code=503, headers=NOT_READY)
    elif holder.canary is not None:
        body.canary_version, body.canary_share = holder.canary.version, holder.canary_share
    return JSONResponse(body.model_dump())
