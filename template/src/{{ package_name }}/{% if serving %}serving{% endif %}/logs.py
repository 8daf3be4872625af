"""JSON logs, each line carrying the id of the request being served."""

from __future__ import annotations

import logging
from contextvars import ContextVar
from typing import Any

from ..redaction import RedactionFilter

CURRENT_REQUEST_ID: ContextVar[str] = ContextVar("request_id", default="-")
ACCESS_LOGGER = f"{__package__}.access"


class RequestIdFilter(logging.Filter):
    """Adds ``request_id`` to every record logged while a request is served."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = CURRENT_REQUEST_ID.get()
        record.__dict__.pop("color_message", None)  # uvicorn's ANSI-coloured copy
        return True


def log_config(level: str) -> dict[str, Any]:
    """A ``logging.config.dictConfig`` for uvicorn and the app: JSON lines on stderr.

    Uvicorn's own access log is off: the request middleware logs each request once, with its
    id, route, status and duration. Every line goes through the redaction filter; MLflow's
    loggers, which get a handler of their own, are covered by ``install_log_redaction``.
    """
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {"request_id": {"()": RequestIdFilter}, "redact": {"()": RedactionFilter}},
        "formatters": {
            "json": {
                "()": "pythonjsonlogger.msgspec.MsgspecFormatter",
                "fmt": "%(asctime)s %(levelname)s %(name)s %(message)s %(request_id)s",
                "rename_fields": {"asctime": "time", "levelname": "level", "name": "logger"},
            }
        },
        "handlers": {
            "stderr": {
                "class": "logging.StreamHandler",
                "formatter": "json",
                "filters": ["request_id", "redact"],
                "stream": "ext://sys.stderr",
            }
        },
        "root": {"handlers": ["stderr"], "level": level.upper()},
        "loggers": {
            "uvicorn": {"handlers": [], "level": level.upper(), "propagate": True},
            "uvicorn.error": {"handlers": [], "level": level.upper(), "propagate": True},
            "uvicorn.access": {"handlers": [], "level": "WARNING", "propagate": False},
        },
    }
