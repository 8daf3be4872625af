"""Service settings, read from ``SERVING_*`` environment variables (or ``.env``)."""

from __future__ import annotations

from typing import Literal

from pydantic import AliasChoices, Field
from pydantic_settings import EnvSettingsSource, SettingsConfigDict

from ..config import ProjectSettings, project_env_file

# Settings renamed in 0.6.0, and their old names. The old names are read until 0.7.0, with a
# warning at start-up: `copier update` cannot rename them in `.env` files, manifests or CI
# variables.
RENAMED = {
    "SERVING_ROLLOUT_FALLBACK": "SERVING_FALLBACK",
    "SERVING_ROLLOUT_CHALLENGER_URI": "MONITORING_CHALLENGER_URI",
    "SERVING_ROLLOUT_CANARY_SHARE": "MONITORING_CANARY_SHARE",
    "SERVING_ROLLOUT_SHADOW": "MONITORING_SHADOW",
}


def renamed(name: str) -> AliasChoices:
    """Setting ``name``, read under its old name too (where both are set, ``name`` wins)."""
    return AliasChoices(name, RENAMED[name])


class RolloutSettings(ProjectSettings):
    """Which model answers (``serving/rollout.py``); e.g. ``SERVING_ROLLOUT_CANARY_SHARE=0.1``."""

    model_config = SettingsConfigDict(
        extra="ignore", validate_by_name=True, hide_input_in_errors=True
    )

    fallback: Literal["previous", "baseline", "none"] = Field(
        "previous",
        validation_alias=renamed("SERVING_ROLLOUT_FALLBACK"),
        description="what answers when the champion cannot: its previous registered version, "
        "also the trivial baseline (only by choice), or nothing",
    )
    challenger_uri: str = Field(
        "",
        validation_alias=renamed("SERVING_ROLLOUT_CHALLENGER_URI"),
        description="the challenger's model URI or folder; empty: models:/<MODEL_NAME>@challenger",
    )
    canary_share: float = Field(
        0.0,
        ge=0.0,
        le=1.0,
        validation_alias=renamed("SERVING_ROLLOUT_CANARY_SHARE"),
        description="share of requests the challenger answers, drawn by the service; 0: none",
    )
    shadow: bool = Field(
        True,
        validation_alias=renamed("SERVING_ROLLOUT_SHADOW"),
        description="score the challenger beside every request, never answering, where the "
        "prediction log records it (monitoring)",
    )


def renamed_in_use() -> list[tuple[str, str]]:
    """(old name, new name) of each renamed setting given by its old name, in the environment
    or ``.env``."""
    given = {
        **project_env_file(RolloutSettings).env_vars,
        **EnvSettingsSource(RolloutSettings).env_vars,
    }
    return [(old, name) for name, old in RENAMED.items() if old.lower() in given]


class ServingSettings(ProjectSettings):
    """How the service finds its model and runs; e.g. ``SERVING_WORKERS=2``."""

    model_config = SettingsConfigDict(
        env_prefix="SERVING_",
        extra="ignore",
        protected_namespaces=(),
        hide_input_in_errors=True,  # a value given by mistake may be a secret: never echo it
    )

    model_uri: str = Field(
        "",
        description="MLflow model URI or model folder; empty means models:/<MODEL_NAME>@champion",
    )
    host: str = "127.0.0.1"
    port: int = Field(8000, ge=1, le=65535)
    workers: int = Field(1, ge=1, description="processes; one per CPU core is a good start")
    access_log: bool = Field(True, description="one JSON log line per request")
    max_batch_size: int = Field(1000, ge=1, description="rows per request, at most")
    max_body_bytes: int = Field(4_000_000, ge=1024, description="request body size, at most")
    max_field_bytes: int = Field(
        10_000, ge=16, description="characters of one text value (JSON string, CSV cell), at most"
    )
    body_timeout: float = Field(
        30.0, gt=0, description="seconds for a request's body to arrive, else 408"
    )
    timeout_keep_alive: int = Field(5, ge=1, description="seconds an idle connection stays open")
    max_concurrency: int = Field(
        256, ge=1, description="requests in progress per worker, at most; then 503"
    )
    cors_origins: str = Field(
        "", description="origins allowed to call from a browser, comma-separated; empty: none"
    )
    rollout: RolloutSettings = Field(
        default_factory=RolloutSettings, description="release strategies: SERVING_ROLLOUT_*"
    )
    coalesce_rows: int = Field(
        64, ge=0, description="requests up to this many rows share model calls; 0: never"
    )
    compiled_max_rows: int = Field(
        256,
        ge=0,
        description="batches up to this many rows use the pipeline's NumPy copy; 0: never",
    )
    allow_missing: bool = Field(
        True, description="accept null feature values (the model's preprocessing imputes them)"
    )
    api_keys: str = Field(
        "",
        description="API key entries name:scopes:sha256:<digest>, separated by spaces or new "
        "lines (see auth.py); empty with no file: scoring, metrics and docs are open and "
        "/feedback refuses writes",
    )
    api_keys_file: str = Field(
        "", description="a file of more entries, one a line (e.g. a mounted secret)"
    )
    rate_limit: str = Field(
        "",
        description="per API key and worker, e.g. '50/second burst 100'; empty: no limit",
    )
    feedback_max_labels: int = Field(1000, ge=1, description="labels per /feedback request")
    feedback_max_bytes: int = Field(
        256_000, ge=1024, description="/feedback request body size, at most"
    )
