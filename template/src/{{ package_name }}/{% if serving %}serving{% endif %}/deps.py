"""Request dependencies, as ``Annotated`` aliases for the routes' signatures.

They are ``async`` on purpose: FastAPI runs a plain ``def`` dependency in its thread pool, a
thread hop per dependency and request that cost more than scoring a row.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

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
