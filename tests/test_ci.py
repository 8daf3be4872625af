"""CI/CD of generated projects: real linters on the rendered workflows, and pre-commit.

Fast tier: every value of ``ci`` x ``serving`` x ``monitoring`` that changes a workflow is
rendered once (without the lock task) and checked by actionlint (with shellcheck on ``run:``
steps), zizmor ``--offline --persona pedantic``, check-jsonschema's vendored GitHub/GitLab
schemas, shellcheck and hadolint. Each validator is also shown to reject a known-bad input, so
a validator that silently checks nothing fails here.

Slow tier: ``pre-commit run --all-files`` on a freshly rendered project after ``make setup``.
"""

from __future__ import annotations

import importlib.util
import itertools
import json
import os
import re
import socket
import stat
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml

from .helpers import TEMPLATE_ROOT, render, run

BIN = Path(sys.executable).parent

# Every action the generated workflows use, pinned to a full commit SHA. The SHAs cannot be
# looked up live here (no GitHub access); each was taken from public workflows that pin it
# with the same version comment (found with code search), e.g. dependabot/renovate updates.
PINNED_ACTIONS = {
    "actions/checkout": ("de0fac2e4500dabe0009e67214ff5f5447ce83dd", "v6.0.2"),
    "astral-sh/setup-uv": ("681c641aba71e4a1c380be3ab5e12ad51f415867", "v7.1.6"),
    "actions/upload-artifact": ("ea165f8d65b6e75b540449e92b4886f43607fa02", "v4.6.2"),
    "actions/download-artifact": ("d3f86a106a0bac45b974a628896c90dbdf5c8093", "v4.3.0"),
    "actions/cache": ("5a3ec84eff668545956fd18022155c47e93e2684", "v4.2.3"),
    # Read from the tag in a clone of actions/create-github-app-token (git rev-parse v3.1.1).
    "actions/create-github-app-token": ("1b10c78c7865c340bc4f6099eb2f838309f1e8c3", "v3.1.1"),
}

# The same jobs on both providers: (what it does, GitHub "workflow/job", GitLab job, needs).
PARITY = (
    ("lint: ruff, format, mypy, pre-commit hooks", "ci/lint", "lint", None),
    ("tests", "ci/test", "test", None),
    ("dvc pull (read-only) + dvc repro, model report", "ci/pipeline", "pipeline", None),
    ("comment the model report on the PR/MR", "ci/comment", "mr-comment", None),
    ("build the image, smoke-test /ready", "image/smoke", "image-smoke", "serving"),
    (
        "tags: build, smoke-test, push to the registry",
        "image-release/push",
        "image-release",
        "serving",
    ),
    ("kubectl kustomize + kubernetes-validate --strict", "k8s/validate", "k8s", "serving"),
    ("scheduled: make monitor", "monitor/monitor", "monitor", "monitoring"),
    (
        "on drift: retrain, dvc push, the change as a patch",
        "monitor/retrain",
        "retrain",
        "monitoring",
    ),
    ("push the retrain patch, open a PR/MR", "monitor/propose", "retrain-propose", "monitoring"),
    ("weekly: copier check-update", "template-update/check", "template-check", None),
    ("copier update, the change as a patch", "template-update/update", "template-update", None),
    ("push the update patch, open a PR/MR", "template-update/propose", "template-propose", None),
    # GitHub's propose jobs call one reusable workflow; GitLab's extend the hidden `.propose`.
    ("apply a patch, push, open the PR", "propose/propose", None, None),
    # Promotion: one dispatched workflow with the environment as input on GitHub, a manual job
    # per environment on GitLab (where the manual job is also the free plan's approval step).
    ("free plans: only PROMOTION_APPROVERS start a promotion", "promote/approval", None, None),
    ("promote or roll back staging (gate re-checked)", "promote/promote", "promote-staging", None),
    ("promote or roll back production", None, "promote-production", None),
    ("apply the overlay, roll the pods", "promote/deploy", "deploy-staging", "serving"),
    ("the same for production", None, "deploy-production", "serving"),
)

# Jobs that may write (everything else gets read-only contents at most). None of them runs
# code of the project (test_write_jobs_run_no_project_code).
GITHUB_WRITERS = {
    "ci/comment": {"pull-requests": "write"},
    "image-release/push": {"contents": "read", "packages": "write"},
    "monitor/propose": {"contents": "write", "pull-requests": "write"},
    "template-update/propose": {"contents": "write", "pull-requests": "write"},
    "propose/propose": {"contents": "write", "pull-requests": "write"},
}

CASES = {
    f"{ci}-serving={serving}-monitoring={monitoring}": {
        "ci": ci,
        "serving": serving,
        "monitoring": monitoring,
    }
    for ci, serving, monitoring in itertools.product(
        ("github", "gitlab"), (True, False), (True, False)
    )
}


def tool(name: str) -> str:
    """A validator installed in this repository's virtualenv (uv sync)."""
    path = BIN / name
    assert path.exists(), f"{name} is missing: run `uv sync` (it is a dev dependency)"
    return str(path)


def check(*command: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}", "NO_COLOR": "1"}
    return subprocess.run(
        command, cwd=cwd, capture_output=True, text=True, check=False, timeout=120, env=env
    )


class Project:
    def __init__(self, path: Path, answers: dict[str, Any]) -> None:
        self.path = path
        self.answers = answers
        self.workflows = sorted((path / ".github" / "workflows").glob("*.yml"))
        self.gitlab = path / ".gitlab-ci.yml"
        self.scripts = sorted((path / "ci").glob("*.sh"))

    def github_jobs(self) -> dict[str, dict[str, Any]]:
        jobs = {}
        for workflow in self.workflows:
            data = yaml.safe_load(workflow.read_text())
            for job_id, job in data["jobs"].items():
                jobs[f"{workflow.stem}/{job_id}"] = job
        return jobs

    def gitlab_jobs(self) -> dict[str, dict[str, Any]]:
        data = yaml.safe_load(self.gitlab.read_text())
        reserved = {"workflow", "stages", "variables", "default", "include"}
        return {k: v for k, v in data.items() if k not in reserved and not k.startswith(".")}


_RENDERED: dict[str, Project] = {}


def rendered(case: str, tmp_path_factory: pytest.TempPathFactory) -> Project:
    """The render of ``case``, made once per session and shared by the fixtures below."""
    if case not in _RENDERED:
        dest = tmp_path_factory.mktemp(case) / "project"
        render(dest, CASES[case], skip_tasks=True)
        subprocess.run(["git", "init", "-q", str(dest)], check=True)  # actionlint: repo root
        _RENDERED[case] = Project(dest, CASES[case])
    return _RENDERED[case]


@pytest.fixture(scope="module", params=list(CASES))
def project(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Project:
    return rendered(request.param, tmp_path_factory)


# Checks that exist for one provider only run on that provider's renders (no skips).
@pytest.fixture(scope="module", params=[c for c in CASES if CASES[c]["ci"] == "github"])
def github_project(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Project:
    return rendered(request.param, tmp_path_factory)


@pytest.fixture(scope="module", params=[c for c in CASES if CASES[c]["ci"] == "gitlab"])
def gitlab_project(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Project:
    return rendered(request.param, tmp_path_factory)


# ---------------------------------------------------------------- the validators


def test_actionlint_has_no_findings(github_project: Project) -> None:
    project = github_project
    assert len(project.workflows) >= 2

    result = check(
        tool("actionlint"),
        "-shellcheck",
        tool("shellcheck"),
        *map(str, project.workflows),
        cwd=project.path,
    )

    assert result.returncode == 0, result.stdout + result.stderr


def test_zizmor_offline_pedantic_has_no_findings(github_project: Project) -> None:
    project = github_project

    result = check(
        tool("zizmor"), "--offline", "--persona", "pedantic", str(project.path / ".github")
    )

    assert result.returncode == 0, result.stdout + result.stderr
    assert "No findings to report" in result.stdout, result.stdout


def test_workflows_match_the_vendored_schemas(project: Project) -> None:
    if project.answers["ci"] == "github":
        files = list(map(str, project.workflows))
        schemas = ["vendor.github-workflows", "custom.github-workflows-require-timeout"]
    else:
        files = [str(project.gitlab)]
        schemas = ["vendor.gitlab-ci"]

    for schema in schemas:
        result = check(tool("check-jsonschema"), "--builtin-schema", schema, *files)

        assert result.returncode == 0, f"{schema}: {result.stdout}{result.stderr}"


def gitlab_scripts(project: Project) -> str:
    """Every script line of .gitlab-ci.yml as one POSIX sh file, for shellcheck."""
    data = yaml.safe_load(project.gitlab.read_text())
    lines = ["#!/bin/sh"]
    for name, job in data.items():
        if not isinstance(job, dict):
            continue
        for key in ("before_script", "script", "after_script"):
            for line in job.get(key, []):
                lines += [f"# {name}.{key}", line]
    return "\n".join(lines) + "\n"


def test_shell_passes_shellcheck(project: Project, tmp_path: Path) -> None:
    scripts = list(map(str, project.scripts))
    assert len(scripts) >= 2, "the CI scripts must be rendered"
    if project.answers["ci"] == "gitlab":
        inline = tmp_path / "gitlab-ci-scripts.sh"
        inline.write_text(gitlab_scripts(project))
        scripts.append(str(inline))

    result = check(tool("shellcheck"), "--severity=style", *scripts)

    assert result.returncode == 0, result.stdout + result.stderr


def test_ci_scripts_are_executable(project: Project) -> None:
    not_executable = [p.name for p in project.scripts if not p.stat().st_mode & stat.S_IXUSR]

    assert not not_executable, f"{not_executable} lost the executable bit in the render"


def test_dockerfile_passes_hadolint(project: Project) -> None:
    dockerfile = project.path / "Dockerfile"
    if not project.answers["serving"]:
        assert not dockerfile.exists()
        return
    result = check(tool("hadolint"), str(dockerfile))

    assert result.returncode == 0, result.stdout + result.stderr


# ---------------------------------------------------------------- the policies


def test_actions_are_pinned_to_known_full_shas(github_project: Project) -> None:
    project = github_project
    uses = [
        line.strip()
        for workflow in project.workflows
        for line in workflow.read_text().splitlines()
        if line.strip().startswith(("uses:", "- uses:"))
    ]
    assert uses, "the workflows use actions"

    for line in uses:
        if line.startswith("uses: ./.github/workflows/"):
            continue  # a reusable workflow of this repository, resolved from the same commit
        match = re.search(r"uses: ([\w.-]+/[\w.-]+)@([0-9a-f]{40}) # (v[\d.]+)$", line)
        assert match, f"not pinned to a full SHA with a version comment: {line}"
        action, sha, version = match.groups()
        assert PINNED_ACTIONS.get(action) == (sha, version), f"unknown pin: {line}"


def test_github_permissions_are_least_privilege(github_project: Project) -> None:
    project = github_project
    for workflow in project.workflows:
        assert yaml.safe_load(workflow.read_text())["permissions"] == {}, workflow.name

    for name, job in project.github_jobs().items():
        permissions = job.get("permissions")
        assert permissions is not None, f"{name} has no explicit permissions"
        expected = GITHUB_WRITERS.get(name, {"contents": "read"})
        assert permissions == expected, f"{name}: {permissions}"


def test_no_job_runs_pull_request_code_with_a_write_token(github_project: Project) -> None:
    project = github_project
    for workflow in project.workflows:
        text = workflow.read_text()
        assert "pull_request_target" not in text, workflow.name
        assert "workflow_run" not in text, workflow.name
    comment = project.github_jobs()["ci/comment"]

    assert not any("checkout" in step.get("uses", "") for step in comment["steps"])
    assert "head.repo.full_name == github.repository" in comment["if"]


def test_uv_cache_is_enabled_except_where_an_image_is_published_or_an_alias_moves(
    github_project: Project,
) -> None:
    project = github_project
    for name, job in project.github_jobs().items():
        for step in job.get("steps", []):
            if "astral-sh/setup-uv" in step.get("uses", ""):
                publishing = name in {"image-release/push", "promote/promote"}
                assert step["with"]["enable-cache"] is (not publishing), name


def test_jobs_are_at_parity_between_providers(project: Project) -> None:
    if project.answers["ci"] == "github":
        present = set(project.github_jobs())
        column = 1
    else:
        present = set(project.gitlab_jobs())
        column = 2
    expected = {
        row[column]
        for row in PARITY
        if row[column] is not None and (row[3] is None or project.answers[row[3]])
    }

    assert present == expected, f"missing {expected - present}, unexpected {present - expected}"


def test_gitlab_rules_split_changes_tags_and_schedules(gitlab_project: Project) -> None:
    project = gitlab_project
    jobs = project.gitlab_jobs()
    scheduled = {
        "monitor",
        "retrain",
        "retrain-propose",
        "template-check",
        "template-update",
        "template-propose",
    }

    for name, job in jobs.items():
        rules = yaml.safe_dump(job.get("rules", []))
        if name in scheduled:
            assert '$CI_PIPELINE_SOURCE == "schedule"' in rules, name
        if name == "image-release":
            assert "$CI_COMMIT_TAG" in rules and "docker push" in " ".join(job["script"])
    pushes = [n for n, j in jobs.items() if "docker push" in " ".join(j.get("script", []))]
    assert pushes == (["image-release"] if project.answers["serving"] else [])


def release_shell(project: Project) -> tuple[str, str]:
    """(what runs before the release build, the release job's script) for either provider."""
    if project.answers["ci"] == "github":
        steps = project.github_jobs()["image-release/push"]["steps"]
        runs = [step.get("run", "") for step in steps]
        build = next(i for i, run in enumerate(runs) if "docker build" in run)
        return "\n".join(runs[:build]), runs[build]
    jobs = project.gitlab_jobs()
    return " ".join(jobs["pipeline"]["script"]), " ".join(jobs["image-release"]["script"])


def test_release_images_carry_the_champion_not_the_candidate(project: Project) -> None:
    # models/candidate is written before the quality gate; only an exported alias passed it
    if not project.answers["serving"]:
        pytest.skip("no image without serving")
    before, release = release_shell(project)

    assert "docker build" in release
    assert "candidate" not in release, release
    assert "MODEL_DIR" not in release, "the Dockerfile's default (models/champion) is the one"
    assert "make export-model" in before, before


# ---------------------------------------------------------------- the credentials
#
# Item 9 of issue 14: write credentials never reach a job that runs code under review (a pull
# or merge request, or a template update's tasks). "Project code" is anything that runs what
# the repository or the template brings: make, uv/uvx (and so copier's tasks), python, dvc,
# pre-commit, docker build, or a script of the repository.

PROJECT_COMMAND = re.compile(
    r"(?:^|[;&|(]|\$\(|\bthen\b|\bdo\b|\belse\b)\s*"
    r"(make|uvx?|python3?|dvc|pip|pre-commit|copier|pytest|docker|bash|sh|source|\.)\s",
    re.MULTILINE,
)
PROJECT_SCRIPT = re.compile(r"(?:^|[\s;&|(])((?:\./|ci/)[\w./-]+\.(?:sh|py))\b", re.MULTILINE)
# What a write job may use: check out, fetch an artifact, mint an App token. Nothing that runs
# code of the repository (a local action, setup-uv, a cache that others could have written).
ACTIONS_FOR_WRITERS = {
    "actions/checkout",
    "actions/download-artifact",
    "actions/create-github-app-token",
}
# A use of the write credentials: a secret a GitHub job names, a variable a shell expands.
GITHUB_WRITE_DVC = re.compile(r"secrets\.DVC_CONFIG_LOCAL(?!\w)")
WRITE_DVC = re.compile(r"\$\{?DVC_CONFIG_LOCAL(?!\w)")
BOT_TOKEN = re.compile(r"\$\{?GITLAB_BOT_TOKEN(?!\w)")


def runs_project_code(shell: str) -> list[str]:
    """The commands in ``shell`` that run code of the project or the template."""
    matches = (*PROJECT_COMMAND.finditer(shell), *PROJECT_SCRIPT.finditer(shell))
    return [m.group(1) for m in matches]


def test_project_code_detector_knows_the_old_jobs() -> None:
    """The detector the checks below rely on flags what the old write jobs ran."""
    old_update = 'uvx --from "$COPIER" copier update --trust .\nci/propose.sh b "t" body.md'
    old_retrain = "make setup\nif true; then uv run --no-sync dvc push; fi"

    assert runs_project_code(old_update) == ["uvx", "ci/propose.sh"]
    assert runs_project_code(old_retrain) == ["make", "uv"]
    assert runs_project_code('git apply --index "$patch"\ngh pr create --body-file b') == []
    assert runs_project_code('echo "see ci/README.md, make sure"') == []


def github_write_jobs(project: Project) -> dict[str, dict[str, Any]]:
    jobs = project.github_jobs()
    return {
        name: job
        for name, job in jobs.items()
        if {"contents", "pull-requests"}
        & {k for k, v in job.get("permissions", {}).items() if v == "write"}
    }


def test_github_write_jobs_run_no_project_code(github_project: Project) -> None:
    writers = github_write_jobs(github_project)

    for name, job in writers.items():
        if "uses" in job:  # a reusable workflow: checked as its own job (propose/propose)
            assert job["uses"].startswith("./.github/workflows/propose.yml"), name
            continue
        for step in job["steps"]:
            action = step.get("uses", "").split("@")[0]
            assert not action or action in ACTIONS_FOR_WRITERS, f"{name} uses {action}"
            assert runs_project_code(step.get("run", "")) == [], f"{name}: {step.get('run')}"
    assert {"ci/comment", "propose/propose"} <= set(writers)


def test_github_pull_request_jobs_get_only_read_only_dvc_credentials(
    github_project: Project,
) -> None:
    """Only the scheduled retrain job gets the DVC write credential; nothing triggered by a
    pull request references it (GitHub gives a same-repository pull request every secret its
    workflow names)."""
    holders = set()
    for workflow in github_project.workflows:
        data = yaml.safe_load(workflow.read_text())
        for job_id, job in data["jobs"].items():
            if GITHUB_WRITE_DVC.search(yaml.safe_dump(job)):
                holders.add(f"{workflow.stem}/{job_id}")
                assert "pull_request" not in data[True], f"{workflow.name}/{job_id}"

    assert holders == ({"monitor/retrain"} if github_project.answers["monitoring"] else set())


def test_copier_is_pinned_exactly_and_trusted_only_without_a_write_token(project: Project) -> None:
    lock = tomllib.loads((TEMPLATE_ROOT / "uv.lock").read_text())
    version = next(p["version"] for p in lock["package"] if p["name"] == "copier")
    if project.answers["ci"] == "github":
        texts = {p.name: p.read_text() for p in project.workflows}
        jobs = project.github_jobs()
    else:
        texts = {".gitlab-ci.yml": project.gitlab.read_text()}
        jobs = gitlab_resolved_jobs(project)

    requirements = [
        r for text in texts.values() for r in re.findall(r"copier\s*[=<>~!]=?[^\s\"']*", text)
    ]
    assert requirements and set(requirements) == {f"copier=={version}"}, requirements
    trusting = {name for name, job in jobs.items() if "--trust" in yaml.safe_dump(job)}
    assert trusting == {
        "template-update/update" if project.answers["ci"] == "github" else "template-update"
    }
    for name in trusting:
        job = jobs[name]
        if project.answers["ci"] == "github":
            assert job["permissions"] == {"contents": "read"}, name
        else:
            assert "environment" not in job, f"{name} must not see an environment's write variables"


def gitlab_resolved_jobs(project: Project) -> dict[str, dict[str, Any]]:
    """Every job with its ``extends`` templates merged in (a job's own keys win)."""
    data = yaml.safe_load(project.gitlab.read_text())

    def resolve(job: dict[str, Any]) -> dict[str, Any]:
        parents = job.get("extends", [])
        merged: dict[str, Any] = {}
        for parent in [parents] if isinstance(parents, str) else parents:
            merged.update(resolve(data[parent]))
        variables = {**merged.get("variables", {}), **job.get("variables", {})}
        merged.update(job)
        merged["variables"] = variables
        return merged

    return {name: resolve(job) for name, job in project.gitlab_jobs().items()}


def gitlab_shell(project: Project, job: dict[str, Any]) -> str:
    """What a job runs: its script lines and the text of every ci/ script it calls."""
    lines = [line for key in ("before_script", "script") for line in job.get(key, [])]
    shell = "\n".join(lines)
    called = set(re.findall(r"ci/[\w.-]+\.sh", shell))
    return shell + "".join("\n" + (project.path / script).read_text() for script in sorted(called))


def runs_on_merge_requests(job: dict[str, Any]) -> bool:
    for rule in job.get("rules", [{}]):
        if rule.get("when") == "never":
            continue
        condition = rule.get("if", "")
        if (
            '$CI_PIPELINE_SOURCE == "schedule"' not in condition
            and "$CI_COMMIT_TAG" not in condition
        ):
            return True
    return False


def environment(job: dict[str, Any]) -> str | None:
    env = job.get("environment")
    return env.get("name") if isinstance(env, dict) else env


def test_gitlab_bot_token_only_reaches_jobs_that_run_no_project_code(
    gitlab_project: Project,
) -> None:
    """GITLAB_BOT_TOKEN is Protected and scoped to the `ci-bot` environment (ci/README.md): the
    jobs that use it must declare that environment, and those jobs run no project code, or the
    merge request's (or the new template's) code could read the token."""
    jobs = gitlab_resolved_jobs(gitlab_project)
    users = {
        name for name, job in jobs.items() if BOT_TOKEN.search(gitlab_shell(gitlab_project, job))
    }
    bot_jobs = {name for name, job in jobs.items() if environment(job) == "ci-bot"}

    assert users == bot_jobs, f"use the token without the environment: {users - bot_jobs}"
    assert {"mr-comment", "template-propose"} <= bot_jobs
    for name in bot_jobs:
        job = jobs[name]
        assert runs_project_code(gitlab_shell(gitlab_project, job)) == [], name
        assert "before_script" not in job and ".uv" not in str(job.get("extends")), name


def test_gitlab_write_dvc_credential_stays_out_of_merge_request_pipelines(
    gitlab_project: Project,
) -> None:
    """DVC_CONFIG_LOCAL (write) is Protected and scoped to `dvc-write`: only a scheduled job that
    declares that environment uses it; every job of a merge request pipeline pulls with
    DVC_CONFIG_LOCAL_READONLY."""
    jobs = gitlab_resolved_jobs(gitlab_project)
    users = {
        name for name, job in jobs.items() if WRITE_DVC.search(gitlab_shell(gitlab_project, job))
    }

    assert users == ({"retrain"} if gitlab_project.answers["monitoring"] else set())
    for name in users:
        assert environment(jobs[name]) == "dvc-write", name
        assert not runs_on_merge_requests(jobs[name]), name
    assert "DVC_CONFIG_LOCAL_READONLY" in gitlab_shell(gitlab_project, jobs["pipeline"])
    assert runs_on_merge_requests(jobs["pipeline"]) and runs_on_merge_requests(jobs["mr-comment"])


def test_ci_readme_says_how_to_protect_each_write_credential(project: Project) -> None:
    readme = (project.path / "ci" / "README.md").read_text()
    rows = {
        line.split("|")[2].strip(): line for line in readme.splitlines() if line.startswith("| ")
    }

    assert (
        "`DVC_CONFIG_LOCAL_READONLY`" in rows and "read-only" in rows["`DVC_CONFIG_LOCAL_READONLY`"]
    )
    if project.answers["ci"] == "gitlab":
        assert (
            "**Protected**" in rows["`GITLAB_BOT_TOKEN`"]
            and "**`ci-bot`**" in rows["`GITLAB_BOT_TOKEN`"]
        )
        # The write credential exists where a job uses it: the retrain job (monitoring).
        write = rows.get("`DVC_CONFIG_LOCAL`", "")
        assert bool(write) is project.answers["monitoring"], write
        assert not write or ("**Protected**" in write and "**`dvc-write`**" in write)
        assert "fork" in readme and "model report** artifact" in readme
    else:
        assert (
            "`CI_BOT_APP_CLIENT_ID`, `CI_BOT_APP_PRIVATE_KEY`" in rows and "`CI_BOT_TOKEN`" in rows
        )
        assert "**without those files**" in readme and "**without checks**" in readme


# ---------------------------------------------------------------- bad input is rejected

BAD_WORKFLOW = """\
on: pull_request_target
jobs:
  build:
    runs-on: ubuntu-latest
    steps:
      - uses: actions/checkout@v4
        with:
          ref: ${{ github.event.pull_request.head.sha }}
      - run: echo $TITLE ${{ github.event.pull_request.title }}
"""


@pytest.mark.parametrize("validator", ["actionlint", "zizmor", "check-jsonschema", "shellcheck"])
def test_each_validator_rejects_a_known_bad_input(validator: str, tmp_path: Path) -> None:
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    workflow = tmp_path / ".github" / "workflows" / "bad.yml"
    workflow.parent.mkdir(parents=True)
    workflow.write_text(BAD_WORKFLOW)
    commands = {
        "actionlint": [tool("actionlint"), "-shellcheck", tool("shellcheck"), str(workflow)],
        "zizmor": [tool("zizmor"), "--offline", str(workflow)],
        "check-jsonschema": [
            tool("check-jsonschema"),
            "--builtin-schema",
            "custom.github-workflows-require-timeout",
            str(workflow),
        ],
        "shellcheck": [tool("shellcheck"), str(tmp_path / "bad.sh")],
    }
    (tmp_path / "bad.sh").write_text("#!/bin/sh\nrm -rf $DIR/*\n")

    result = check(*commands[validator], cwd=tmp_path)

    assert result.returncode != 0, f"{validator} accepted a bad input:\n{result.stdout}"


def test_gitlab_schema_rejects_a_bad_pipeline(tmp_path: Path) -> None:
    bad = tmp_path / ".gitlab-ci.yml"
    bad.write_text("lint:\n  script: make lint\n  rules:\n    - iff: $CI_COMMIT_TAG\n")

    result = check(tool("check-jsonschema"), "--builtin-schema", "vendor.gitlab-ci", str(bad))

    assert result.returncode != 0, result.stdout


def test_dependency_updates_are_proposed_by_a_bot_config_that_matches_its_schema(
    project: Project,
) -> None:
    """Issue 17 (ML Test Score, Monitor 1): upstream releases become pull requests."""
    if project.answers["ci"] == "github":
        config, schema = project.path / ".github" / "dependabot.yml", "vendor.dependabot"
        ecosystems = {u["package-ecosystem"] for u in yaml.safe_load(config.read_text())["updates"]}
        assert {"uv", "github-actions", "docker"} <= ecosystems, ecosystems
    else:
        config, schema = project.path / "renovate.json", "vendor.renovate"
        assert json.loads(config.read_text())["lockFileMaintenance"]["enabled"] is True

    result = check(tool("check-jsonschema"), "--builtin-schema", schema, str(config))

    assert result.returncode == 0, f"{schema}: {result.stdout}{result.stderr}"


# ---------------------------------------------------------------- the monitor verdict


@pytest.mark.parametrize(
    ("code", "verdict", "said"),
    [
        (0, "drift=false", ""),
        (1, "drift=true", ""),
        (2, None, "failed without a verdict"),
        (4, None, "not every check was made"),
    ],
)
def test_monitor_script_tells_a_breach_from_a_failure(
    code: int, verdict: str | None, said: str, tmp_path: Path
) -> None:
    """`make monitor` exits 2 whatever failed; the monitor command's own code decides: 1 is a
    threshold breach (retrain), anything else an error that must fail the scheduled job; 4, a
    report written without every check (the registry did not answer), says so."""
    script = TEMPLATE_ROOT / "template" / "{% if ci != 'none' %}ci{% endif %}"
    script = script / "{% if monitoring %}monitor.sh{% endif %}"
    (tmp_path / "Makefile").write_text(f"monitor:\n\t@echo checking; exit {code}\n")
    (tmp_path / "logs").mkdir()
    (tmp_path / "logs" / "predictions.jsonl").write_text("")
    output = tmp_path / "github_output"

    result = subprocess.run(
        [str(script), str(output), "drift"], cwd=tmp_path, capture_output=True, text=True
    )

    if verdict is None:
        assert result.returncode == code, result.stdout + result.stderr
        assert said in result.stderr, result.stderr
        assert not output.exists()
    else:
        assert result.returncode == 0, result.stdout + result.stderr
        assert output.read_text() == f"{verdict}\n"


def test_monitor_script_without_a_log_passes_with_a_warning_in_the_summary(
    tmp_path: Path,
) -> None:
    """Issue 17: the prediction log is not in git, so a fresh project's scheduled job has none
    to read; it must pass, and say so where people look (the job summary), not fail daily."""
    script = TEMPLATE_ROOT / "template" / "{% if ci != 'none' %}ci{% endif %}"
    script = script / "{% if monitoring %}monitor.sh{% endif %}"
    (tmp_path / "Makefile").write_text("monitor:\n\t@echo must not run; exit 2\n")
    output, summary = tmp_path / "github_output", tmp_path / "summary.md"
    env = {**os.environ, "GITHUB_STEP_SUMMARY": str(summary)}
    env.pop("CURRENT", None)
    env.pop("MONITORING_LOG_PATH", None)

    result = subprocess.run(
        [str(script), str(output), "drift"], cwd=tmp_path, capture_output=True, text=True, env=env
    )

    assert result.returncode == 0, result.stdout + result.stderr
    assert output.read_text() == "drift=false\n"
    assert "::warning" in result.stdout and "must not run" not in result.stdout
    assert "no prediction log at logs/predictions.jsonl" in summary.read_text()


def test_monitor_script_reads_the_log_where_the_service_writes_it(tmp_path: Path) -> None:
    script = TEMPLATE_ROOT / "template" / "{% if ci != 'none' %}ci{% endif %}"
    script = script / "{% if monitoring %}monitor.sh{% endif %}"
    (tmp_path / "Makefile").write_text("monitor:\n\t@echo checking $(CURRENT)\n")
    (tmp_path / "shared").mkdir()
    (tmp_path / "shared" / "service.jsonl").write_text("")
    env = {**os.environ, "MONITORING_LOG_PATH": "shared/service.jsonl"}
    env.pop("CURRENT", None)

    result = subprocess.run(
        [str(script), str(tmp_path / "out"), "drift"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env=env,
    )

    assert result.returncode == 0, result.stdout + result.stderr
    assert "checking shared/service.jsonl" in result.stdout, result.stdout


# ---------------------------------------------------------------- promotion across environments
#
# Issue 16: `promote`/`rollback` of staging and production run only when a person starts them,
# in the environment whose protections (required reviewers, protected environments) gate them;
# the registry's and the cluster's credentials reach only those jobs.

ENVIRONMENTS = ["staging", "production"]
DEFAULT_BRANCH_NOT_SCHEDULED = (
    '$CI_COMMIT_BRANCH == $CI_DEFAULT_BRANCH && $CI_PIPELINE_SOURCE != "schedule"'
)
GITHUB_SECRET = re.compile(r"secrets\.(\w+)")


def promote_workflow(project: Project) -> dict[Any, Any]:
    data: dict[Any, Any] = yaml.safe_load(
        (project.path / ".github/workflows/promote.yml").read_text()
    )
    return data


def test_github_promotion_runs_by_hand_on_main_in_the_environment(github_project: Project) -> None:
    workflow = promote_workflow(github_project)
    jobs = workflow["jobs"]

    assert set(workflow[True]) == {"workflow_dispatch"}, "only a person starts a promotion"
    inputs = workflow[True]["workflow_dispatch"]["inputs"]
    assert inputs["environment"]["options"] == ENVIRONMENTS
    assert inputs["reason"]["required"] is True
    assert jobs["approval"]["if"] == "github.ref == 'refs/heads/main'"
    assert jobs["promote"]["needs"] == "approval"
    expected = {"promote", "deploy"} if github_project.answers["serving"] else {"promote"}
    holders = {name for name, job in jobs.items() if GITHUB_SECRET.search(yaml.safe_dump(job))}
    assert holders == expected, f"secrets outside the environment's jobs: {holders - expected}"
    for name in holders:
        assert jobs[name]["environment"] == "${{ inputs.environment }}", name
    if github_project.answers["serving"]:
        assert jobs["deploy"]["needs"] == "promote"
        deploy_secrets = set(GITHUB_SECRET.findall(yaml.safe_dump(jobs["deploy"])))
        assert deploy_secrets == {"KUBECONFIG"}, "the deploy job runs no project code: no registry"
        shell = "\n".join(step.get("run", "") for step in jobs["deploy"]["steps"])
        script = (github_project.path / "ci/deploy.sh").read_text()
        # ci/deploy.sh names itself in its usage lines, and runs only kustomize and kubectl
        assert set(runs_project_code(shell + script)) == {"ci/deploy.sh"}, shell


@pytest.mark.parametrize(
    ("approvers", "actor", "code"),
    [("", "anyone", 0), ("alice bob", "bob", 0), ("alice bob", "mallory", 1), ("alice", "ali", 1)],
)
def test_github_free_plan_approval_admits_only_the_listed_people(
    approvers: str, actor: str, code: int, tmp_path_factory: pytest.TempPathFactory
) -> None:
    project = rendered("github-serving=True-monitoring=True", tmp_path_factory)
    step = promote_workflow(project)["jobs"]["approval"]["steps"][0]

    result = subprocess.run(
        ["bash", "-e", "-c", step["run"]],
        env={"PATH": os.environ["PATH"], "APPROVERS": approvers, "ACTOR": actor},
        capture_output=True,
        text=True,
        check=False,
    )

    assert result.returncode == code, result.stdout + result.stderr


def test_gitlab_promotion_is_manual_on_the_default_branch_in_the_environment(
    gitlab_project: Project,
) -> None:
    jobs = gitlab_resolved_jobs(gitlab_project)
    for env in ENVIRONMENTS:
        promote = jobs[f"promote-{env}"]
        assert environment(promote) == env and promote["variables"]["ENVIRONMENT"] == env
        assert promote["rules"] == [
            {
                "if": DEFAULT_BRANCH_NOT_SCHEDULED,
                "when": "manual",
                "allow_failure": True,
            }
        ], "a person starts it, on the default branch only (never a merge request)"
        if gitlab_project.answers["serving"]:
            deploy = jobs[f"deploy-{env}"]
            assert deploy["needs"] == [f"promote-{env}"] and environment(deploy) == env
            shell = gitlab_shell(gitlab_project, deploy)
            assert set(runs_project_code(shell)) == {"ci/deploy.sh"}, shell
    # Jobs that name the write user's password, other than to swap in the read-only user's.
    mlflow_users = {
        name
        for name, job in jobs.items()
        if "MLFLOW_TRACKING_PASSWORD" in gitlab_shell(gitlab_project, job)
        and "REGISTRY_READ_ONLY=true" not in "\n".join(job.get("script", []))
    }
    assert mlflow_users <= {"pipeline"}, "the promote jobs get the credential from their scope"


FAKE_KUBE = """\
#!/usr/bin/env bash
echo "$(basename "$0") $* (in ${PWD##*/})" >>"$KUBE_LOG"
if [[ "$(basename "$0") ${1:-}" == "kubectl get" ]]; then
  # The running Deployment's image (RUNNING_IMAGE), else what kubectl answers without one.
  if [[ -n "${RUNNING_IMAGE:-}" ]]; then printf '%s' "$RUNNING_IMAGE" && exit 0; fi
  if [[ " $* " == *" --ignore-not-found "* ]]; then exit 0; fi
  echo "Error from server (NotFound): deployments.apps \\"$3\\" not found" >&2
  exit 1
fi
"""


class Deploy:
    """ci/deploy.sh run in ``root`` with kubectl and kustomize stand-ins that log their calls."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.script = TEMPLATE_ROOT / "template" / "{% if ci != 'none' %}ci{% endif %}"
        self.script = self.script / "{% if serving %}deploy.sh{% endif %}"
        overlay = root / "deploy" / "k8s" / "overlays" / "production"
        overlay.mkdir(parents=True)
        (overlay / "kustomization.yaml").write_text("resources: [../../base]\n")
        bin_dir = root / "bin"
        bin_dir.mkdir()
        for name in ("kubectl", "kustomize"):
            (bin_dir / name).write_text(FAKE_KUBE)
            (bin_dir / name).chmod(0o755)
        self.log = root / "kube.log"
        self.env = {"PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}", "KUBE_LOG": str(self.log)}

    def __call__(self, *args: str, running: str = "") -> subprocess.CompletedProcess[str]:
        self.log.unlink(missing_ok=True)
        return subprocess.run(
            [str(self.script), *args],
            cwd=self.root,
            env={**self.env, "RUNNING_IMAGE": running},
            capture_output=True,
            text=True,
        )

    def calls(self) -> list[str]:
        return self.log.read_text().splitlines() if self.log.exists() else []

    def applied(self, image: str) -> list[str]:
        """The calls that set ``image``, apply the production overlay and roll the pods."""
        here = self.root.name
        return [
            f"kustomize edit set image churn={image} (in production)",
            f"kubectl apply -k deploy/k8s/overlays/production (in {here})",
            f"kubectl rollout restart deployment/churn --namespace churn-production (in {here})",
            f"kubectl rollout status deployment/churn --namespace churn-production --timeout 10m "
            f"(in {here})",
        ]


def test_deploy_script_sets_the_image_applies_the_overlay_and_rolls_the_pods(
    tmp_path: Path,
) -> None:
    """kubectl and kustomize are stand-ins that record their calls: no cluster runs here."""
    deploy = Deploy(tmp_path)

    result = deploy("production", "churn", "ghcr.io/team/churn:v2", running="ghcr.io/team/churn:v1")

    assert result.returncode == 0, result.stdout + result.stderr
    assert deploy.calls() == deploy.applied("ghcr.io/team/churn:v2"), "the image given wins"
    assert deploy("qa", "churn").returncode == 2, "an environment without an overlay"
    assert deploy.calls() == [], "nothing applied"


def test_deploy_script_without_an_image_keeps_the_running_one_or_refuses_a_first_deploy(
    tmp_path: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """A promote or rollback moves only the alias: the overlay's placeholder image must not ship."""
    base = (
        rendered("github-serving=True-monitoring=True", tmp_path_factory).path / "deploy/k8s/base"
    )
    containers = yaml.safe_load((base / "deployment.yaml").read_text())["spec"]["template"]["spec"]
    assert [c["name"] for c in containers["containers"]] == ["api"], "the container deploy.sh reads"
    deploy = Deploy(tmp_path)
    read_image = (
        "kubectl get deployment churn --namespace churn-production --ignore-not-found "
        """-o jsonpath={.spec.template.spec.containers[?(@.name=="api")].image} """
        f"(in {tmp_path.name})"
    )

    result = deploy("production", "churn", running="ghcr.io/team/churn:v1")

    assert result.returncode == 0, result.stdout + result.stderr
    assert deploy.calls() == [read_image, *deploy.applied("ghcr.io/team/churn:v1")], (
        "the overlay's image is set to the running one before anything is applied"
    )

    result = deploy("production", "churn")

    assert result.returncode == 2, "a first deploy without an image: " + result.stdout
    assert deploy.calls() == [read_image], "nothing set, applied or rolled"
    assert "A first deploy needs the image: ci/deploy.sh production churn IMAGE" in result.stderr


# ---------------------------------------------------------------- proposing a change
#
# The propose jobs' own shell, taken from the rendered CI files and run against a real (local,
# bare) remote: what the write job does with a patch it did not compute.

FAKE_GH = """\
#!/usr/bin/env bash
# gh stand-in: records each call (and the body it would post); no pull request exists yet.
echo "gh $*" >>"$GH_LOG"
while (($#)); do
  if [[ "$1" == --body-file ]]; then cat "$2" >>"$GH_LOG"; fi
  shift
done
case "$*" in pr\\ view*) exit 1 ;; esac
exit 0
"""


def git_in(repo: Path, *args: str) -> str:
    identity = ["-c", "user.name=t", "-c", "user.email=t@t"]
    return subprocess.run(
        ["git", "-C", str(repo), *identity, *args], capture_output=True, text=True, check=True
    ).stdout


def base_and_patch(tmp_path: Path, project: Path) -> tuple[Path, Path, str]:
    """A bare remote holding the rendered project, a clone of it (the propose job's checkout)
    and a patch computed elsewhere that changes params.yaml and a CI file."""
    remote = tmp_path / "server" / "group" / "project.git"
    subprocess.run(["git", "init", "-q", "--bare", "-b", "main", str(remote)], check=True)
    subprocess.run(["git", "init", "-q", "-b", "main", str(project)], check=True)
    git_in(project, "add", "-A")
    git_in(project, "commit", "-qm", "init", "--no-verify")
    git_in(project, "push", "-q", str(remote), "main")
    ci_file = ".github/workflows/ci.yml" if (project / ".github").exists() else ".gitlab-ci.yml"
    (project / "params.yaml").write_text("seed: 7\n")
    with (project / ci_file).open("a") as handle:
        handle.write("# changed by the template\n")
    git_in(project, "add", "-A")
    patch = tmp_path / "proposal" / "change.patch"
    patch.parent.mkdir()
    patch.write_text(git_in(project, "diff", "--cached", "--binary"))
    (patch.parent / "body.md").write_text("Retrain after drift\n\n| metric | before | after |\n")
    checkout = tmp_path / "checkout"
    subprocess.run(["git", "clone", "-q", str(remote), str(checkout)], check=True)
    return remote, checkout, ci_file


def github_propose(tmp_path: Path, own_token: bool) -> tuple[str, str, str]:
    """Run propose.yml's step; the files pushed, the gh calls (with bodies), the summary."""
    project = render(tmp_path / "project", {"ci": "github"}, skip_tasks=True)
    workflow = yaml.safe_load((project / ".github" / "workflows" / "propose.yml").read_text())
    (step,) = [s for s in workflow["jobs"]["propose"]["steps"] if "run" in s]
    remote, checkout, _ = base_and_patch(tmp_path, project)
    (tmp_path / "runner").mkdir()
    (tmp_path / "runner" / "proposal").symlink_to(tmp_path / "proposal")
    fake = tmp_path / "bin" / "gh"
    fake.parent.mkdir()
    fake.write_text(FAKE_GH)
    fake.chmod(0o755)
    summary, log = tmp_path / "summary.md", tmp_path / "gh.log"
    env = {
        **os.environ,
        "PATH": f"{fake.parent}{os.pathsep}{os.environ['PATH']}",
        "GH_LOG": str(log),
        "RUNNER_TEMP": str(tmp_path / "runner"),
        "GITHUB_STEP_SUMMARY": str(summary),
        "GH_TOKEN": "ghs_secret-value",
        "OWN_TOKEN": "true" if own_token else "false",
        "ARTIFACT": "retrain",
        "BRANCH": "ci/retrain",
        "TITLE": "Retrain after drift",
        "RUN_URL": "https://github.example/o/r/actions/runs/1",
    }
    assert set(step["env"]) <= set(env), "the test sets every variable the step gets"

    result = subprocess.run(
        ["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", step["run"]],
        cwd=checkout, env=env, capture_output=True, text=True, check=False,
    )  # fmt: skip

    assert result.returncode == 0, result.stdout + result.stderr
    pushed = git_in(remote, "diff", "--name-only", "main", "ci/retrain")
    return pushed, log.read_text(), summary.read_text()


def test_github_propose_with_its_own_token_leaves_workflows_out_and_says_so(
    tmp_path: Path,
) -> None:
    pushed, gh_calls, summary = github_propose(tmp_path, own_token=True)

    assert pushed.split() == ["params.yaml"], "a workflow change cannot be pushed: left out"
    assert "gh pr create --head ci/retrain --title Retrain after drift" in gh_calls
    for text in (gh_calls, summary):
        assert "Left out" in text and "- `.github/workflows/ci.yml`" in text, text
        assert "git apply change.patch" in text and "runs/1" in text
        assert "runs no checks" in text and "close and reopen it" in text


def test_github_propose_with_an_app_or_token_pushes_workflows_too(tmp_path: Path) -> None:
    pushed, gh_calls, _ = github_propose(tmp_path, own_token=False)

    assert pushed.split() == [".github/workflows/ci.yml", "params.yaml"]
    assert "Left out" not in gh_calls and "runs no checks" not in gh_calls


def test_gitlab_propose_pushes_the_patch_with_merge_request_options(tmp_path: Path) -> None:
    project = render(tmp_path / "project", {"ci": "gitlab"}, skip_tasks=True)
    jobs = yaml.safe_load((project / ".gitlab-ci.yml").read_text())
    remote, checkout, ci_file = base_and_patch(tmp_path, project)
    subprocess.run(
        ["git", "-C", str(remote), "config", "receive.advertisePushOptions", "true"], check=True
    )
    hook = remote / "hooks" / "pre-receive"  # records the push options the server received
    hook.write_text('#!/bin/sh\nenv | grep ^GIT_PUSH_OPTION_ | sort > "$GIT_DIR/options"\n')
    hook.chmod(0o755)
    (checkout / "proposal").symlink_to(tmp_path / "proposal")  # the compute job's artifact
    env = {
        **os.environ,
        "GITLAB_BOT_TOKEN": "glpat-secret-value",
        "CI_SERVER_URL": f"file://{tmp_path / 'server'}",
        "CI_PROJECT_PATH": "group/project",
        "CI_DEFAULT_BRANCH": "main",
        "CI_PIPELINE_URL": "https://gitlab.example/p/1",
        **jobs["retrain-propose"]["variables"],
    }

    result = subprocess.run(
        ["sh", "-e", "-c", "\n".join(jobs[".propose"]["script"])],
        cwd=checkout, env=env, capture_output=True, text=True, check=False,
    )  # fmt: skip

    assert result.returncode == 0, result.stdout + result.stderr
    pushed = git_in(remote, "diff", "--name-only", "main", "ci/retrain")
    assert pushed.split() == sorted([ci_file, "params.yaml"]), "GitLab has no workflow rule"
    options = (remote / "options").read_text()
    assert "merge_request.create" in options and "merge_request.target=main" in options
    assert "merge_request.title=Retrain after drift (scheduled monitor)" in options
    assert (
        "merge_request.description=Retrain after drift (opened by https://gitlab.example/p/1)"
        in options
    )
    assert "glpat-secret-value" not in result.stdout + result.stderr


def test_gitlab_propose_jobs_receive_the_patch_only(gitlab_project: Project) -> None:
    """Any other artifact file would land in the propose job's checkout, where a changed
    tracked file (reports/metrics.json) makes `git apply --index` refuse the patch."""
    jobs = gitlab_resolved_jobs(gitlab_project)
    proposers = {name: job for name, job in jobs.items() if name.endswith("-propose")}

    assert set(proposers) == {"template-propose"} | (
        {"retrain-propose"} if gitlab_project.answers["monitoring"] else set()
    )
    for name, job in proposers.items():
        (source,) = job["needs"]
        assert jobs[source]["artifacts"] == {"paths": ["proposal/"], "expire_in": "14 days"}, name


def test_gitlab_propose_without_a_patch_proposes_nothing(tmp_path: Path) -> None:
    project = render(tmp_path / "project", {"ci": "gitlab"}, skip_tasks=True)
    jobs = yaml.safe_load((project / ".gitlab-ci.yml").read_text())

    result = subprocess.run(
        ["sh", "-e", "-c", "\n".join(jobs[".propose"]["script"])],
        cwd=tmp_path, capture_output=True, text=True, check=False,
    )  # fmt: skip

    assert result.returncode == 0 and "nothing to propose" in result.stdout


# ---------------------------------------------------------------- plots in the report


def plots_markdown() -> Any:
    """ci/plots_markdown.py, loaded from the template (it needs no rendering)."""
    path = TEMPLATE_ROOT / "template" / "{% if ci != 'none' %}ci{% endif %}" / "plots_markdown.py"
    spec = importlib.util.spec_from_file_location("plots_markdown", path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_plots_become_mermaid_curves_and_a_confusion_table() -> None:
    # `dvc plots diff main --json` lists the workspace first; the report shows the base first.
    rows = [
        {"fpr": "0.0", "tpr": "0.0", "rev": "workspace"},
        {"fpr": "1.0", "tpr": "1.0", "rev": "workspace"},
        {"fpr": "0.0", "tpr": "0.5", "rev": "main"},
        {"fpr": "1.0", "tpr": "1.0", "rev": "main"},
    ]
    # main holds one row per test row (before 0.6.0), the workspace a count per pair
    matrix = [{"actual": "a", "predicted": "a", "rev": "main"} for _ in range(2)]
    matrix.append({"actual": "a", "predicted": "b", "rev": "main"})
    matrix.append({"actual": "a", "predicted": "a", "count": "3", "rev": "workspace"})
    plots = {
        "ROC": [{"revisions": ["workspace", "main"], "content": {
            "mark": {"type": "line"}, "data": {"values": rows},
            "encoding": {"x": {"field": "fpr"}, "y": {"field": "tpr"}}}}],
        "Confusion": [{"revisions": ["workspace", "main"], "content": {
            "facet": {}, "data": {"values": matrix},
            "spec": {"encoding": {"x": {"field": "actual"}, "y": {"field": "predicted"}}}}}],
        "Residuals": [{"revisions": ["workspace"], "content": {"mark": "point"}}],
    }  # fmt: skip

    markdown = plots_markdown().render(plots)

    assert "xychart-beta" in markdown and 'x-axis "fpr"' in markdown
    base, change = re.findall(r"^    line \[(.*)\]$", markdown, re.MULTILINE)
    assert base.split(", ")[:2] == ["0.5000", "0.5250"], "base (main) first, interpolated"
    assert change.split(", ")[:2] == ["0.0000", "0.0500"]
    assert "blue: `main`, orange: `workspace`" in markdown
    assert "| a | 2 → 3 | 1 → 0 |" in markdown, markdown
    assert "Not drawn here (see the HTML report): Residuals." in markdown


# ---------------------------------------------------------------- copier check-update


def test_copier_check_update_exits_2_when_the_template_has_a_newer_tag(tmp_path: Path) -> None:
    """The scheduled template-update job relies on this exit code."""
    template = tmp_path / "template"
    subprocess.run(
        # --no-tags: this repository's own release tags would outrank the test's v0.0.x tags.
        ["git", "clone", "-q", "--no-hardlinks", "--no-tags", str(TEMPLATE_ROOT), str(template)],
        check=True,
    )
    git = ["git", "-C", str(template), "-c", "user.name=t", "-c", "user.email=t@t"]
    subprocess.run([*git, "tag", "v0.0.1"], check=True)
    project = tmp_path / "project"
    copier = [str(BIN / "copier")]
    subprocess.run(
        [*copier, "copy", "-q", "--trust", "--defaults", "--skip-tasks", "--vcs-ref", "v0.0.1",
         str(template), str(project)],
        check=True,
    )  # fmt: skip
    subprocess.run(["git", "init", "-q", str(project)], check=True)
    subprocess.run(["git", "-C", str(project), "add", "-A"], check=True)
    subprocess.run(
        ["git", "-C", str(project), "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm",
         "init"],
        check=True,
    )  # fmt: skip
    check_update = [*copier, "check-update", "--quiet", str(project)]

    up_to_date = check(*check_update)
    subprocess.run([*git, "commit", "-q", "--allow-empty", "-m", "next"], check=True)
    subprocess.run([*git, "tag", "v0.0.2"], check=True)
    newer = check(*check_update)

    assert up_to_date.returncode == 0, up_to_date.stdout + up_to_date.stderr
    assert newer.returncode == 2, newer.stdout + newer.stderr


# ---------------------------------------------------------------- pre-commit


def test_generated_pre_commit_config_clones_no_repository(project: Project) -> None:
    config = yaml.safe_load((project.path / ".pre-commit-config.yaml").read_text())
    ids = {hook["id"] for repo in config["repos"] for hook in repo["hooks"]}

    assert {repo["repo"] for repo in config["repos"]} == {"local"}
    assert {"ruff-check", "ruff-format", "mypy", "check-merge-conflict", "dvc-checkout"} <= ids
    assert ("actionlint" in ids) is (project.answers["ci"] == "github")
    assert ("check-gitlab-ci" in ids) is (project.answers["ci"] == "gitlab")
    for repo in config["repos"]:
        for hook in repo["hooks"]:
            for dependency in hook.get("additional_dependencies", []):
                assert re.fullmatch(r"[\w-]+==[\w.]+", dependency), f"unpinned: {dependency}"


def test_this_repository_pre_commit_config_clones_no_repository() -> None:
    config = yaml.safe_load((TEMPLATE_ROOT / ".pre-commit-config.yaml").read_text())

    assert {repo["repo"] for repo in config["repos"]} == {"local"}
    result = check(
        tool("pre-commit"), "validate-config", ".pre-commit-config.yaml", cwd=TEMPLATE_ROOT
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_ci_pipeline_stops_with_a_clear_error_when_dvc_data_is_unreachable(
    tmp_path: Path,
) -> None:
    """A user CSV lives in the DVC remote: without credentials CI must say so, not fail in
    dvc repro with a missing-dependency trace."""
    project = render(tmp_path / "project", {"ci": "github"}, skip_tasks=True)
    tracked = project / "data" / "raw" / "dataset.csv.dvc"
    tracked.parent.mkdir(parents=True, exist_ok=True)
    tracked.write_text("outs:\n- path: dataset.csv\n")
    env = {k: v for k, v in os.environ.items() if k not in {"DVC_CONFIG_LOCAL", "DVC_PULL"}}

    result = subprocess.run(
        ["ci/pipeline.sh"], cwd=project, capture_output=True, text=True, env=env, check=False
    )

    assert result.returncode == 1
    assert "./data/raw/dataset.csv is tracked by DVC but not here" in result.stderr
    assert "DVC_CONFIG_LOCAL_READONLY" in result.stderr


@pytest.mark.slow
@pytest.mark.long(minutes=2)
def test_pre_commit_passes_and_ci_scripts_report_on_a_fresh_project(tmp_path: Path) -> None:
    """A fresh render of its own: hooks may rewrite files and the scripts commit, which the
    shared fixtures must not see. Hooks come from the project's venv or PyPI only (no git
    clone). Then the CI scripts run as a pull request job would: pipeline, then the report
    against the base commit."""
    project = render(tmp_path / "project")
    run(["make", "setup"], project)
    run(["git", "add", "--all"], project)
    before = run(["git", "status", "--porcelain"], project).stdout
    home = tmp_path / "pre-commit-home"  # hook environments installed from PyPI, from scratch

    hooks = run(
        ["uv", "run", "--no-sync", "pre-commit", "run", "--all-files", "--show-diff-on-failure"],
        project,
        check=False,
        env={"PRE_COMMIT_HOME": str(home)},
    )

    assert hooks.returncode == 0, hooks.stdout[-6000:] + hooks.stderr[-3000:]
    assert "actionlint" in hooks.stdout and "zizmor" in hooks.stdout, hooks.stdout
    assert run(["git", "status", "--porcelain"], project).stdout == before, "a hook changed files"

    # Base branch: the pipeline's outputs committed, as on main.
    identity = {
        "GIT_AUTHOR_NAME": "t",
        "GIT_AUTHOR_EMAIL": "t@example.com",
        "GIT_COMMITTER_NAME": "t",
        "GIT_COMMITTER_EMAIL": "t@example.com",
        "PRE_COMMIT_HOME": str(home),
    }
    run(["ci/pipeline.sh"], project)
    run(["git", "add", "--all"], project)
    run(["git", "commit", "-qm", "base"], project, env=identity)  # the hooks pass on it too
    # The change under review: a parameter, in a fresh CI job (no MLflow database yet).
    params = project / "params.yaml"
    params.write_text(params.read_text().replace("learning_rate: 0.1", "learning_rate: 0.05"))
    (project / "mlflow.db").unlink()

    run(["ci/pipeline.sh"], project)
    run(["ci/report.sh", "HEAD", str(tmp_path / "report"), "https://ci.example/run/1"], project)

    report = (tmp_path / "report" / "report.md").read_text()
    assert "| reports/metrics.json" in report and "| Change" in report, report
    assert "learning_rate" in report and "| 0.1 " in report, report
    assert "https://ci.example/run/1" in report
    assert report.count("xychart-beta") == 2 and "| actual \\ predicted |" in report, report
    assert (tmp_path / "report" / "plots" / "index.html").stat().st_size > 1000


# No Docker engine here: a `docker` stand-in runs the image's CMD (read from the rendered
# Dockerfile) from the project's venv with the image's settings, so ci/smoke-image.sh is
# exercised against the real service. Only the docker sub-commands the script uses exist.
DOCKER_STAND_IN = """\
#!/usr/bin/env bash
set -euo pipefail
case "$1" in
  run)  # run --detach --publish HOST_PORT:8000 IMAGE
    SERVING_MODEL_URI="$STAND_IN_MODEL" SERVING_HOST=127.0.0.1 SERVING_PORT="${4%%:*}" \\
      SERVING_WORKERS=1 "$STAND_IN_BIN/$STAND_IN_CMD" CMD_ARGS >"$STAND_IN_LOG" 2>&1 &
    echo "$!" ;;
  ps)  # ps --quiet --filter id=ID --filter status=running
    if kill -0 "${4#id=}" 2>/dev/null; then echo "${4#id=}"; fi ;;
  rm)  # rm --force ID
    kill "$3" 2>/dev/null || true; while kill -0 "$3" 2>/dev/null; do sleep 0.2; done ;;
  logs) cat "$STAND_IN_LOG" ;;
  *) echo "docker stand-in: $1 is not supported" >&2; exit 2 ;;
esac
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def smoke(
    project: Path, model: Path, tmp_path: Path, timeout: int
) -> subprocess.CompletedProcess[str]:
    cmd = re.search(r"^CMD (\[.*\])$", (project / "Dockerfile").read_text(), re.MULTILINE)
    assert cmd, "the Dockerfile has an exec-form CMD"
    executable, *args = json.loads(cmd.group(1))
    stand_in = tmp_path / "bin" / "docker"
    stand_in.parent.mkdir()
    stand_in.write_text(DOCKER_STAND_IN.replace("CMD_ARGS", " ".join(args)))
    stand_in.chmod(0o755)
    env = {
        "PATH": f"{stand_in.parent}{os.pathsep}{os.environ['PATH']}",
        "STAND_IN_BIN": str(project / ".venv" / "bin"),
        "STAND_IN_CMD": executable,
        "STAND_IN_MODEL": str(model),
        "STAND_IN_LOG": str(tmp_path / "service.log"),
        "SMOKE_PORT": str(free_port()),
        "SMOKE_TIMEOUT": str(timeout),
        "SMOKE_MODEL_URI": str(model),
    }
    return run(["ci/smoke-image.sh", "model-service:ci"], project, check=False, env=env)


@pytest.mark.slow
def test_smoke_script_passes_when_the_service_is_ready(
    default_project: Path, tmp_path: Path
) -> None:
    result = smoke(default_project, default_project / "models" / "candidate", tmp_path, 120)

    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.startswith("ready:"), result.stdout


@pytest.mark.slow
def test_smoke_script_fails_when_the_built_model_does_not_load(
    default_project: Path, tmp_path: Path
) -> None:
    result = smoke(default_project, tmp_path / "no-such-model", tmp_path, 15)

    # Either no model at all (503 until the timeout) or a fallback model: both must fail.
    assert result.returncode == 1, result.stdout + result.stderr
    assert re.search(r"did not become ready|is ready but does not serve", result.stderr)
