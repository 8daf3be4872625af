"""Version check: a changed template needs a changelog entry above the newest release tag."""

from __future__ import annotations

import subprocess
import tomllib
from pathlib import Path

import pytest

from .changelog import changed_since, parse_changelog, problems, release_tags, tag_name
from .helpers import TEMPLATE_ROOT

CHANGELOG = TEMPLATE_ROOT / "CHANGELOG.md"


def git(repo: Path, *args: str) -> str:
    return subprocess.run(
        ["git", *args], cwd=repo, capture_output=True, text=True, check=True
    ).stdout


def check_repo(repo: Path) -> list[str]:
    """The version check, run on the repository at ``repo``."""
    if git(repo, "rev-parse", "--is-shallow-repository").strip() == "true":
        pytest.fail(
            "the version check needs the full history and the tags: "
            "run `git fetch --unshallow --tags` (in CI: actions/checkout with fetch-depth: 0)"
        )
    tags = release_tags(repo)
    changed = changed_since(repo, tag_name(repo, tags[0])) if tags else []
    entries = parse_changelog((repo / "CHANGELOG.md").read_text(encoding="utf-8"))
    return problems(entries, tags, changed)


def test_this_repository_has_a_changelog_entry_for_every_template_change() -> None:
    found = check_repo(TEMPLATE_ROOT)

    assert not found, "\n".join(found)


def test_the_changelog_version_is_this_repository_version() -> None:
    top = parse_changelog(CHANGELOG.read_text(encoding="utf-8"))[0]
    pyproject = tomllib.loads((TEMPLATE_ROOT / "pyproject.toml").read_text(encoding="utf-8"))

    assert pyproject["project"]["version"] == top.version, (
        "pyproject.toml's version must be the changelog's top entry"
    )


ENTRY = "## {version}\n\n### Added\n\n- things\n\n### Upgrade notes\n\n- none\n\n"


@pytest.fixture
def released(tmp_path: Path) -> Path:
    """A small template repository whose 0.1.0 is released (tagged) and unchanged since."""
    repo = tmp_path / "repo"
    (repo / "template").mkdir(parents=True)
    (repo / "template" / "README.md.jinja").write_text("# {{ project_name }}\n")
    (repo / "docs").mkdir()
    (repo / "docs" / "index.md").write_text("docs\n")
    (repo / "CHANGELOG.md").write_text("# Changelog\n\n" + ENTRY.format(version="0.1.0"))
    git(repo, "init", "--quiet", "--initial-branch=main")
    git(repo, "add", ".")
    git(repo, "-c", "user.name=t", "-c", "user.email=t@example.com", "commit", "-qm", "0.1.0")
    git(repo, "tag", "0.1.0")
    return repo


def test_an_unchanged_release_passes(released: Path) -> None:
    assert check_repo(released) == []


def test_a_template_change_without_a_new_entry_fails(released: Path) -> None:
    (released / "template" / "README.md.jinja").write_text("# {{ project_name }}!\n")

    found = check_repo(released)

    assert len(found) == 1 and "template/README.md.jinja" in found[0], found


def test_a_new_template_file_without_a_new_entry_fails(released: Path) -> None:
    (released / "template" / "Makefile").write_text("all:\n")

    assert any("template/Makefile" in problem for problem in check_repo(released))


def test_a_change_outside_the_template_needs_no_entry(released: Path) -> None:
    (released / "docs" / "index.md").write_text("better docs\n")

    assert check_repo(released) == []


def test_a_template_change_with_a_new_entry_passes(released: Path) -> None:
    (released / "template" / "README.md.jinja").write_text("# {{ project_name }}!\n")
    changelog = released / "CHANGELOG.md"
    changelog.write_text(
        changelog.read_text().replace("## 0.1.0", ENTRY.format(version="0.1.1") + "## 0.1.0")
    )

    assert check_repo(released) == []


def test_a_tag_without_an_entry_fails(released: Path) -> None:
    git(released, "tag", "0.2.0")

    assert "tag 0.2.0 has no changelog entry" in check_repo(released)


def test_entries_out_of_order_or_without_upgrade_notes_fail() -> None:
    text = ENTRY.format(version="0.1.0") + ENTRY.format(version="0.2.0") + "## 0.0.1\n\n- x\n"

    found = problems(parse_changelog(text), [], [])

    assert found == ["entry 0.0.1 has no '### Upgrade notes' section"]
    found = problems(parse_changelog(text.split("## 0.0.1")[0]), [], [])
    assert found and "newest first" in found[0]
