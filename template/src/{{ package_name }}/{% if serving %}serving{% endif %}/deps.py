"""Request dependencies, as ``Annotated`` aliases for the routes' signatures.

They are ``async`` on purpose: FastAPI runs a plain ``def`` dependency in its thread pool, a
thread hop per dependency and request that cost more than scoring a row.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated

from fastapi import Depends, Request, Security
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer

from .auth import ApiKey, Guard, Scope
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


SettingsDep = Annotated[ServingSettings, Depends(get_settings)]
HolderDep = Annotated[ModelHolder, Depends(get_holder)]
PredictorDep = Annotated[Predictor, Depends(get_predictor)]


# The two ways to present a key; as security schemes, /docs shows them and asks for the key.
BEARER = HTTPBearer(auto_error=False, description="Authorization: Bearer <API key>")
API_KEY_HEADER = APIKeyHeader(name="X-API-Key", auto_error=False, description="the API key")
BearerDep = Annotated[HTTPAuthorizationCredentials | None, Security(BEARER)]
ApiKeyHeaderDep = Annotated[str | None, Security(API_KEY_HEADER)]


def require(scope: Scope) -> Callable[..., Awaitable[ApiKey]]:
    """A dependency that admits callers whose key has ``scope`` (see ``Guard.admit``)."""

    async def caller(request: Request, bearer: BearerDep, header: ApiKeyHeaderDep) -> ApiKey:
        guard: Guard = request.app.state.guard
        return guard.admit(scope, bearer.credentials if bearer is not None else header)

    return caller


FeedbackCallerDep = Annotated[ApiKey, Security(require("feedback"))]
