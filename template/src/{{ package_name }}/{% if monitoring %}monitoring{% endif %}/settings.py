"""Runtime settings of monitoring, read from ``MONITORING_*`` environment variables or ``.env``.

Monitoring can be switched off at run time (``MONITORING_ENABLED=false``) without touching code;
the statistical thresholds are pipeline parameters and live in ``params.yaml`` (``monitor:``).
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Self

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import SettingsConfigDict

from ..config import ProjectSettings, in_project

# A shorter key is within reach of a brute-force search.
MIN_HASH_KEY_CHARS = 16


# The prediction log's file name; `monitor` also looks for it in each folder of a shared volume.
DEFAULT_LOG_NAME = "predictions.jsonl"


class MonitoringSettings(ProjectSettings):
    """Where the prediction log goes, how it rotates, and what it may not contain."""

    model_config = SettingsConfigDict(env_prefix="MONITORING_", extra="ignore")

    enabled: bool = True
    log_path: Path = Path("logs", DEFAULT_LOG_NAME)
    # Late labels (POST /feedback, `feedback --labels`), rotated as the log is.
    feedback_path: Path = Path("logs/feedback.jsonl")
    log_max_bytes: int = Field(default=50_000_000, ge=1_000)
    log_backups: int = Field(default=10, ge=0)
    # Privacy: input columns never written to the log, and columns written only as a hash,
    # keyed by hash_key (HMAC-SHA-256): without the key, nobody can hash a guess and compare.
    drop_columns: list[str] = Field(default_factory=list)
    hash_columns: list[str] = Field(default_factory=list)
    hash_key: SecretStr | None = None
    # Rows waiting to be logged, per worker (a waiting row of 30 numbers holds about 250 B, one
    # kept as a dict, for text inputs or a shadow challenger, about 2 kB); a request that would
    # pass this is dropped (and counted), never slowing down the service.
    queue_size: int = Field(default=50_000, ge=1)
    # The background thread writes every this many seconds (sooner when half the queue
    # waits), in one batch: cheaper per request.
    flush_seconds: float = Field(default=1.0, ge=0, le=60)
    # Niceness of the log's writer process: when the CPU is short, serving goes first (a writer
    # that falls behind fills the queue, and then drops and counts). 0: the workers' priority.
    writer_nice: int = Field(default=10, ge=0, le=19)
    report_dir: Path = Path("reports/monitoring")
    # The model this environment serves: the service's own setting, read under its name (each
    # overlay sets it), so `monitor` scores and ages what the service loads. Empty: the champion.
    served_model_uri: str = Field("", validation_alias="SERVING_MODEL_URI")

    @model_validator(mode="after")
    def _in_project(self) -> Self:
        """The log, the labels and the reports are the project's, from whichever folder a
        command runs (the service, ``monitor``, ``feedback``)."""
        self.log_path = in_project(self.log_path)
        self.feedback_path = in_project(self.feedback_path)
        self.report_dir = in_project(self.report_dir)
        return self

    def hash_key_bytes(self) -> bytes | None:
        """The key of ``hash_columns`` (``None`` when there are none); raises
        :class:`HashKeyError` when they are set without a key that can keep them private."""
        if not self.hash_columns:
            return None
        key = self.hash_key.get_secret_value() if self.hash_key is not None else ""
        if len(key) < MIN_HASH_KEY_CHARS:
            problem = f"is shorter than {MIN_HASH_KEY_CHARS} characters" if key else "is not set"
            raise HashKeyError(
                f"MONITORING_HASH_COLUMNS is set but MONITORING_HASH_KEY {problem}: without a "
                "secret key, a hashed value is found again by hashing guesses. Set it from a "
                "secret (e.g. `openssl rand -hex 32`), or drop the columns instead "
                "(MONITORING_DROP_COLUMNS)"
            )
        return key.encode()


class HashKeyError(ValueError):
    """Hash columns without a usable key: the prediction log refuses to start."""


@lru_cache
def get_monitoring_settings() -> MonitoringSettings:
    return MonitoringSettings()
