"""The FastAPI application: routers, middleware, error handlers, and model loading at start-up.

Run it with ``<package> serve`` (uvicorn factory ``create_app``). If the model cannot be loaded
the app still starts: ``/ready`` and the prediction routes answer 503 with the reason.
"""

from __future__ import annotations

import gc
import importlib
import importlib.util
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from types import ModuleType
from typing import Any

from fastapi import APIRouter, FastAPI, Security
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.openapi.utils import get_openapi
from threadpoolctl import threadpool_limits

from ..config import get_settings
from ..engine import AccessLog, ProtocolError
from ..redaction import install_log_redaction
from . import errors, rollout, telemetry
from .auth import Guard, Scope
from .deps import ApiKeyCheck
from .logs import ACCESS_LOGGER
from .middleware import RequestMiddleware
from .model import ModelUnavailableError
from .predictor import Predictor, ScoringError
from .rollout import ModelHolder
from .routes import docs, health, invocations, predict, prometheus
from .settings import ServingSettings, renamed_in_use

logger = logging.getLogger(__name__)
API_VERSION = "1.0"


def limit_threads() -> None:
    """One thread per worker for scikit-learn's native code.

    Workers are one per core: OpenMP/BLAS pools would fight the other workers, and cost more
    than they save on request-sized batches. The limit only reaches libraries already loaded,
    hence after the model.
    """
    threadpool_limits(1)


def _extension() -> ModuleType | None:
    """This package's optional ``live_monitoring`` module (prediction log, live metrics,
    feedback), present when the project was generated with monitoring."""
    name = f"{__package__}.live_monitoring"
    return importlib.import_module(name) if importlib.util.find_spec(name) is not None else None


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    extension = _extension()
    # The reference profile (with monitoring): its rows fit the baseline, where chosen.
    reference = extension.load_reference_profile() if extension is not None else None
    holder = rollout.start(app.state.settings, reference)
    limit_threads()
    app.state.holder = holder
    app.state.predictor = Predictor(holder, coalesce_rows=app.state.settings.coalesce_rows)
    if extension is not None:
        extension.attach(app, reference)
    install_log_redaction()  # on handlers the libraries loaded meanwhile added
    # Full collections walking the libraries and models, which live as long as us, stall requests.
    gc.collect()
    gc.freeze()
    model = holder.active
    telemetry.set_model(
        model.version if model else None,
        model.uri if model else None,
        fallback=model is not None and model is holder.fallback,
    )
    yield
    if extension is not None:
        extension.detach(app)  # e.g. the last prediction log lines, while the writer runs
    if app.state.access_log is not None:
        app.state.access_log.flush()


def _openapi(app: FastAPI) -> dict[str, Any]:
    """The schema, with the request bodies of the loaded model's signature."""
    if app.openapi_schema:
        return app.openapi_schema
    schema = get_openapi(title=app.title, version=app.version, routes=app.routes)
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    holder: ModelHolder | None = getattr(app.state, "holder", None)
    model = holder.active if holder else None
    if model is None:
        request: dict[str, Any] = {"type": "object", "description": "no model loaded"}
        rows: dict[str, Any] = {"type": "array", "items": {"type": "object"}}
    else:
        request = model.contract.request_schema()
        rows = model.contract.rows_schema()
        components.update(request.pop("$defs", {}))
        rows.pop("$defs", None)
    split = {
        "type": "object",
        "required": ["columns", "data"],
        "properties": {
            "columns": {"type": "array", "items": {"type": "string"}},
            "data": {"type": "array", "items": {"type": "array"}},
            "index": {"type": "array"},
        },
    }
    components["PredictRequest"] = request
    components["InvocationsRequest"] = {
        "type": "object",
        "description": "exactly one of the keys, as for `mlflow models serve` (which, like this "
        "service, ignores `params` for a model whose signature declares none)",
        "oneOf": [
            {
                "required": [key],
                "properties": {key: value, "params": {"type": "object"}},
                "additionalProperties": False,
            }
            for key, value in (
                ("dataframe_records", rows),
                ("dataframe_split", split),
                ("instances", rows),
                ("inputs", rows),
            )
        ],
    }
    app.openapi_schema = schema
    return schema


def scoped_routers(extension: ModuleType | None) -> list[tuple[APIRouter, Scope | None]]:
    """Each router with the scope its callers' key needs, which the app checks.

    ``None``: the app checks nothing (health and readiness need no key; ``/feedback`` checks
    its caller itself, to record the key's name). Without keys configured, the app adds no
    check to the open scopes, so their requests pay nothing for it.
    """
    routers: list[tuple[APIRouter, Scope | None]] = [
        (health.router, None),
        (predict.router, "score"),
        (invocations.router, "score"),
        (prometheus.router, "metrics"),
        (docs.router, "docs"),
    ]
    extra = extension.ROUTERS if extension else []
    return [*routers, *((router, None) for router in extra)]


def _log_renamed_settings() -> None:
    for old, new in renamed_in_use():
        logger.warning(
            "setting %s is deprecated (read until 0.7.0): use %s",
            old,
            new,
            extra={"setting": old, "replacement": new},
        )


def _log_keys(guard: Guard) -> None:
    if not guard.keys:
        logger.info("no API keys: scoring, metrics and docs are open; /feedback refuses writes")
        return
    scopes = {key.name: sorted(key.scopes) for key in guard.keys}
    logger.info("API keys configured", extra={"api_keys": scopes})  # names only, never values


def create_app(settings: ServingSettings | None = None) -> FastAPI:
    """Assemble the app; the model is loaded when the server starts it (lifespan)."""
    settings = settings or ServingSettings()
    app = FastAPI(
        title=f"{get_settings().model_name} model service",
        version=API_VERSION,
        lifespan=lifespan,
        openapi_url=None,  # routes/docs.py serves the schema and the docs pages
        docs_url=None,
        redoc_url=None,
    )
    app.state.settings = settings
    _log_renamed_settings()
    app.state.guard = guard = Guard.from_settings(settings)
    _log_keys(guard)
    # Written only where the logging configuration lets INFO lines of the access logger out.
    logged = logging.getLogger(ACCESS_LOGGER).isEnabledFor(logging.INFO)
    app.state.access_log = AccessLog(ACCESS_LOGGER) if settings.access_log and logged else None
    app.add_middleware(
        RequestMiddleware,
        max_body_bytes=settings.max_body_bytes,
        body_timeout=settings.body_timeout,
        max_concurrency=settings.max_concurrency,
        access_log=app.state.access_log,
    )
    origins = [origin.strip() for origin in settings.cors_origins.split(",") if origin.strip()]
    if origins:  # else no CORS headers: browsers keep other sites' pages from reading answers
        app.add_middleware(
            CORSMiddleware,
            allow_origins=origins,
            allow_methods=["GET", "POST"],
            allow_headers=["*"],
            expose_headers=["x-request-id", "retry-after"],
        )
    app.add_exception_handler(RequestValidationError, errors.invalid)
    app.add_exception_handler(ModelUnavailableError, errors.unavailable)
    app.add_exception_handler(ScoringError, errors.unscorable)
    app.add_exception_handler(ProtocolError, errors.bad_protocol)
    for router, scope in scoped_routers(_extension()):
        needs_key = [Security(ApiKeyCheck(scope))] if scope is not None and guard.keys else []
        app.include_router(router, dependencies=needs_key)
    app.openapi = lambda: _openapi(app)  # type: ignore[method-assign]
    return app
