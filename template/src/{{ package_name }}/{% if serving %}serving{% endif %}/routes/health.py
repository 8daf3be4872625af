"""Liveness (``/health``) and readiness (``/ready``: is a model loaded, and if not, why)."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from ..deps import HolderDep
from ..schemas import Health, Readiness

router = APIRouter(tags=["health"])


@router.get("/health")
async def health() -> Health:
    """200 while the process is alive."""
    return Health(status="ok")


@router.get("/ready", responses={503: {"model": Readiness, "description": "No model loaded"}})
async def ready(holder: HolderDep) -> JSONResponse:
    """200 when a model is loaded; 503 with the reason otherwise."""
    model = holder.active
    if model is None:
        body = Readiness(status="unavailable", reason=holder.error or "no model is loaded")
        return JSONResponse(body.model_dump(), status_code=503)
    if model is holder.fallback:  # still 200: requests are answered, by the fallback model
        body = Readiness(
            status="fallback", model_uri=model.uri, model_version=model.version, reason=holder.error
        )
        return JSONResponse(body.model_dump())
    body = Readiness(status="ready", model_uri=model.uri, model_version=model.version)
    if holder.canary is not None:
        body.canary_version, body.canary_share = holder.canary.version, holder.canary_share
    return JSONResponse(body.model_dump())
