"""Promotion across environments on a real registry (issue 16, Must show 3).

A generated project's pipeline registers its champion in its MLflow registry (the default
SQLite file: the team suite covers the same commands against a tracking server); ``promote``
takes it to staging then production, a second champion follows the same path, ``rollback --env
production`` brings the first back, every move is audited on the model version, and a service
configured as production's (``SERVING_MODEL_URI=models:/<name>@production``) serves what the
alias names. Run with ``-s`` to see the transcript.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from .helpers import PACKAGE, render, run
from .server import call, free_port, start_server, stop_server

pytestmark = pytest.mark.slow

# The audit of a GitLab job, as GitLab sets it; the commit is read from the project's git.
CI = {
    "GITHUB_ACTOR": "",
    "GITHUB_RUN_ID": "",
    "GITHUB_SHA": "",
    "CI_COMMIT_SHA": "",
    "GITLAB_USER_LOGIN": "release-manager",
    "CI_JOB_URL": "https://gitlab.example.com/team/churn/-/jobs/7",
}

# What the registry holds: each alias's version, and each version's tags.
REGISTRY = """
import json
from mlflow.tracking import MlflowClient
from {package}.config import get_settings
name = get_settings().model_name
client = MlflowClient(get_settings().mlflow_tracking_uri)
model = client.get_registered_model(name)
versions = client.search_model_versions(f"name = '{{name}}'")
print(json.dumps({{
    "name": name,
    "aliases": {{alias: str(version) for alias, version in model.aliases.items()}},
    "tags": {{str(v.version): dict(v.tags) for v in versions}},
}}))
"""


def say(*lines: str) -> None:
    for line in lines:
        print(line.rstrip())


def cli(project: Path, *args: str, code: int = 0) -> str:
    result = run(["uv", "run", "--no-sync", PACKAGE, *args], project, check=False, env=CI)
    say(
        f"$ {PACKAGE} {' '.join(args)}",
        result.stdout + result.stderr,
        f"(exit {result.returncode})",
    )
    assert result.returncode == code, result.stdout + result.stderr
    return result.stdout + result.stderr


def registry(project: Path) -> dict[str, Any]:
    script = REGISTRY.format(package=PACKAGE)
    state: dict[str, Any] = json.loads(
        run(["uv", "run", "--no-sync", "python", "-c", script], project).stdout
    )
    return state


def git(project: Path, *args: str) -> str:
    identity = ["-c", "user.name=t", "-c", "user.email=t@t"]
    return subprocess.run(
        ["git", "-C", str(project), *identity, *args], capture_output=True, text=True, check=True
    ).stdout.strip()


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A default project, set up, its pipeline run once (champion version 1), committed."""
    path = render(tmp_path_factory.mktemp("promotion") / "project")
    run(["make", "setup"], path)
    run(["make", "pipeline"], path)
    git(path, "add", "-A")
    git(path, "commit", "-qm", "first model", "--no-verify")
    return path


def test_promote_to_staging_then_production_and_roll_production_back(
    project: Path, tmp_path: Path
) -> None:
    commit = git(project, "rev-parse", "HEAD")

    # production takes only what went through staging
    refused = cli(
        project, "promote", "--to", "production", "--version", "1", "--reason", "x", code=1
    )
    assert "never promoted to staging" in refused

    # version 1: dev (champion) -> staging -> production
    assert "staging is now version 1" in cli(
        project, "promote", "--to", "staging", "--reason", "first model"
    )
    assert "production is now version 1" in cli(
        project, "promote", "--to", "production", "--reason", "staging checks passed"
    )

    # a second champion (the register stage again: version 2, the same run's scores) follows
    run(["uv", "run", "--no-sync", PACKAGE, "register"], project)
    cli(project, "promote", "--to", "staging", "--reason", "second model")
    cli(project, "promote", "--to", "production", "--reason", "second model, staging ok")
    assert registry(project)["aliases"]["production"] == "2"

    # production is rolled back
    assert "production is now version 1" in cli(
        project, "rollback", "--env", "production", "--reason", "error rate up"
    )

    state = registry(project)
    say("registry after the rollback:", json.dumps(state, indent=2))
    assert state["aliases"] == {"champion": "2", "staging": "2", "production": "1"}, state
    second = state["tags"]["2"]
    for field in ("by", "at", "run", "commit", "reason"):
        assert f"production.{field}" in second, f"production.{field} missing: {second}"
        assert f"production.rolled_back.{field}" in second, second
    assert second["production.by"] == "release-manager", second
    assert second["production.run"] == CI["CI_JOB_URL"], second
    assert second["production.commit"].startswith(commit), (second, commit)
    assert second["production.reason"] == "second model, staging ok", second
    assert second["production.rolled_back.reason"] == "error rate up", second
    assert "production.rolled_back.at" not in state["tags"]["1"], "version 1 serves again"

    # production's service loads the version its alias names
    port = free_port()
    server = start_server(
        ["uv", "run", "--no-sync", PACKAGE, "serve", "--port", str(port)],
        project,
        tmp_path / "serve.log",
        port,
        env={"SERVING_MODEL_URI": f"models:/{state['name']}@production"},
    )
    try:
        ready = call(server.base, "/ready")
    finally:
        stop_server(server)
    say(f"GET /ready of production's service: {ready.status} {json.dumps(ready.body)}")
    assert ready.status == 200 and ready.body["model_version"] == "1", ready.body
