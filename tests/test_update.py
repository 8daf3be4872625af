"""``copier update`` from older versions of this template, and ``copier copy`` into a repository
that was not generated from it (adoption).

The slow update tests play a maintainer whose project was generated from a recorded older
version (``history.RECORDED``), who then made the usual edits (``USER EDITS`` below), and who
updates to this working tree: ``test_update_from_<version>.py`` is that test for one version, a
file each so that CI's two workers can share them. Each checks that every edit survives, that
the template's changes arrive, that a conflict is reported and refused by pre-commit, and that
the updated project still passes ``make pipeline`` and ``make test``.
"""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import copier
import pytest
import yaml

from .helpers import DATA, PACKAGE, TEMPLATE_ROOT, project_env, render, run
from .history import RECORDED, git

USER = ["-c", "user.name=Maintainer", "-c", "user.email=maintainer@example.com"]
MARK = "edited by the maintainer"

# ------------------------------------------------------------------- user edits
# Edits of generated files: a function old text -> new text. After the update, a file without
# a conflict must equal the same edit applied to a fresh render of the new version.
README_NOTE = f"\n> Team notes: the churn squad owns this project ({MARK}).\n"


def edit_params(text: str) -> str:
    return text.replace("  test_size: 0.2\n", f"  test_size: 0.25  # {MARK}\n").replace(
        "seed: 42\n", f"seed: 7  # {MARK}\n"
    )


def edit_readme(text: str) -> str:
    title, _, rest = text.partition("\n")
    return f"{title}\n{README_NOTE}{rest}"


def edit_workflow(text: str) -> str:
    return f"# {MARK}: required check for the main branch\n{text}"


def edit_route(text: str) -> str:
    old = 'router = APIRouter(tags=["predict"])\n'
    return text.replace(old, f'router = APIRouter(tags=["predict", "scoring"])  # {MARK}\n')


def edit_setting(text: str) -> str:
    old = "    max_batch_size: int = Field(1000,"
    return text.replace(old, f"    # {MARK}: our clients send at most 500 rows\n{old[:-5]}500,")


GENERATED_EDITS: dict[str, Callable[[str], str]] = {
    "params.yaml": edit_params,
    "README.md": edit_readme,
    # only when the old version has them: a workflow, a route and a settings value
    ".github/workflows/ci.yml": edit_workflow,
    f"src/{PACKAGE}/serving/routes/predict.py": edit_route,
    f"src/{PACKAGE}/serving/settings.py": edit_setting,
}

# New files: a module and its test, and a data file tracked with `dvc add`.
USER_MODULE = f'''\
"""Ratios the team derives from raw columns ({MARK})."""

from __future__ import annotations


def safe_ratio(numerator: float, denominator: float) -> float:
    """Return ``numerator / denominator``, or 0.0 when the denominator is 0."""
    return numerator / denominator if denominator else 0.0
'''
USER_TEST = f'''\
"""Tests of the team's ratios ({MARK})."""

from {PACKAGE}.core.ratios import safe_ratio


def test_safe_ratio_handles_a_zero_denominator() -> None:
    assert safe_ratio(3.0, 2.0) == 1.5
    assert safe_ratio(1.0, 0.0) == 0.0
'''
NEW_FILES = {
    f"src/{PACKAGE}/core/ratios.py": USER_MODULE,
    "tests/test_ratios.py": USER_TEST,
}
USER_DATA = "data/external/customers.csv"

# Files whose conflict markers would stop the tools the test needs before it resolves them.
NOT_FOR_THE_CONFLICT = {
    ".copier-answers.yml",
    ".pre-commit-config.yaml",
    "pyproject.toml",
    "uv.lock",
    "Makefile",
    *GENERATED_EDITS,
}
CONFLICT_NOTE = f"# {MARK}: a local note next to a line the template changes"
IMPORT = re.compile(r"\s*(?:from\s+\S+\s+)?import\s")

# Files a render writes but whose content depends on the machine or on the first copy only.
NOT_COMPARED = {"uv.lock"}


def copier_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """Run this repository's copier as a user would, from the project folder."""
    return run([sys.executable, "-m", "copier", *args], cwd)


def commit(
    project: Path, message: str, *, hooks: bool = True, check: bool = True, skip: str = ""
) -> subprocess.CompletedProcess[str]:
    """``git add -A && git commit``, with the project's pre-commit hooks unless ``hooks=False``
    (``skip``: hook ids to leave out, pre-commit's ``SKIP``)."""
    run(["git", "add", "--all"], project)
    command = ["git", *USER, "commit", "--quiet", "-m", message]
    flags = [] if hooks else ["--no-verify"]
    return run([*command, *flags], project, check=check, env={"SKIP": skip})


def tracked_files(root: Path) -> list[str]:
    out = git("ls-files", "--cached", "--others", "--exclude-standard", cwd=root)
    return sorted(set(out.splitlines()))


def rendered_files(root: Path) -> list[str]:
    """Every file of a render (not a git repository: renders skip the tasks)."""
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


def conflicts(root: Path) -> dict[str, str]:
    """Files with unresolved update conflicts: inline markers or ``.rej`` files."""
    found = {}
    for name in tracked_files(root):
        path = root / name
        if not path.is_file():
            continue  # staged by a refused commit, then deleted
        if name.endswith(".rej"):
            found[name] = "reject file"
        else:
            text = path.read_text(encoding="utf-8", errors="replace")
            if re.search(r"^<<<<<<< ", text, re.M) and re.search(r"^>>>>>>> ", text, re.M):
                found[name] = "conflict markers"
    return found


CONFLICT = re.compile(
    r"^<<<<<<< [^\n]*\n(?P<ours>.*?)^=======\n(?P<theirs>.*?)^>>>>>>> [^\n]*\n", re.M | re.S
)


def resolve(root: Path, name: str, *, take_template: bool) -> None:
    """Resolve a file's inline conflicts as a maintainer would.

    ``take_template``: the template's side, plus the project's own lines (those with ``MARK``);
    otherwise the project's side ("before updating") as it was.
    """

    def choose(match: re.Match[str]) -> str:
        if not take_template:
            return match["ours"]
        ours = [line for line in match["ours"].splitlines(keepends=True) if MARK in line]
        return "".join(ours) + match["theirs"]

    path = root / name
    path.write_text(CONFLICT.sub(choose, path.read_text(encoding="utf-8")), encoding="utf-8")


def pick_conflict(old: Path, new: Path) -> tuple[str, str] | None:
    """A line of a generated file that the new version changes: editing it must conflict.

    Returns ``(file, line)``, preferring Python modules, or None when no such file exists.
    """
    names = [
        name
        for name in rendered_files(old)
        if name not in NOT_FOR_THE_CONFLICT and (new / name).is_file()
    ]
    names.sort(key=lambda name: (not name.endswith(".py"), name))
    for name in names:
        old_lines = (old / name).read_text(encoding="utf-8").splitlines(keepends=True)
        new_lines = set((new / name).read_text(encoding="utf-8").splitlines(keepends=True))
        for line in old_lines:
            # not an import: a comment inside an import block is a lint finding (ruff's I001)
            # that the maintainer's commit would have to fix, which is not what is under test
            if line.strip() and line not in new_lines and not IMPORT.match(line):
                return name, line
    return None


def render_version(template: Path, ref: str, dest: Path, data: dict[str, str]) -> Path:
    copier.run_copy(
        str(template), str(dest), data=data, defaults=True, unsafe=True, quiet=True,
        vcs_ref=ref, skip_tasks=True,
    )  # fmt: skip
    return dest


# Answers for the old render: the `model` question only exists in its recorded version.
OLD_ANSWERS = {
    "question-model": {"model": "linear"},
    "ci-and-serving": {"estimator": "random_forest"},
    "0.5.0": {"estimator": "hist_gradient_boosting"},
}


def test_every_recorded_version_has_an_update_test() -> None:
    """Each version's update test is a file of its own, so that CI's two workers share them."""
    files = {path.name for path in Path(__file__).parent.glob("test_update_from_*.py")}
    assert files == {update_test_file(version) for version in RECORDED}, files


def update_test_file(version: str) -> str:
    return f"test_update_from_{re.sub(r'[^a-z0-9]', '_', version)}.py"


def update_keeps_user_edits(version: str, template_repo: Path, tmp_path: Path) -> None:
    """The update test of one recorded version (see the module's docstring)."""
    recorded = RECORDED[version]
    answers = OLD_ANSWERS[version]
    project = tmp_path / "project"

    # given a project generated from the older version, set up and committed
    copier.run_copy(
        str(template_repo), str(project), data=answers, defaults=True, unsafe=True,
        quiet=True, vcs_ref=recorded.ref,
    )  # fmt: skip
    run(["make", "setup"], project)
    # (without hooks: what is under test is the update; versions before 0.1.0 also refused to
    # commit their uv.lock, over 1 MB)
    commit(project, "Generated from copier-mlops", hooks=False)

    # ... then edited the way maintainers do
    edited: dict[str, str] = {}
    for name, edit in GENERATED_EDITS.items():
        if (project / name).is_file():
            before = (project / name).read_text(encoding="utf-8")
            (project / name).write_text(edit(before), encoding="utf-8")
            assert edit(before) != before, f"the {name} edit must change the old version's file"
            edited[name] = edit(before)
    for name, text in NEW_FILES.items():
        (project / name).write_text(text, encoding="utf-8")
    (project / USER_DATA).parent.mkdir(parents=True)
    (project / USER_DATA).write_bytes((DATA / "customers.csv").read_bytes())
    run(["uv", "run", "dvc", "add", USER_DATA], project)
    dvc_record = (project / f"{USER_DATA}.dvc").read_text()

    # ... including one line the new version also changes
    old_render = render_version(template_repo, recorded.ref, tmp_path / "old", answers)
    migrated = {("estimator" if k == "model" else k): v for k, v in answers.items()}
    new_render = render_version(template_repo, "HEAD", tmp_path / "new", migrated)
    conflict = pick_conflict(old_render, new_render)
    if conflict:
        # a comment line right above it, indented like it: harmless in code, YAML or Markdown
        name, line = conflict
        indent = line[: len(line) - len(line.lstrip())]
        text = (project / name).read_text(encoding="utf-8")
        note = f"{indent}{CONFLICT_NOTE}\n"
        (project / name).write_text(text.replace(line, note + line, 1), encoding="utf-8")
    commit(project, "Team edits", hooks=False)

    # when the maintainer updates to this version of the template
    copier_cli("update", "--trust", "--defaults", "--vcs-ref", "HEAD", cwd=project)

    # then the template's version is recorded and renamed answers are carried over
    new_answers = yaml.safe_load((project / ".copier-answers.yml").read_text())
    assert (
        new_answers["_commit"] == git("describe", "--tags", "--always", cwd=template_repo).strip()
    )
    assert all(new_answers[k] == v for k, v in migrated.items()), new_answers
    assert "model" not in new_answers

    # ... a conflict is reported in the files (copier itself exits 0) ...
    found = conflicts(project)
    if conflict:
        assert conflict[0] in found, f"the edited line must conflict: {found}"
    unexpected = set(found) - {conflict[0] if conflict else ""}
    assert not unexpected - set(edited), f"conflicts outside the edited files: {found}"

    # ... the template's changes arrived everywhere else (before any hook touches a file) ...
    skip_if_exists = set(
        yaml.safe_load((TEMPLATE_ROOT / "copier.yml").read_text())["_skip_if_exists"]
    )
    for name in rendered_files(new_render):
        if name in NOT_COMPARED or name in skip_if_exists or name in found:
            continue
        expected = (new_render / name).read_text(encoding="utf-8")
        expected = GENERATED_EDITS[name](expected) if name in edited else expected
        actual = (project / name).read_text(encoding="utf-8")
        assert actual == expected, f"{name} differs from the new version plus the user's edit"

    # ... and pre-commit refuses to commit it, nor a .rej file (`copier update --conflict rej`)
    run(["make", "setup"], project)
    rej = project / "README.md.rej"
    rej.write_text("@@ -1 +1 @@\n-# old title\n+# new title\n")
    # (mypy left out here only to save time: the final commit below runs every hook)
    refused = commit(project, "Update with conflicts", check=False, skip="mypy")
    assert refused.returncode != 0, "committing conflicts must fail"
    report = refused.stdout + refused.stderr
    assert re.search(r"no \.rej files[^\n]*Failed", report), report[-3000:]
    if found:
        assert re.search(r"no merge conflict markers[^\n]*Failed", report), report[-3000:]
    rej.unlink()
    for name in found:
        resolve(project, name, take_template=bool(conflict) and name == conflict[0])
    assert not conflicts(project)

    # ... and, once resolved, every user edit is still there
    for name, text in NEW_FILES.items():
        assert (project / name).read_text(encoding="utf-8") == text, f"{name} changed"
    assert (project / f"{USER_DATA}.dvc").read_text() == dvc_record
    assert f"/{Path(USER_DATA).name}" in (project / "data/external/.gitignore").read_text()
    params = yaml.safe_load((project / "params.yaml").read_text())
    assert params["seed"] == 7 and params["split"]["test_size"] == 0.25, params
    assert README_NOTE in (project / "README.md").read_text(encoding="utf-8")
    for name in edited:
        assert MARK in (project / name).read_text(encoding="utf-8"), f"{name} lost its edit"
    if f"src/{PACKAGE}/serving/settings.py" in edited:  # the value, not only the comment
        settings = (project / f"src/{PACKAGE}/serving/settings.py").read_text(encoding="utf-8")
        assert "max_batch_size: int = Field(500," in settings, settings
    if conflict:
        assert CONFLICT_NOTE in (project / conflict[0]).read_text(encoding="utf-8")

    # ... and the updated project runs, and commits with every hook passing
    run(["make", "pipeline"], project)
    run(["make", "test"], project)
    commit(project, "Update to the new template version")


def test_pre_commit_config_blocks_rej_files_and_markers(tmp_path: Path) -> None:
    project = render(tmp_path / "project", skip_tasks=True)
    config = yaml.safe_load((project / ".pre-commit-config.yaml").read_text())
    hooks = {hook["id"]: hook for repo in config["repos"] for hook in repo["hooks"]}

    assert "--assume-in-merge" in hooks["check-merge-conflict"]["entry"], (
        "without --assume-in-merge, markers left by copier (not a git merge) pass"
    )
    assert hooks["no-rej-files"]["language"] == "fail"
    assert re.search(hooks["no-rej-files"]["files"], "src/pkg/cli.py.rej")


@pytest.mark.slow  # three renders with their tasks (uv lock)
def test_update_tasks_leave_the_users_data_and_schema_alone(
    template_repo: Path, tmp_path: Path
) -> None:
    # given a project generated from a CSV, whose data and contract the team has since changed
    project = tmp_path / "project"
    answers = {"dataset_path": str(DATA / "customers.csv"), "target_column": "churn"}
    copier.run_copy(
        str(template_repo), str(project), data=answers, defaults=True, unsafe=True,
        quiet=True, vcs_ref="HEAD",
    )  # fmt: skip
    commit(project, "Generated", hooks=False)
    data, schema = project / "data/raw/dataset.csv", project / "data/schema.yaml"
    data.write_text("\n".join(data.read_text().splitlines()[:-5]) + "\n")
    schema.write_text(schema.read_text() + f"# {MARK}\n")
    commit(project, "New data, stricter contract", hooks=False)
    before = {path: path.read_bytes() for path in (data, schema)}

    # when it is updated (to the same version: every task runs, nothing should change)
    copier_cli("update", "--trust", "--defaults", "--vcs-ref", "HEAD", cwd=project)

    # then the first-copy tasks (git init, CSV import) did not run again
    assert {path: path.read_bytes() for path in before} == before
    assert git("status", "--porcelain", cwd=project) == "", "an update to the same version"


# ------------------------------------------------------------------- adoption
LEGACY = {
    "README.md": "# Legacy churn model\n\nNotebooks and a script.\n",
    "Makefile": "train:\n\tpython train.py\n",
    ".gitignore": "*.csv\n",
    "train.py": "print('training')\n",
    "notebooks/eda.ipynb": '{"cells": []}\n',
}


@pytest.fixture
def legacy_repo(tmp_path: Path) -> Path:
    """A repository that was not generated from the template, with everything committed."""
    repo = tmp_path / "legacy"
    for name, text in LEGACY.items():
        (repo / name).parent.mkdir(parents=True, exist_ok=True)
        (repo / name).write_text(text)
    git("init", "--quiet", "--initial-branch=main", cwd=repo)
    git("add", ".", cwd=repo)
    git(*USER, "commit", "--quiet", "-m", "legacy", cwd=repo)
    return repo


def adopt(repo: Path, *flags: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "copier", "copy", "--trust", "--defaults", "--skip-tasks",
         "--vcs-ref", "HEAD", *flags, str(TEMPLATE_ROOT), str(repo)],
        capture_output=True, text=True, env=project_env(), stdin=subprocess.DEVNULL,
        check=False,
    )  # fmt: skip


def assert_untouched(repo: Path, names: list[str]) -> None:
    for name in names:
        assert (repo / name).read_text() == LEGACY[name], f"adoption changed {name}"


def test_adoption_without_flags_stops_at_the_first_existing_file(legacy_repo: Path) -> None:
    result = adopt(legacy_repo)

    assert result.returncode != 0, "a non-interactive copy must not silently overwrite"
    assert "--overwrite" in result.stdout + result.stderr
    assert_untouched(legacy_repo, list(LEGACY))


def test_adoption_with_skip_keeps_every_existing_file(legacy_repo: Path) -> None:
    result = adopt(legacy_repo, "--skip", "*")

    assert result.returncode == 0, result.stderr
    assert_untouched(legacy_repo, list(LEGACY))
    for name in (".copier-answers.yml", "dvc.yaml", "params.yaml", f"src/{PACKAGE}/cli.py"):
        assert (legacy_repo / name).is_file(), f"{name} must be added"


def test_adoption_with_overwrite_only_replaces_clashing_files(legacy_repo: Path) -> None:
    result = adopt(legacy_repo, "--overwrite")

    assert result.returncode == 0, result.stderr
    assert_untouched(legacy_repo, ["train.py", "notebooks/eda.ipynb"])
    replaced = git("diff", "--name-only", cwd=legacy_repo).split()
    assert sorted(replaced) == [".gitignore", "Makefile", "README.md"], (
        "only files the template also has are replaced, and git shows each of them"
    )
