"""Prometheus metrics: requests and latency by route and status, rows scored, model version.

With several workers, ``serve`` points ``PROMETHEUS_MULTIPROC_DIR`` at a fresh folder so that
``/metrics`` adds up every worker's numbers instead of showing whichever worker answered.
"""

from __future__ import annotations

import os

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    generate_latest,
    multiprocess,
)

from ..redaction import redact

# No `*_created` series: they double the output and dashboards do not use them.
disable_created_metrics()  # type: ignore[no-untyped-call]

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)

REQUESTS = Counter("http_requests_total", "HTTP requests answered", ["route", "method", "status"])
LATENCY = Histogram(
    "http_request_duration_seconds",
    "Time from request to the last byte of the answer",
    ["route", "method", "status"],
    buckets=LATENCY_BUCKETS,
)
ROWS = Counter("prediction_rows_total", "Rows scored", ["route"])
NONFINITE_PREDICTIONS = Counter(
    "prediction_nonfinite_total", "Predictions refused as NaN or infinite (answered 422)"
)
BATCH_REQUESTS = Histogram(
    "prediction_batch_requests",
    "Requests scored together in one model call (micro-batching)",
    buckets=(1, 2, 4, 8, 16, 32, 64),
)
MODEL_INFO = Gauge(
    "model_info", "The model in service (value 1)", ["version", "uri"], multiprocess_mode="livemax"
)
MODEL_LOADED = Gauge(
    "model_loaded", "1 when a model is loaded, 0 otherwise", multiprocess_mode="livemin"
)

# Set, not computed at scrape time (``set_function``): with several workers only values that a
# process writes reach the shared metrics files.
FALLBACK = Gauge(
    "model_fallback_active",
    "1 while a fallback model answers instead of the champion",
    multiprocess_mode="livemax",
)


def set_model(version: str | None, uri: str | None, *, fallback: bool = False) -> None:
    """Record which model this process serves (``None``: none), and whether it is a fallback."""
    MODEL_LOADED.set(0 if version is None else 1)
    FALLBACK.set(int(fallback))
    if version is not None:
        MODEL_INFO.labels(version=version, uri=redact(uri or "")).set(1)


def exposition() -> bytes:
    """The metrics in Prometheus text format, summed over workers when there are several."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        return generate_latest(registry)
    return generate_latest(REGISTRY)


CONTENT_TYPE = CONTENT_TYPE_LATEST
