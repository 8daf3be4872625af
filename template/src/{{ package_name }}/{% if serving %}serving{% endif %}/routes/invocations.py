"""``POST /invocations``: MLflow's scoring protocol, answered like ``mlflow models serve``."""

from __future__ import annotations

import json

from fastapi import APIRouter, Request, Response
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError

from ..contract import located
from ..deps import PredictorDep
from ..logs import REQUEST_ID
from ..metrics import ROWS
from ..protocol import records_from_csv, records_from_json
from ..schemas import ERRORS, InvocationsResponse

router = APIRouter(tags=["predict"])
ROUTE = "/invocations"
BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {"schema": {"$ref": "#/components/schemas/InvocationsRequest"}},
            "text/csv": {"schema": {"type": "string"}},
        },
    }
}


@router.post(
    ROUTE,
    response_model=None,
    responses={200: {"model": InvocationsResponse}, **ERRORS},
    openapi_extra=BODY,
)
async def invocations(request: Request, predictor: PredictorDep) -> Response:
    """Score ``dataframe_records``, ``dataframe_split``, ``instances``, ``inputs`` or CSV."""
    request_id = REQUEST_ID.get()
    model = predictor.model()
    body = await request.body()
    csv = request.headers.get("content-type", "").startswith("text/csv")
    plain = None if csv else model.contract.parse_plain_records(body)
    if plain is not None:  # see plain_json.py
        rows, numbers = plain
    else:
        numbers = None
        if csv:
            key, records = "csv", records_from_csv(body, model.contract.other)
        else:
            key, records = records_from_json(body)
        try:
            rows = model.contract.validate_rows(records)
        except ValidationError as error:
            raise RequestValidationError(located(error, "body", key)) from None
    predictions, _ = await predictor.score(
        model, rows, route=ROUTE, request_id=request_id, numbers=numbers
    )
    ROWS.labels(route=ROUTE).inc(len(rows))
    return Response(json.dumps({"predictions": predictions}), media_type="application/json")
