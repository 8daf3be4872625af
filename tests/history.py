"""Older versions of this template, rebuilt from its own git history, for update tests.

``RECORDED`` is the one list of template versions that the update and migration tests start
from. Each entry is a commit of this repository, with what a project generated from it looks
like. Add a release tag (or a commit) here when a release changes what users have, with its
update test, ``test_update_from_<version>.py`` (``test_update.py`` checks that each has one).

``template_clone`` makes a throwaway clone in which the working tree (HEAD plus uncommitted
changes, as ``helpers.render`` sees it) is one more commit, tagged with the version the
changelog is preparing, and every released version is tagged at its release commit, so copier
sees real version numbers and runs ``_migrations``.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

from .changelog import missing_tags, parse_changelog
from .helpers import TEMPLATE_ROOT


@dataclass(frozen=True)
class Recorded:
    """A template version users may have generated a project from."""

    ref: str
    what: str


RECORDED = {
    # Development snapshot with the question `model` (estimator written to params.yaml),
    # renamed `estimator` in 0.1.0; no CI workflow, no serving code yet. Projects from here
    # exercise the rename migration. (The foundation commit c8fd95c before it differs by
    # little more than that question; it is not tested separately, to keep CI short.)
    "question-model": Recorded(
        "a3dad6f384bf8a4074d498fa7194039cf75eb372", "adds question 'model' (renamed 'estimator')"
    ),
    # Development snapshot with generated CI (GitHub workflows, ci/ scripts) and the first
    # serving code (FastAPI app, Dockerfile); monitoring still in progress. Projects from here
    # have a workflow for the user to edit.
    "ci-and-serving": Recorded(
        "b90329245d917da5231e4532ef7bfcea07122472", "CI workflows and the serving skeleton"
    ),
    # Release 0.5.0 (its release commit by the changelog's rule), the last before the
    # hardening of 0.6.0: paths.raw becomes a folder, feedback closes, the loader refuses
    # pickle. Most users have a project from here.
    "0.5.0": Recorded("fe965fd1ecfbfedb8d9506238c462deff4516cda", "release 0.5.0"),
}


def git(*args: str, cwd: Path) -> str:
    """Run git in ``cwd`` and return its output; fail with git's message."""
    result = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise AssertionError(f"git {' '.join(args)} failed in {cwd}:\n{result.stderr}")
    return result.stdout


def next_version() -> str:
    """The version the working tree will be released as: the changelog's top entry."""
    entries = parse_changelog((TEMPLATE_ROOT / "CHANGELOG.md").read_text(encoding="utf-8"))
    return entries[0].version


def template_clone(dest: Path) -> Path:
    """Clone this repository to ``dest`` with the working tree committed and tagged."""
    git("clone", "--quiet", "--no-checkout", str(TEMPLATE_ROOT), str(dest), cwd=dest.parent)
    snapshot = ["--git-dir", str(dest / ".git"), "--work-tree", str(TEMPLATE_ROOT)]
    git(*snapshot, "add", "--all", cwd=TEMPLATE_ROOT)
    git(
        *snapshot,
        "-c", "user.name=copier-mlops tests", "-c", "user.email=tests@example.com",
        "commit", "--quiet", "--allow-empty", "--no-verify", "-m", "working tree",
        cwd=TEMPLATE_ROOT,
    )  # fmt: skip
    git("reset", "--quiet", "--hard", cwd=dest)
    for name, recorded in RECORDED.items():
        found = subprocess.run(
            ["git", "cat-file", "-e", f"{recorded.ref}^{{commit}}"], cwd=dest, check=False
        )
        assert found.returncode == 0, (
            f"recorded version {name} ({recorded.ref}) is not in this clone's history: "
            "the update tests need the full history (git fetch --unshallow --tags)"
        )
    # Tags do not travel with every clone: released versions are tagged at their release
    # commits (the changelog's rule), so that copier reports real versions, not 0.0.0.postN.
    for command in missing_tags(dest):
        git(*command.split()[1:], cwd=dest)
    version = next_version()
    if not git("tag", "--list", version, cwd=dest).strip():
        git("tag", version, cwd=dest)  # the release being prepared
    return dest
