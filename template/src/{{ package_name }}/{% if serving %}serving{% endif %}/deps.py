"""Request dependencies, as ``Annotated`` aliases for the routes' signatures."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from .model import ModelHolder
from .predictor import Predictor
from .settings import ServingSettings


def get_settings(request: Request) -> ServingSettings:
    settings: ServingSettings = request.app.state.settings
    return settings


def get_holder(request: Request) -> ModelHolder:
    holder: ModelHolder = request.app.state.holder
    return holder


def get_predictor(request: Request) -> Predictor:
    predictor: Predictor = request.app.state.predictor
    return predictor


SettingsDep = Annotated[ServingSettings, Depends(get_settings)]
HolderDep = Annotated[ModelHolder, Depends(get_holder)]
PredictorDep = Annotated[Predictor, Depends(get_predictor)]
