"""``GET /metrics``: Prometheus text format."""

from __future__ import annotations

from fastapi import APIRouter, Response

from .. import telemetry

router = APIRouter(tags=["monitoring"])


@router.get("/metrics", response_class=Response)
async def prometheus() -> Response:
    """Request counts, latency histograms, rows scored and the model version."""
    return Response(telemetry.exposition(), media_type=telemetry.CONTENT_TYPE)
