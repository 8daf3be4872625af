"""Request dependencies, as ``Annotated`` aliases for the routes' signatures.

They are ``async`` on purpose: FastAPI runs a plain ``def`` dependency in its thread pool, a
thread hop per dependency and request that cost more than scoring a row.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, HTTPException, Request, status

from .model import ModelHolder
from .predictor import Predictor
from .settings import ServingSettings


async def get_settings(request: Request) -> ServingSettings:
    settings: ServingSettings = request.app.state.settings
    return settings


async def get_holder(request: Request) -> ModelHolder:
    holder: ModelHolder = request.app.state.holder
    return holder


async def get_predictor(request: Request) -> Predictor:
    predictor: Predictor = request.app.state.predictor
    return predictor


JSON = "application/json"
CSV = "text/csv"


def media_type(request: Request, *accepted: str) -> str:
    """The request body's media type when it is one of ``accepted``, else a 415: a browser
    may post ``text/plain`` or a form to any site without asking, JSON it may not."""
    given = ""
    for name, value in request.scope["headers"]:  # on every request: no Headers object
        if name == b"content-type":
            given = value.partition(b";")[0].strip().lower().decode("latin-1")
            break
    if given not in accepted:
        raise HTTPException(
            status.HTTP_415_UNSUPPORTED_MEDIA_TYPE, f"Content-Type must be {' or '.join(accepted)}"
        )
    return given


async def json_body(request: Request) -> None:
    """Dependency of routes whose body FastAPI reads: JSON only."""
    media_type(request, JSON)


SettingsDep = Annotated[ServingSettings, Depends(get_settings)]
HolderDep = Annotated[ModelHolder, Depends(get_holder)]
PredictorDep = Annotated[Predictor, Depends(get_predictor)]
