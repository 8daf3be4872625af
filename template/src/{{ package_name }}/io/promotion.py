"""Promotion across environments: the ``staging`` and ``production`` aliases, audited.

An environment's alias moves only here. Each move is recorded as tags on the model version
(``<environment>.by``, ``.at``, ``.run``, ``.commit``, ``.reason``), so the registry itself
answers who put a version in production, when, from which CI run and commit, and why; a
rollback marks the version it leaves (``<environment>.rolled_back.*``). The previous holder of
an environment is read back from these tags, not from version numbers: production skips most
versions, and rolling back twice must go two promotions back, not bounce between two.
"""

from __future__ import annotations

import getpass
import os
import platform
from dataclasses import dataclass
from datetime import UTC, datetime

from mlflow.entities.model_registry import ModelVersion
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from ..config import CHAMPION, ENVIRONMENTS
from .tracking import aliased, git_commit

# Where each environment takes its candidate from, by default: the path dev -> staging -> prod.
SOURCE = {"staging": CHAMPION, "production": ENVIRONMENTS["staging"]}
ROLLED_BACK = "rolled_back"


@dataclass(frozen=True)
class Audit:
    """Who moves an alias, when, from which run (a CI job, or this machine) and commit, and why."""

    by: str
    at: str
    run: str
    commit: str
    reason: str

    def tags(self, prefix: str) -> dict[str, str]:
        return {f"{prefix}.{name}": value for name, value in vars(self).items()}


def current_audit(reason: str) -> Audit:
    """The audit of a move made now, from this process: CI's variables when CI runs it."""
    github_run = os.environ.get("GITHUB_RUN_ID")
    if github_run:
        server = os.environ.get("GITHUB_SERVER_URL", "https://github.com")
        run = f"{server}/{os.environ.get('GITHUB_REPOSITORY', '')}/actions/runs/{github_run}"
    else:
        run = os.environ.get("CI_JOB_URL") or f"local ({platform.node()})"
    by = os.environ.get("GITHUB_ACTOR") or os.environ.get("GITLAB_USER_LOGIN") or getpass.getuser()
    return Audit(
        by=by,
        at=datetime.now(UTC).isoformat(timespec="milliseconds"),
        run=run,
        commit=os.environ.get("GITHUB_SHA") or os.environ.get("CI_COMMIT_SHA") or git_commit(),
        reason=reason,
    )


def candidate(
    client: MlflowClient, model_name: str, environment: str, version: str | None
) -> ModelVersion:
    """``version``, or by default what the environment before it holds (see ``SOURCE``)."""
    if version is not None:
        try:
            found: ModelVersion = client.get_model_version(model_name, version)
        except MlflowException:
            raise LookupError(f"{model_name} has no version {version}") from None
        return found
    source = aliased(client, model_name, SOURCE[environment])
    if source is None:
        raise LookupError(f"{model_name} has no {SOURCE[environment]} version to promote")
    return source


def path_reasons(version: ModelVersion, environment: str) -> list[str]:
    """Why ``version`` may not enter ``environment`` by the path dev -> staging -> production:
    it never was in staging, or a rollback took it out (staging found it wanting; promoting it
    to staging again clears that)."""
    staging = ENVIRONMENTS["staging"]
    if environment != "production":
        return []
    if f"{staging}.at" not in version.tags:
        return [f"version {version.version} was never promoted to {staging}"]
    if f"{staging}.{ROLLED_BACK}.at" in version.tags:
        left = version.tags.get(f"{staging}.{ROLLED_BACK}.reason", "")
        return [f"version {version.version} was rolled back from {staging}: {left}"]
    return []


def move(
    client: MlflowClient, model_name: str, environment: str, version: str, audit: Audit
) -> None:
    """Give ``environment``'s alias to ``version``, then record ``audit`` on it."""
    alias = ENVIRONMENTS[environment]
    before = aliased(client, model_name, alias)
    client.set_registered_model_alias(model_name, alias, version)
    record(client, model_name, version, audit.tags(alias), (alias, before))
    # Promoted again after a rollback: it is a candidate for later rollbacks once more.
    for key in client.get_model_version(model_name, version).tags:
        if key.startswith(f"{alias}.{ROLLED_BACK}."):
            client.delete_model_version_tag(model_name, version, key)


def record(
    client: MlflowClient,
    model_name: str,
    version: str,
    tags: dict[str, str],
    moved: tuple[str, ModelVersion | None],
) -> None:
    """Write an audit's ``tags`` on ``version`` once its alias moved, the ``.at`` tag last; if
    they cannot be written, give the alias back to its holder before (``moved``).

    So the tags say a version held an alias only once it did (production takes only a version
    that staging held, a rollback goes back to a version that held the alias): a move that
    fails leaves no ``.at`` of its own.
    """
    alias, before = moved
    last = [key for key in tags if key.endswith(".at")]
    try:
        for key in [key for key in tags if key not in last] + last:
            client.set_model_version_tag(model_name, version, key, tags[key])
    except MlflowException:
        if before is None:
            client.delete_registered_model_alias(model_name, alias)
        else:
            client.set_registered_model_alias(model_name, alias, str(before.version))
        raise


def previous(client: MlflowClient, model_name: str, alias: str, current: str) -> str:
    """The version that held ``alias`` before ``current``: the latest promoted there, other than
    ``current``, that no rollback left."""
    held = [
        (v.tags[f"{alias}.at"], int(v.version))
        for v in client.search_model_versions(f"name = '{model_name}'")
        if f"{alias}.at" in v.tags
        and f"{alias}.{ROLLED_BACK}.at" not in v.tags
        and str(v.version) != current
    ]
    if not held:
        raise LookupError(f"{model_name}@{alias}: no earlier version to roll back to")
    return str(max(held)[1])


def roll_back(client: MlflowClient, model_name: str, environment: str, audit: Audit) -> str:
    """Give ``environment``'s alias back to its previous holder; mark the version it leaves.
    Dev's is the newest version older than its champion: the pipeline moves it unaudited."""
    alias = ENVIRONMENTS[environment]
    current = aliased(client, model_name, alias)
    if current is None:
        raise LookupError(f"{model_name} has no {alias} version to roll back from")
    if environment == "dev":
        target = older(client, model_name, str(current.version))
    else:
        target = previous(client, model_name, alias, str(current.version))
    client.set_registered_model_alias(model_name, alias, target)
    left = audit.tags(f"{alias}.{ROLLED_BACK}")
    record(client, model_name, str(current.version), left, (alias, current))
    return target


def older(client: MlflowClient, model_name: str, current: str) -> str:
    """The newest version of ``model_name`` older than ``current``."""
    versions = client.search_model_versions(f"name = '{model_name}'")
    found = [int(v.version) for v in versions if int(v.version) < int(current)]
    if not found:
        raise LookupError(f"{model_name} version {current} is the oldest; nothing to roll back to")
    return str(max(found))
