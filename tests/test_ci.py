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
}

# The same jobs on both providers: (what it does, GitHub "workflow/job", GitLab job, needs).
PARITY = (
    ("lint: ruff, format, mypy, pre-commit hooks", "ci/lint", "lint", None),
    ("tests", "ci/test", "test", None),
    ("dvc pull (with credentials) + dvc repro, model report", "ci/pipeline", "pipeline", None),
    ("comment the model report on the PR/MR", "ci/comment", "mr-comment", None),
    ("build the image, smoke-test /ready", "image/smoke", "image-smoke", "serving"),
    (
        "tags: build, smoke-test, push to the registry",
        "image-release/push",
        "image-release",
        "serving",
    ),
    ("scheduled: make monitor", "monitor/monitor", "monitor", "monitoring"),
    ("on drift: retrain, open a PR/MR", "monitor/retrain", "retrain", "monitoring"),
    ("weekly: copier check-update", "template-update/check", "template-check", None),
    ("copier update, open a PR/MR", "template-update/update", "template-update", None),
)

# Jobs that may write (everything else gets read-only contents at most).
GITHUB_WRITERS = {
    "ci/comment": {"pull-requests": "write"},
    "image-release/push": {"contents": "read", "packages": "write"},
    "monitor/retrain": {"contents": "write", "pull-requests": "write"},
    "template-update/update": {"contents": "write", "pull-requests": "write"},
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
    assert len(scripts) >= 3, "the CI scripts must be rendered"
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


def test_uv_cache_is_enabled_except_where_an_image_is_published(github_project: Project) -> None:
    project = github_project
    for name, job in project.github_jobs().items():
        for step in job.get("steps", []):
            if "astral-sh/setup-uv" in step.get("uses", ""):
                publishing = name == "image-release/push"
                assert step["with"]["enable-cache"] is (not publishing), name


def test_jobs_are_at_parity_between_providers(project: Project) -> None:
    if project.answers["ci"] == "github":
        present = set(project.github_jobs())
        column = 1
    else:
        present = set(project.gitlab_jobs())
        column = 2
    expected = {row[column] for row in PARITY if row[3] is None or project.answers[row[3]]}

    assert present == expected, f"missing {expected - present}, unexpected {present - expected}"


def test_gitlab_rules_split_changes_tags_and_schedules(gitlab_project: Project) -> None:
    project = gitlab_project
    jobs = project.gitlab_jobs()
    scheduled = {"monitor", "retrain", "template-check", "template-update"}

    for name, job in jobs.items():
        rules = yaml.safe_dump(job.get("rules", []))
        if name in scheduled:
            assert '$CI_PIPELINE_SOURCE == "schedule"' in rules, name
        if name == "image-release":
            assert "$CI_COMMIT_TAG" in rules and "docker push" in " ".join(job["script"])
    pushes = [n for n, j in jobs.items() if "docker push" in " ".join(j.get("script", []))]
    assert pushes == (["image-release"] if project.answers["serving"] else [])


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


# ---------------------------------------------------------------- the monitor verdict


@pytest.mark.parametrize(("code", "verdict"), [(0, "drift=false"), (1, "drift=true"), (2, None)])
def test_monitor_script_tells_a_breach_from_a_failure(
    code: int, verdict: str | None, tmp_path: Path
) -> None:
    """`make monitor` exits 2 whatever failed; the monitor command's own code decides: 1 is a
    threshold breach (retrain), anything else an error that must fail the scheduled job."""
    script = TEMPLATE_ROOT / "template" / "{% if ci != 'none' %}ci{% endif %}"
    script = script / "{% if monitoring %}monitor.sh{% endif %}"
    (tmp_path / "Makefile").write_text(f"monitor:\n\t@echo checking; exit {code}\n")
    output = tmp_path / "github_output"

    result = subprocess.run(
        [str(script), str(output), "drift"], cwd=tmp_path, capture_output=True, text=True
    )

    if verdict is None:
        assert result.returncode == code, result.stdout + result.stderr
        assert "failed without a verdict" in result.stderr
        assert not output.exists()
    else:
        assert result.returncode == 0, result.stdout + result.stderr
        assert output.read_text() == f"{verdict}\n"


# ---------------------------------------------------------------- proposing a change


def test_propose_pushes_a_branch_with_merge_request_options(tmp_path: Path) -> None:
    """The GitLab path of ci/propose.sh against a real (local, bare) remote: the branch with
    the change arrives, pushed with the merge-request push options; the token is not logged."""
    project = render(tmp_path / "project", {"ci": "gitlab"}, skip_tasks=True)
    remote = tmp_path / "server" / "group" / "project.git"
    subprocess.run(["git", "init", "-q", "--bare", str(remote)], check=True)
    subprocess.run(
        ["git", "-C", str(remote), "config", "receive.advertisePushOptions", "true"], check=True
    )
    hook = remote / "hooks" / "pre-receive"  # records the push options the server received
    hook.write_text('#!/bin/sh\nenv | grep ^GIT_PUSH_OPTION_ | sort > "$GIT_DIR/options"\n')
    hook.chmod(0o755)
    git = ["git", "-C", str(project), "-c", "user.name=t", "-c", "user.email=t@t"]
    subprocess.run(["git", "init", "-q", "-b", "main", str(project)], check=True)
    subprocess.run([*git, "add", "-A"], check=True)
    subprocess.run([*git, "commit", "-qm", "init", "--no-verify"], check=True)
    (project / "params.yaml").write_text("seed: 7\n")
    body = tmp_path / "body.md"
    body.write_text("Retrain after drift\n\n| metric | before | after |\n")
    env = {
        **os.environ,
        "GITLAB_CI": "true",
        "GITLAB_BOT_TOKEN": "glpat-secret-value",
        "CI_SERVER_URL": f"file://{tmp_path / 'server'}",
        "CI_PROJECT_PATH": "group/project",
        "CI_DEFAULT_BRANCH": "main",
        "CI_PIPELINE_URL": "https://gitlab.example/p/1",
    }
    env.pop("GITHUB_ACTIONS", None)

    result = subprocess.run(
        ["ci/propose.sh", "ci/retrain", "Retrain after drift", str(body)],
        cwd=project, env=env, capture_output=True, text=True, check=False,
    )  # fmt: skip

    assert result.returncode == 0, result.stdout + result.stderr
    pushed = subprocess.run(
        ["git", "-C", str(remote), "show", "ci/retrain:params.yaml"],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert pushed.stdout == "seed: 7\n"
    options = (remote / "options").read_text()
    assert "merge_request.create" in options and "merge_request.target=main" in options
    assert (
        "merge_request.description=Retrain after drift (opened by https://gitlab.example/p/1)"
        in options
    )
    assert "glpat-secret-value" not in result.stdout + result.stderr


def test_propose_refuses_to_run_outside_ci(tmp_path: Path) -> None:
    project = render(tmp_path / "project", {"ci": "github"}, skip_tasks=True)
    env = {k: v for k, v in os.environ.items() if k not in {"GITHUB_ACTIONS", "GITLAB_CI"}}

    result = subprocess.run(
        ["ci/propose.sh", "b", "t", "body.md"], cwd=project, env=env, capture_output=True,
        text=True, check=False,
    )  # fmt: skip

    assert result.returncode == 1
    assert "run me in GitHub Actions or GitLab CI" in result.stderr


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
    matrix = [{"actual": "a", "predicted": "a", "rev": rev} for rev in ("workspace", "main")]
    matrix.append({"actual": "a", "predicted": "b", "rev": "main"})
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
    assert "| a | 1 → 1 | 1 → 0 |" in markdown, markdown
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
    assert "DVC_CONFIG_LOCAL" in result.stderr


@pytest.mark.slow
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
