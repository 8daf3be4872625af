"""Version check: a changed template needs a changelog entry above the newest release, found
from the changelog's own history, so it holds in a clone without tags."""

from __future__ import annotations

import subprocess
import tomllib
from pathlib import Path

import pytest

from .changelog import check, missing_tags, parse_changelog, problems
from .helpers import TEMPLATE_ROOT

CHANGELOG = TEMPLATE_ROOT / "CHANGELOG.md"


def git(repo: Path, *args: str) -> str:
    return subprocess.run(
        ["git", *args], cwd=repo, capture_output=True, text=True, check=True
    ).stdout


def check_repo(repo: Path) -> list[str]:
    """The version check, run on the repository at ``repo`` (needs its full history)."""
    if git(repo, "rev-parse", "--is-shallow-repository").strip() == "true":
        pytest.fail(
            "the version check needs the full history: run `git fetch --unshallow` "
            "(in CI: actions/checkout with fetch-depth: 0)"
        )
    return check(repo)


def test_this_repository_has_a_changelog_entry_for_every_template_change() -> None:
    found = check_repo(TEMPLATE_ROOT)

    assert not found, "\n".join(found)


def test_the_changelog_version_is_this_repository_version() -> None:
    top = parse_changelog(CHANGELOG.read_text(encoding="utf-8"))[0]
    pyproject = tomllib.loads((TEMPLATE_ROOT / "pyproject.toml").read_text(encoding="utf-8"))

    assert pyproject["project"]["version"] == top.version, (
        "pyproject.toml's version must be the changelog's top entry"
    )


ENTRY = "## {version} ({date}) — title\n\n### Added\n\n- things\n\n### Upgrade notes\n\n- none\n\n"


def commit(repo: Path, message: str) -> None:
    git(repo, "add", ".")
    git(repo, "-c", "user.name=t", "-c", "user.email=t@example.com", "commit", "-qm", message)


@pytest.fixture
def released(tmp_path: Path) -> Path:
    """A small template repository, WITHOUT TAGS, whose 0.1.0 is released (its heading has a
    date) by its second commit, with a template change before that release."""
    repo = tmp_path / "repo"
    (repo / "template").mkdir(parents=True)
    (repo / "template" / "README.md.jinja").write_text("# {{ project_name }}\n")
    (repo / "docs").mkdir()
    (repo / "docs" / "index.md").write_text("docs\n")
    changelog = repo / "CHANGELOG.md"
    changelog.write_text("# Changelog\n\n" + ENTRY.format(version="0.1.0", date="unreleased"))
    git(repo, "init", "--quiet", "--initial-branch=main")
    commit(repo, "0.1.0 in preparation")
    (repo / "template" / "README.md.jinja").write_text("# {{ project_name }} (v1)\n")
    changelog.write_text(changelog.read_text().replace("unreleased", "2026-01-31"))
    commit(repo, "release 0.1.0")
    assert git(repo, "tag", "--list") == "", "the fixture must have no tags"
    return repo


def test_an_unchanged_release_passes(released: Path) -> None:
    assert check_repo(released) == []


def test_a_template_change_without_a_new_entry_fails_in_a_clone_without_tags(
    released: Path, tmp_path: Path
) -> None:
    clone = tmp_path / "clone"
    git(tmp_path, "clone", "--quiet", "--no-tags", str(released), str(clone))
    (clone / "template" / "README.md.jinja").write_text("# {{ project_name }}!\n")

    found = check_repo(clone)

    assert len(found) == 1 and "template/README.md.jinja" in found[0], found
    assert "since release 0.1.0" in found[0], found


def test_a_committed_template_change_without_a_new_entry_fails(released: Path) -> None:
    (released / "template" / "README.md.jinja").write_text("# {{ project_name }}!\n")
    commit(released, "change after the release")

    assert any("template/README.md.jinja" in problem for problem in check_repo(released))


def test_a_new_template_file_without_a_new_entry_fails(released: Path) -> None:
    (released / "template" / "Makefile").write_text("all:\n")

    assert any("template/Makefile" in problem for problem in check_repo(released))


def test_a_change_outside_the_template_needs_no_entry(released: Path) -> None:
    (released / "docs" / "index.md").write_text("better docs\n")

    assert check_repo(released) == []


def test_a_template_change_with_an_unreleased_entry_passes(released: Path) -> None:
    (released / "template" / "README.md.jinja").write_text("# {{ project_name }}!\n")
    changelog = released / "CHANGELOG.md"
    new_entry = ENTRY.format(version="0.1.1", date="unreleased")
    changelog.write_text(changelog.read_text().replace("## 0.1.0", new_entry + "## 0.1.0"))

    assert check_repo(released) == []


def test_releasing_the_new_entry_moves_the_release_commit(released: Path) -> None:
    changelog = released / "CHANGELOG.md"
    new_entry = ENTRY.format(version="0.1.1", date="unreleased")
    changelog.write_text(changelog.read_text().replace("## 0.1.0", new_entry + "## 0.1.0"))
    (released / "template" / "README.md.jinja").write_text("# {{ project_name }}!\n")
    commit(released, "0.1.1 work")
    changelog.write_text(changelog.read_text().replace("unreleased", "2026-02-28"))
    commit(released, "release 0.1.1")

    assert check_repo(released) == []
    (released / "template" / "README.md.jinja").write_text("# {{ project_name }}?\n")
    assert any("since release 0.1.1" in problem for problem in check_repo(released))


def test_missing_tags_are_printed_at_their_release_commits(released: Path) -> None:
    release = git(released, "rev-parse", "HEAD").strip()

    assert missing_tags(released) == [f"git tag 0.1.0 {release}"]
    git(released, "tag", "0.1.0", release)
    assert missing_tags(released) == []


def test_a_tag_without_an_entry_fails(released: Path) -> None:
    git(released, "tag", "0.2.0")

    assert "tag 0.2.0 has no changelog entry" in check_repo(released)


def test_entries_out_of_order_unreleased_below_the_top_or_without_upgrade_notes_fail() -> None:
    def entry(version: str, date: str = "2026-01-01") -> str:
        return ENTRY.format(version=version, date=date)

    text = entry("0.1.0") + entry("0.2.0") + "## 0.0.1 (2025-01-01)\n\n- x\n"
    assert problems(parse_changelog(text), [], []) == [
        "entry 0.0.1 has no '### Upgrade notes' section"
    ]
    found = problems(parse_changelog(entry("0.1.0") + entry("0.2.0")), [], [])
    assert found and "newest first" in found[0]
    found = problems(parse_changelog(entry("0.2.0") + entry("0.1.0", "unreleased")), [], [])
    assert found == ["entry 0.1.0 is unreleased but not the top entry"]
    found = problems(parse_changelog("## 0.3.0 — no date\n\n### Upgrade notes\n"), [], [])
    assert found and "needs '(YYYY-MM-DD)'" in found[0]
