"""``POST /invocations``: MLflow's scoring protocol, answered like ``mlflow models serve``."""

from __future__ import annotations

import json
from collections.abc import Sequence

from fastapi import APIRouter, Request, Response
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError

from ...core.rows import Row
from ..contract import Contract
from ..deps import CSV, JSON, PredictorDep, media_type
from ..errors import located
from ..limits import parse_large_in_thread
from ..logs import CURRENT_REQUEST_ID
from ..plain_json import Array
from ..protocol import records_from_csv, records_from_json
from ..schemas import ERRORS, InvocationsResponse
from ..telemetry import ROWS

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
    media = media_type(request, JSON, CSV)
    request_id = CURRENT_REQUEST_ID.get()
    model = predictor.model()
    contract = model.contract
    body = await request.body()
    if media == CSV:
        rows, numbers = await parse_large_in_thread(
            lambda raw: (csv_rows(raw, contract), None), body
        )
    else:
        rows, numbers = await parse_large_in_thread(lambda raw: json_rows(raw, contract), body)
    predictions, _ = await predictor.score(
        model, rows, route=ROUTE, request_id=request_id, numbers=numbers
    )
    ROWS.labels(route=ROUTE).inc(len(rows))
    return Response(json.dumps({"predictions": predictions}), media_type="application/json")


def json_rows(body: bytes, contract: Contract) -> tuple[Sequence[Row], Array | None]:
    """The validated rows of a JSON body and, from the shortcut (plain_json.py), their
    numeric columns."""
    plain = contract.parse_plain_records(body)
    if plain is not None:
        return plain
    key, records = records_from_json(body, contract)
    return _validated(contract, records, key), None


def csv_rows(body: bytes, contract: Contract) -> Sequence[Row]:
    return _validated(contract, records_from_csv(body, contract), "csv")


def _validated(contract: Contract, records: object, key: str) -> Sequence[Row]:
    try:
        return contract.validate_rows(records)
    except ValidationError as error:
        raise RequestValidationError(located(error, "body", key)) from None
