"""CI with the team's registry: which credentials each run gets, what ``ci/pipeline.sh`` does
with them, and what the model report says about the champion comparison.

The scripts run for real with ``uv`` replaced by a stub on PATH that records the environment
``dvc repro`` would get (the slow ``tests/test_team.py`` runs them against a real server).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from .helpers import render

STUB = """#!/usr/bin/env bash
# uv run --no-sync <tool> ...: python runs for real, dvc records its environment
shift 2
if [ "$1" = python ]; then shift; exec "{python}" "$@"; fi
env | grep -E '^(MLFLOW_|REGISTRY_READ_ONLY)' | sort >>"{record}"
case " $* " in *" --json "*) echo '{{}}' ;; esac
"""


@pytest.fixture(scope="module")
def github(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return render(tmp_path_factory.mktemp("gh") / "project", {"ci": "github"}, skip_tasks=True)


@pytest.fixture(scope="module")
def gitlab(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return render(tmp_path_factory.mktemp("gl") / "project", {"ci": "gitlab"}, skip_tasks=True)


def stub_path(tmp_path: Path) -> tuple[dict[str, str], Path]:
    record = tmp_path / "dvc-env.txt"
    (tmp_path / "bin").mkdir()
    stub = tmp_path / "bin" / "uv"
    stub.write_text(STUB.format(python=sys.executable, record=record))
    stub.chmod(0o755)
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    env["PATH"] = f"{tmp_path / 'bin'}:{env['PATH']}"
    # The project's settings are asked for real: its package from the scripts' folder, the
    # project root, with this interpreter's pydantic-settings.
    env["PYTHONPATH"] = "src"
    return env, record


def pipeline_env(project: Path, tmp_path: Path, **given: str) -> tuple[str, dict[str, str]]:
    """What ``dvc repro`` gets from ci/pipeline.sh when CI sets ``given``."""
    env, record = stub_path(tmp_path)
    result = subprocess.run(
        ["bash", "ci/pipeline.sh"], cwd=project, env={**env, **given},
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    seen = dict(line.split("=", 1) for line in record.read_text().splitlines())
    return result.stdout, seen


def test_pipeline_without_a_server_says_no_champion_comparison(
    github: Path, tmp_path: Path
) -> None:
    out, seen = pipeline_env(github, tmp_path, REGISTRY_READ_ONLY="true")

    assert "no tracking server" in out, out
    assert seen == {}, f"no MLflow setting should reach the pipeline: {seen}"


def test_pipeline_read_only_reads_the_servers_registry_and_logs_locally(
    github: Path, tmp_path: Path
) -> None:
    server = "https://mlflow.example.test"
    _, seen = pipeline_env(
        github, tmp_path, MLFLOW_TRACKING_URI=server, REGISTRY_READ_ONLY="true",
        MLFLOW_TRACKING_USERNAME="reader", MLFLOW_TRACKING_PASSWORD="r",
    )  # fmt: skip

    assert seen.get("MLFLOW_REGISTRY_URI") == server, seen
    # exported, so that neither the project's .env nor its default can name a server
    tracking = seen.get("MLFLOW_TRACKING_URI")
    assert tracking == "sqlite:///mlflow.db", (
        f"runs of a read-only run must stay on the runner: {tracking}"
    )
    assert seen.get("REGISTRY_READ_ONLY") == "true", seen


def test_pipeline_read_only_keeps_runs_local_with_the_server_in_the_project_s_env(
    github: Path, tmp_path: Path
) -> None:
    # given a developer's .env naming the team's server (as the project's commands read it)
    server = "https://mlflow.example.test"
    project = tmp_path / "project"
    shutil.copytree(github, project)
    (project / ".env").write_text(f"MLFLOW_TRACKING_URI={server}\n", encoding="utf-8")

    # when the pipeline runs read-only, nothing exported but REGISTRY_READ_ONLY
    out, seen = pipeline_env(project, tmp_path, REGISTRY_READ_ONLY="true")

    # then the gate reads the server's registry and the stages log to this machine
    assert "no tracking server" not in out, out
    assert seen.get("MLFLOW_REGISTRY_URI") == server, seen
    assert seen.get("REGISTRY_READ_ONLY") == "true", seen
    environment = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    settings = subprocess.run(
        [sys.executable, "-c", "from my_ml_project.config import get_settings; s = get_settings()"
         "; print(s.mlflow_tracking_uri, s.mlflow_registry_uri, s.registry_read_only)"],
        cwd=project, env={**environment, "PYTHONPATH": "src", **seen},
        capture_output=True, text=True, check=True,
    ).stdout.split()  # fmt: skip
    assert settings == [f"sqlite:///{project / 'mlflow.db'}", server, "True"], settings


def test_pipeline_with_write_credentials_logs_to_the_server(github: Path, tmp_path: Path) -> None:
    server = "https://mlflow.example.test"
    _, seen = pipeline_env(
        github, tmp_path, MLFLOW_TRACKING_URI=server, REGISTRY_READ_ONLY="false",
        MLFLOW_TRACKING_USERNAME="trainer", MLFLOW_TRACKING_PASSWORD="w",
    )  # fmt: skip

    assert seen.get("MLFLOW_TRACKING_URI") == server and "MLFLOW_REGISTRY_URI" not in seen, seen


def github_expression(expression: str, context: dict[str, Any]) -> Any:
    """A GitHub Actions expression (the subset the workflow uses: ==, &&, ||, !, contexts)."""
    inner = re.fullmatch(r"\$\{\{\s*(.*?)\s*\}\}", expression.strip(), re.S)
    assert inner, expression
    python = inner.group(1).replace("&&", " and ").replace("||", " or ")
    python = re.sub(r"!(?!=)", " not ", python)
    python = re.sub(r"\b(github|secrets)\.([A-Za-z_]+)", r"\1['\2']", python)
    return eval(python, {"__builtins__": {}}, context)  # the workflow's own text


@pytest.mark.parametrize(
    ("event", "ref", "writes"),
    [
        ("push", "refs/heads/main", True),
        ("pull_request", "refs/pull/7/merge", False),
        ("push", "refs/heads/feature", False),
        ("workflow_dispatch", "refs/heads/main", False),
    ],
)
def test_github_gives_the_write_user_to_pushes_to_main_only(
    github: Path, event: str, ref: str, writes: bool
) -> None:
    workflow = yaml.safe_load((github / ".github" / "workflows" / "ci.yml").read_text())
    (step,) = [s for s in workflow["jobs"]["pipeline"]["steps"] if s.get("run") == "ci/pipeline.sh"]
    secrets = {
        "MLFLOW_TRACKING_USERNAME": "trainer", "MLFLOW_TRACKING_PASSWORD": "write-secret",
        "MLFLOW_TRACKING_READONLY_USERNAME": "reader",
        "MLFLOW_TRACKING_READONLY_PASSWORD": "read-secret", "MLFLOW_TRACKING_URI": "https://m",
    }  # fmt: skip
    context = {"github": {"event_name": event, "ref": ref}, "secrets": secrets}
    env = {k: github_expression(v, context) for k, v in step["env"].items() if "MLFLOW_" in v
           or k == "REGISTRY_READ_ONLY"}  # fmt: skip
    # a pull request must not fall back to the write user when the read-only one is missing
    no_reader = {k: v for k, v in secrets.items() if "READONLY" not in k}
    fallback = github_expression(
        step["env"]["MLFLOW_TRACKING_PASSWORD"],
        {"github": {"event_name": event, "ref": ref}, "secrets": {**no_reader, **dict.fromkeys(
            ("MLFLOW_TRACKING_READONLY_USERNAME", "MLFLOW_TRACKING_READONLY_PASSWORD"), "")}},
    )  # fmt: skip

    expected = "write-secret" if writes else "read-secret"
    assert env["MLFLOW_TRACKING_PASSWORD"] == expected, env
    assert env["MLFLOW_TRACKING_USERNAME"] == ("trainer" if writes else "reader"), env
    assert env["REGISTRY_READ_ONLY"] is (not writes), env
    assert writes or fallback == "", "without a read-only user, the write user leaked"


@pytest.mark.parametrize(
    ("protected", "merge_request", "writes"),
    [("true", "", True), ("false", "", False), ("true", "12", False)],
)
def test_gitlab_gives_the_write_user_to_protected_pipelines_only(
    gitlab: Path, tmp_path: Path, protected: str, merge_request: str, writes: bool
) -> None:
    pipeline = yaml.safe_load((gitlab / ".gitlab-ci.yml").read_text())["pipeline"]
    (block,) = [line for line in pipeline["script"] if "ci/pipeline.sh" in line]
    env, record = stub_path(tmp_path)
    env.update({
        "CI_COMMIT_REF_PROTECTED": protected, "CI_MERGE_REQUEST_IID": merge_request,
        "MLFLOW_TRACKING_URI": "https://m", "MLFLOW_TRACKING_USERNAME": "trainer",
        "MLFLOW_TRACKING_PASSWORD": "write-secret", "MLFLOW_TRACKING_READONLY_USERNAME": "reader",
        "MLFLOW_TRACKING_READONLY_PASSWORD": "read-secret",
    })  # fmt: skip
    subprocess.run(["bash", "-euo", "pipefail", "-c", block], cwd=gitlab, env=env, check=True,
                   capture_output=True)  # fmt: skip
    seen = dict(line.split("=", 1) for line in record.read_text().splitlines())

    assert seen["MLFLOW_TRACKING_PASSWORD"] == ("write-secret" if writes else "read-secret")
    assert ("MLFLOW_REGISTRY_URI" in seen) is (not writes), seen


@pytest.mark.parametrize("job", ["monitor", "retrain"])
def test_gitlab_scheduled_jobs_run_the_pipeline_read_only(
    gitlab: Path, tmp_path: Path, job: str
) -> None:
    """A scheduled job runs on the protected default branch, where the write user's protected
    variables are visible; what it trains is proposed for review, so it must register nothing."""
    script = yaml.safe_load((gitlab / ".gitlab-ci.yml").read_text())[job]["script"]
    upto = next(i for i, line in enumerate(script) if "ci/pipeline.sh" in line)
    env, record = stub_path(tmp_path)
    env.update({
        "CI_COMMIT_REF_PROTECTED": "true", "CI_PIPELINE_SOURCE": "schedule", "DRIFT": "true",
        "MLFLOW_TRACKING_URI": "https://m", "MLFLOW_TRACKING_USERNAME": "trainer",
        "MLFLOW_TRACKING_PASSWORD": "write-secret", "MLFLOW_TRACKING_READONLY_USERNAME": "reader",
        "MLFLOW_TRACKING_READONLY_PASSWORD": "read-secret",
    })  # fmt: skip
    block = "\n".join(script[: upto + 1])
    subprocess.run(["bash", "-euo", "pipefail", "-c", block], cwd=gitlab, env=env, check=True,
                   capture_output=True)  # fmt: skip
    seen = dict(line.split("=", 1) for line in record.read_text().splitlines())

    assert seen["MLFLOW_TRACKING_PASSWORD"] == "read-secret", f"{job} got the write user"
    assert "MLFLOW_REGISTRY_URI" in seen, f"{job} would register on the team's server"


def test_github_retrain_reads_the_team_registry_read_only(github: Path) -> None:
    """What retrain trains is proposed as a pull request: its gate compares with the server's
    champion, with the read-only user, and registers nothing."""
    workflow = yaml.safe_load((github / ".github/workflows/monitor.yml").read_text())
    steps = workflow["jobs"]["retrain"]["steps"]
    (step,) = [step for step in steps if step.get("run") == "ci/pipeline.sh"]
    env = step.get("env", {})

    assert env.get("MLFLOW_TRACKING_URI") == "${{ secrets.MLFLOW_TRACKING_URI }}", env
    assert env.get("MLFLOW_TRACKING_PASSWORD") == (
        "${{ secrets.MLFLOW_TRACKING_READONLY_PASSWORD }}"
    ), env
    assert env.get("REGISTRY_READ_ONLY") == "true", env
    assert "secrets.MLFLOW_TRACKING_PASSWORD" not in str(workflow), "the write user, scheduled"


@pytest.mark.parametrize(
    ("record", "says"),
    [
        ({"previous_champion": None, "shared_registry": False, "reasons": []},
         "No champion comparison was made"),
        ({"previous_champion": "4", "shared_registry": True, "reasons": ["roc_auc 0.9 is worse"]},
         "Compared with the team registry's champion, version 4."),
        ({"previous_champion": None, "shared_registry": True, "reasons": []},
         "The team's registry has no champion yet"),
    ],
)  # fmt: skip
def test_model_report_says_which_champion_the_gate_compared_with(
    github: Path, tmp_path: Path, record: dict[str, Any], says: str
) -> None:
    env, _ = stub_path(tmp_path)
    (github / "reports").mkdir(exist_ok=True)
    (github / "reports" / "registry.json").write_text(json.dumps(record))
    subprocess.run(["bash", "ci/report.sh", "HEAD", str(tmp_path / "out")], cwd=github, env=env,
                   check=True, capture_output=True)  # fmt: skip
    report = (tmp_path / "out" / "report.md").read_text()

    assert says in report, report
    assert ("Refused: " in report) is bool(record["reasons"]), report
