"""``/openapi.json``, ``/docs`` (Swagger UI) and ``/redoc``, as FastAPI serves them.

Declared here rather than left to FastAPI, whose own routes take no dependencies: with API keys
configured, the app includes this router behind the ``docs`` scope.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import HTMLResponse, JSONResponse

router = APIRouter(include_in_schema=False)
SCHEMA = "/openapi.json"


def _schema_url(request: Request) -> str:
    return str(request.scope.get("root_path", "")).rstrip("/") + SCHEMA


@router.get(SCHEMA)
async def openapi(request: Request) -> JSONResponse:
    return JSONResponse(request.app.openapi())


@router.get("/docs")
async def swagger_ui(request: Request) -> HTMLResponse:
    return get_swagger_ui_html(
        openapi_url=_schema_url(request), title=f"{request.app.title} - Swagger UI"
    )


@router.get("/redoc")
async def redoc(request: Request) -> HTMLResponse:
    return get_redoc_html(openapi_url=_schema_url(request), title=f"{request.app.title} - ReDoc")
