"""Request dependencies, as ``Annotated`` aliases for the routes' signatures.

They are ``async`` on purpose: FastAPI runs a plain ``def`` dependency in its thread pool, a
thread hop per dependency and request that cost more than scoring a row.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, HTTPException, Request, Security, status
from fastapi.openapi.models import HTTPBearer as BearerScheme
from fastapi.security.base import SecurityBase
from starlette.datastructures import Headers

from .auth import ApiKey, Guard, Scope
from .predictor import Predictor
from .rollout import ModelHolder
from .settings import ServingSettings


async def get_serving_settings(request: Request) -> ServingSettings:
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


SettingsDep = Annotated[ServingSettings, Depends(get_serving_settings)]
HolderDep = Annotated[ModelHolder, Depends(get_holder)]
PredictorDep = Annotated[Predictor, Depends(get_predictor)]


class ApiKeyCheck(SecurityBase):
    """The key check of one scope, as a single dependency (FastAPI resolves each dependency of
    a request in turn: ``HTTPBearer`` and ``APIKeyHeader`` beside it would cost three).

    Declared as an HTTP bearer scheme, so ``/docs`` asks for the key; ``X-API-Key: <key>`` is
    read as well.
    """

    def __init__(self, scope: Scope) -> None:
        self.model = BearerScheme(description="an API key, or send it as `X-API-Key: <key>`")
        self.scheme_name = "APIKey"
        self.scope = scope

    async def __call__(self, request: Request) -> ApiKey:
        guard: Guard = request.app.state.guard
        return guard.admit(self.scope, presented_key(request.headers))


def presented_key(headers: Headers) -> str | None:
    """The key of ``Authorization: Bearer <key>``, else of ``X-API-Key``."""
    scheme, _, credentials = headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer" and credentials.strip():
        return credentials.strip()
    return headers.get("x-api-key")


FeedbackCallerDep = Annotated[ApiKey, Security(ApiKeyCheck("feedback"))]
