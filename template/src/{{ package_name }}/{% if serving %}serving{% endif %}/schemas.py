"""Response bodies, declared for ``/openapi.json`` (the request bodies come from the model)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

Prediction = int | float | str | bool | None


class PredictResponse(BaseModel):
    predictions: list[Prediction]
    model_version: str
    # Only when a fallback answered instead of the champion: "previous" or "baseline".
    fallback: Literal["previous", "baseline"] | None = None


class InvocationsResponse(BaseModel):
    predictions: list[Prediction]


class Problem(BaseModel):
    """An error with its reason."""

    detail: str


class Issue(BaseModel):
    model_config = ConfigDict(extra="allow")

    loc: list[str | int]
    msg: str
    type: str


class ValidationProblem(BaseModel):
    """422: one entry per field at fault, with its location and the reason."""

    detail: list[Issue]


class Health(BaseModel):
    status: str


class Readiness(BaseModel):
    status: str
    model_uri: str | None = None
    model_version: str | None = None
    reason: str | None = None
    # What scores requests: "compiled" (the checked NumPy copy) or the model's library.
    scorer: str | None = None
    # With a canary release: the version that answers `canary_share` of the requests.
    canary_version: str | None = None
    canary_share: float | None = None


ERRORS: dict[int | str, dict[str, Any]] = {
    408: {"model": Problem, "description": "The body did not arrive in time"},
    413: {"model": Problem, "description": "Request body too large"},
    415: {"model": Problem, "description": "Unsupported Content-Type"},
    422: {"model": ValidationProblem, "description": "Invalid request: field and reason"},
    503: {"model": Problem, "description": "No model loaded, or busy: the reason (Retry-After)"},
}
