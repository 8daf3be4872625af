"""``POST /invocations``: MLflow's scoring protocol, answered like ``mlflow models serve``."""

from __future__ import annotations

from collections.abc import Sequence

import msgspec
from fastapi import APIRouter, Request, Response
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError

from ...engine import Row, parse_large_in_thread, records_from_csv, records_from_json
from ..contract import Contract
from ..deps import CSV, JSON, PredictorDep, media_type
from ..errors import located
from ..logs import CURRENT_REQUEST_ID
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
    parse = csv_rows if media == CSV else json_rows
    rows = await parse_large_in_thread(lambda raw: parse(raw, contract), body)
    predictions, _ = await predictor.score(model, rows, route=ROUTE, request_id=request_id)
    ROWS.labels(route=ROUTE).inc(len(rows))
    answer = msgspec.json.encode({"predictions": predictions})
    return Response(answer, media_type="application/json")


def json_rows(body: bytes, contract: Contract) -> Sequence[Row]:
    """The validated rows of a JSON body (plain numbers: through the engine's shortcut)."""
    plain = contract.parse_plain_records(body)
    if plain is not None:
        return plain
    key, records = records_from_json(body, contract.shape)
    return _validated(contract, records, key)


def csv_rows(body: bytes, contract: Contract) -> Sequence[Row]:
    records = records_from_csv(
        body, contract.limits, booleans=contract.booleans, strings=contract.strings
    )
    return _validated(contract, records, "csv")


def _validated(contract: Contract, records: object, key: str) -> Sequence[Row]:
    try:
        return contract.validate_rows(records)
    except ValidationError as error:
        raise RequestValidationError(located(error, "body", key)) from None
