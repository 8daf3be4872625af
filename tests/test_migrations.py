"""Migration scripts in ``hooks/``: each is idempotent, and copier runs it on update."""

from __future__ import annotations

import importlib.util
import io
import re
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import copier
import pytest
import yaml

from .helpers import TEMPLATE_ROOT, project_env
from .history import RECORDED, git


def load_hook(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, TEMPLATE_ROOT / "hooks" / f"{name}.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


migrate_rename_answer = load_hook("migrate_rename_answer")

ANSWERS = """\
# Changes here will be overwritten by Copier; NEVER EDIT MANUALLY
_commit: a3dad6f
_src_path: /somewhere/copier-mlops
ci: github
model: linear
task: regression
"""


def test_rename_moves_the_answer_and_keeps_everything_else() -> None:
    migrated = migrate_rename_answer.rename_answer(ANSWERS, "model", "estimator")

    assert yaml.safe_load(migrated) == {
        "_commit": "a3dad6f",
        "_src_path": "/somewhere/copier-mlops",
        "ci": "github",
        "estimator": "linear",
        "task": "regression",
    }
    assert migrated.replace("estimator:", "model:") == ANSWERS, "only the key may change"


def test_rename_is_idempotent() -> None:
    once = migrate_rename_answer.rename_answer(ANSWERS, "model", "estimator")

    assert migrate_rename_answer.rename_answer(once, "model", "estimator") == once


def test_rename_keeps_a_new_answer_and_drops_the_stale_old_one() -> None:
    both = ANSWERS + "estimator: random_forest\n"

    migrated = yaml.safe_load(migrate_rename_answer.rename_answer(both, "model", "estimator"))

    assert migrated["estimator"] == "random_forest" and "model" not in migrated


def test_rename_ignores_a_key_that_only_starts_with_the_old_name() -> None:
    text = "model_name: churn\n"

    assert migrate_rename_answer.rename_answer(text, "model", "estimator") == text


def test_script_reports_a_broken_answers_file(tmp_path: Path) -> None:
    answers = tmp_path / ".copier-answers.yml"
    answers.write_text("- not\n- a mapping\n")

    code = migrate_rename_answer.main(["--answers-file", str(answers), "model", "estimator"])

    assert code == 1, "a file that is not a mapping must fail loudly, not be rewritten"
    assert answers.read_text() == "- not\n- a mapping\n"


def test_script_without_an_answers_file_does_nothing(tmp_path: Path) -> None:
    missing = tmp_path / "absent.yml"

    assert migrate_rename_answer.main(["--answers-file", str(missing), "a", "b"]) == 0
    assert not missing.exists()


# The generated template-update workflow runs `copier update --skip-answered`; people run it
# without. Both must carry the answer over.
@pytest.mark.parametrize("skip_answered", [False, True], ids=["asked", "skip-answered"])
def test_update_carries_the_renamed_question_over(
    template_repo: Path, tmp_path: Path, skip_answered: bool
) -> None:
    # given a project generated when the question was still called `model`
    project = tmp_path / "project"
    old = RECORDED["question-model"].ref
    copier.run_copy(
        str(template_repo), str(project), data={"model": "linear"}, defaults=True,
        unsafe=True, quiet=True, vcs_ref=old, skip_tasks=True,
    )  # fmt: skip
    assert yaml.safe_load((project / ".copier-answers.yml").read_text())["model"] == "linear"
    git("init", "--quiet", "--initial-branch=main", cwd=project)
    git("add", ".", cwd=project)
    git("-c", "user.name=u", "-c", "user.email=u@example.com", "commit", "-qm", "old",
        cwd=project)  # fmt: skip

    # when it is updated non-interactively to this version
    copier.run_update(
        str(project), defaults=True, overwrite=True, unsafe=True, quiet=True, skip_tasks=True,
        skip_answered=skip_answered,
    )  # fmt: skip

    # then the answer lives on under the new name, and params.yaml keeps the user's choice
    answers = yaml.safe_load((project / ".copier-answers.yml").read_text())
    assert answers.get("estimator") == "linear", f"answer lost: {answers}"
    assert "model" not in answers
    params = yaml.safe_load((project / "params.yaml").read_text())
    assert params["train"]["model"] == "linear", "the default must not replace the answer"
    diff = subprocess.run(
        ["git", "diff", "--unified=0", "--", "params.yaml"],
        cwd=project, capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    assert not re.search(r"^[-+]\s+model:", diff, re.M), f"train.model was rewritten:\n{diff}"


def test_interactive_update_with_skip_answered_does_not_ask_the_renamed_question(
    template_repo: Path, tmp_path: Path
) -> None:
    import pexpect

    # given a project answered when the question was still called `model`
    project = tmp_path / "project"
    copier.run_copy(
        str(template_repo), str(project), data={"model": "random_forest"}, defaults=True,
        unsafe=True, quiet=True, vcs_ref=RECORDED["question-model"].ref, skip_tasks=True,
    )  # fmt: skip
    git("init", "--quiet", "--initial-branch=main", cwd=project)
    git("add", ".", cwd=project)
    git("-c", "user.name=u", "-c", "user.email=u@example.com", "commit", "-qm", "old",
        cwd=project)  # fmt: skip

    # when a person updates interactively, asked only what has no answer yet
    transcript = io.StringIO()
    child = pexpect.spawn(
        sys.executable,
        ["-m", "copier", "update", "--trust", "--skip-answered", "--skip-tasks",
         "--vcs-ref", "HEAD"],
        cwd=str(project),
        env=project_env({"TERM": "xterm", "COLUMNS": "200", "PROMPT_TOOLKIT_NO_CPR": "1"}),
        encoding="utf-8", timeout=90, dimensions=(40, 400),
    )  # fmt: skip
    child.logfile_read = transcript
    try:
        # a question new in this version (if any) keeps its default; then copier finishes
        while child.expect(["\U0001f3a4", pexpect.EOF]) == 0:
            child.expect("\n")
            child.send("\r")
    finally:
        child.close(force=True)

    # then the renamed question was not asked, and the answer lives on under its new name
    assert "scikit-learn estimator" not in transcript.getvalue(), transcript.getvalue()[-2000:]
    answers = yaml.safe_load((project / ".copier-answers.yml").read_text())
    assert answers.get("estimator") == "random_forest", answers


migrate_rename_setting = load_hook("migrate_rename_setting")
RENAMES = {
    "SERVING_FALLBACK": "SERVING_ROLLOUT_FALLBACK",
    "MONITORING_CANARY_SHARE": "SERVING_ROLLOUT_CANARY_SHARE",
}
COMPOSE = """\
services:
  api:
    environment:
      SERVING_FALLBACK: baseline
      MONITORING_CANARY_SHARE: "0.1"
      MY_SERVING_FALLBACK: kept
      SERVING_FALLBACK_NOTE: kept
"""


def test_setting_rename_replaces_whole_names_only() -> None:
    migrated, kept = migrate_rename_setting.rename_settings(COMPOSE, RENAMES)

    assert migrated == COMPOSE.replace(
        "      SERVING_FALLBACK:", "      SERVING_ROLLOUT_FALLBACK:"
    ).replace("MONITORING_CANARY_SHARE:", "SERVING_ROLLOUT_CANARY_SHARE:"), migrated
    assert kept == []


def test_setting_rename_is_idempotent() -> None:
    once, _ = migrate_rename_setting.rename_settings(COMPOSE, RENAMES)

    assert migrate_rename_setting.rename_settings(once, RENAMES) == (once, [])


def test_setting_rename_keeps_an_old_name_beside_its_new_one() -> None:
    """Renaming would set the same key twice in one mapping: the user decides."""
    both = COMPOSE + "      SERVING_ROLLOUT_FALLBACK: none\n"

    migrated, kept = migrate_rename_setting.rename_settings(both, RENAMES)

    assert kept == ["SERVING_FALLBACK"]
    assert "      SERVING_FALLBACK: baseline\n" in migrated
    assert "SERVING_ROLLOUT_CANARY_SHARE" in migrated


def test_setting_rename_script_touches_only_deployment_files(tmp_path: Path) -> None:
    # given the old names in project files, one with Windows line endings, and in .env
    (tmp_path / "compose.yaml").write_bytes(COMPOSE.replace("\n", "\r\n").encode())
    (tmp_path / "deploy/k8s/base").mkdir(parents=True)
    (tmp_path / "deploy/k8s/base/api.yaml").write_text("- name: MONITORING_CANARY_SHARE\n")
    (tmp_path / ".env").write_text("SERVING_FALLBACK=none\n")
    (tmp_path / "ops").mkdir()
    (tmp_path / "ops/blob").write_bytes(b"\xff\xfeSERVING_FALLBACK")
    argv = ["--root", str(tmp_path), *(f"{old}={new}" for old, new in RENAMES.items())]

    # when the migration runs twice
    assert migrate_rename_setting.main(argv) == 0
    first = {path: path.read_bytes() for path in tmp_path.rglob("*") if path.is_file()}
    assert migrate_rename_setting.main(argv) == 0

    # then the compose file and the manifest are renamed, line endings kept, and nothing else
    compose = (tmp_path / "compose.yaml").read_bytes()
    assert b"      SERVING_ROLLOUT_FALLBACK: baseline\r\n" in compose, compose
    assert b"MY_SERVING_FALLBACK: kept\r\n" in compose
    assert (tmp_path / "deploy/k8s/base/api.yaml").read_text() == (
        "- name: SERVING_ROLLOUT_CANARY_SHARE\n"
    )
    assert (tmp_path / ".env").read_text() == "SERVING_FALLBACK=none\n", "not the template's"
    assert (tmp_path / "ops/blob").read_bytes() == b"\xff\xfeSERVING_FALLBACK"
    assert {path: path.read_bytes() for path in first} == first, "a second run changes nothing"


def test_setting_rename_refuses_a_malformed_pair(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as stopped:
        migrate_rename_setting.main(["SERVING_FALLBACK"])

    assert stopped.value.code == 2
    assert "expected OLD=NEW" in capsys.readouterr().err


def test_update_from_0_5_0_renames_the_settings_a_team_set_in_compose(
    template_repo: Path, tmp_path: Path
) -> None:
    # given a 0.5.0 project whose compose file sets a canary share and .env a fallback
    project = tmp_path / "project"
    copier.run_copy(
        str(template_repo), str(project), defaults=True, unsafe=True, quiet=True,
        vcs_ref=RECORDED["0.5.0"].ref, skip_tasks=True,
    )  # fmt: skip
    compose = project / "compose.yaml"
    old = '      SERVING_WORKERS: "2"\n'
    compose.write_text(
        compose.read_text().replace(old, old + '      MONITORING_CANARY_SHARE: "0.1"\n')
    )
    (project / ".env").write_text("SERVING_FALLBACK=baseline\n")
    git("init", "--quiet", "--initial-branch=main", cwd=project)
    git("add", ".", cwd=project)
    git("-c", "user.name=u", "-c", "user.email=u@example.com", "commit", "-qm", "old",
        cwd=project)  # fmt: skip

    # when it is updated to this version
    copier.run_update(
        str(project), defaults=True, overwrite=True, unsafe=True, quiet=True, skip_tasks=True
    )

    # then compose sets the new name with the team's value; .env, not the template's, is kept
    text = compose.read_text()
    assert '      SERVING_ROLLOUT_CANARY_SHARE: "0.1"\n' in text, text
    assert "MONITORING_CANARY_SHARE" not in text and "<<<<<<<" not in text
    assert (project / ".env").read_text() == "SERVING_FALLBACK=baseline\n"


# ------------------------------------------------------------- modules moved into engine/

migrate_moved_files = load_hook("migrate_moved_files")
OLD_TEMPLATE_PATH = "template/src/{{ package_name }}/{% if serving %}serving{% endif %}/compiled.py"
BASE = "def a():\n    return 1\n\n\ndef b():\n    return 2\n"
# The new version changes ``a`` (and its module's path); users may have changed ``b``.
MOVED = "def a():\n    return 10\n\n\ndef b():\n    return 2\n"


def commit_all(folder: Path, message: str) -> str:
    git("add", "-A", cwd=folder)
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", message, cwd=folder)
    return git("rev-parse", "HEAD", cwd=folder).strip()


@pytest.fixture
def moved_project(tmp_path: Path) -> tuple[Path, Path]:
    """A template whose history has the old module, and a project generated from it after
    the new version rendered the moved module (what copier leaves for `after` migrations)."""
    template, project = tmp_path / "template", tmp_path / "project"
    (template / OLD_TEMPLATE_PATH).parent.mkdir(parents=True)
    git("init", "-q", cwd=template)
    (template / OLD_TEMPLATE_PATH).write_text(BASE)
    old = commit_all(template, "old version")
    (project / "src/pkg/serving").mkdir(parents=True)
    (project / "src/pkg/engine").mkdir(parents=True)
    git("init", "-q", cwd=project)
    (project / ".copier-answers.yml").write_text(f"_commit: {old}\n_src_path: {template}\n")
    (project / "src/pkg/serving/compiled.py").write_text(BASE)
    commit_all(project, "generated")
    (project / "src/pkg/engine/compiled.py").write_text(MOVED)
    return template, project


def run_moves(template: Path, project: Path) -> list[str]:
    notes: list[str] = migrate_moved_files.migrate(project, "pkg", template, ".copier-answers.yml")
    return notes


def test_an_unedited_moved_module_goes_and_the_new_one_stays(
    moved_project: tuple[Path, Path],
) -> None:
    template, project = moved_project

    notes = run_moves(template, project)

    assert not (project / "src/pkg/serving/compiled.py").exists(), "the old module is gone"
    assert (project / "src/pkg/engine/compiled.py").read_text() == MOVED
    assert notes == []


def test_edits_of_a_moved_module_are_merged_into_its_new_path(
    moved_project: tuple[Path, Path],
) -> None:
    template, project = moved_project
    (project / "src/pkg/serving/compiled.py").write_text(BASE.replace("return 2", "return 3"))

    notes = run_moves(template, project)
    again = run_moves(template, project)

    assert (project / "src/pkg/engine/compiled.py").read_text() == MOVED.replace(
        "return 2", "return 3"
    ), "the template's change and the user's edit, both"
    assert not (project / "src/pkg/serving/compiled.py").exists()
    assert notes == [] and again == [], "a clean merge; a second run has nothing to do"


def test_an_edit_the_new_version_also_changed_leaves_conflict_markers(
    moved_project: tuple[Path, Path],
) -> None:
    template, project = moved_project
    (project / "src/pkg/serving/compiled.py").write_text(BASE.replace("return 1", "return 5"))

    notes = run_moves(template, project)

    merged = (project / "src/pkg/engine/compiled.py").read_text()
    assert "<<<<<<< after updating" in merged and "return 5" in merged and "return 10" in merged
    assert notes and "resolve the conflicts" in notes[0], notes


def test_without_the_old_version_an_edited_module_is_kept_beside(
    moved_project: tuple[Path, Path],
) -> None:
    template, project = moved_project
    (project / "src/pkg/serving/compiled.py").write_text("# mine\n" + BASE)
    (project / ".copier-answers.yml").write_text("_commit: 0.0.0-unknown\n")
    commit_all(project, "answers of a template without history")

    notes = run_moves(template, project)

    assert (project / "src/pkg/serving/compiled.py.orig").read_text() == "# mine\n" + BASE
    assert (project / "src/pkg/engine/compiled.py").read_text() == MOVED
    assert notes and "compiled.py.orig" in notes[0], notes


def test_files_of_the_users_beside_a_moved_module_are_never_replaced(
    moved_project: tuple[Path, Path],
) -> None:
    # given an edited old module, and the user's own files with the names a move might use
    template, project = moved_project
    serving = project / "src/pkg/serving"
    (serving / "compiled.py").write_text(BASE.replace("return 2", "return 3"))
    (serving / "compiled.py.base").write_text("mine: base\n")
    (serving / "compiled.py.orig").write_text("mine: orig\n")

    # when the edits are merged (with the old version's text), then kept beside (without it)
    merged = run_moves(template, project)
    (serving / "compiled.py").write_text("# mine\n" + BASE)
    (project / ".copier-answers.yml").write_text("_commit: 0.0.0-unknown\n")
    commit_all(project, "answers of a template without history")
    kept = run_moves(template, project)

    # then the user's files are as they were, and the module kept beside has a name of its own
    assert merged == [], merged
    assert (serving / "compiled.py.base").read_text() == "mine: base\n"
    assert (serving / "compiled.py.orig").read_text() == "mine: orig\n"
    assert (serving / "compiled.py.orig.1").read_text() == "# mine\n" + BASE
    assert kept and "compiled.py.orig.1" in kept[0], kept
