"""``POST /predict``: ``{"instances": [...]}`` -> ``{"predictions": [...], "model_version"}``."""

from __future__ import annotations

from typing import Any

import msgspec
from fastapi import APIRouter, Request, Response
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError

from ...engine import parse_large_in_thread
from ..deps import JSON, PredictorDep, media_type
from ..errors import located
from ..logs import CURRENT_REQUEST_ID
from ..schemas import ERRORS, PredictResponse
from ..telemetry import ROWS

router = APIRouter(tags=["predict"])
ROUTE = "/predict"
# The body's schema is the model's: the app fills in `PredictRequest` at start-up.
BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {"schema": {"$ref": "#/components/schemas/PredictRequest"}}
        },
    }
}


@router.post(
    ROUTE,
    response_model=None,
    responses={200: {"model": PredictResponse}, **ERRORS},
    openapi_extra=BODY,
)
async def predict(request: Request, predictor: PredictorDep) -> Response:
    """Score a batch of rows; every feature of the model is required in each row."""
    media_type(request, JSON)
    request_id = CURRENT_REQUEST_ID.get()
    model = predictor.model()
    body = await request.body()
    try:
        rows = await parse_large_in_thread(model.contract.parse_predict, body)
    except ValidationError as error:
        raise RequestValidationError(located(error, "body")) from None
    # Scoring runs on the event loop (no thread hop), with concurrent requests (MicroBatcher).
    predictions, model = await predictor.score(model, rows, route=ROUTE, request_id=request_id)
    ROWS.labels(route=ROUTE).inc(len(rows))
    answer: dict[str, Any] = {"predictions": predictions, "model_version": model.version}
    if model is predictor.holder.fallback:  # which kind; why the champion is not is in /ready
        answer["fallback"] = "baseline" if model.baseline else "previous"
    return Response(msgspec.json.encode(answer), media_type="application/json")
