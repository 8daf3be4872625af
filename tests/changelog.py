"""Read ``CHANGELOG.md`` and check it against its own history: releases need no git tags.

The rule the version check enforces (``tests/test_changelog.py``):

- every entry is ``## <version> (<release date>) — <title>``, newest first, each with an
  ``### Upgrade notes`` section; only the top entry may read ``(unreleased)`` instead of a
  date: the release being prepared;
- a version is released by the commit that gives its heading the date (the commit that
  introduced the heading as it reads now), or by the last commit before the next version's
  entry was opened, when that came first. Both are found in this file's history, so the
  check works in any full clone, with or without tags;
- when ``copier.yml``, ``template/`` or ``hooks/`` differ from the newest release commit
  (committed or not) the top entry must be ``(unreleased)``: a changed template needs a new
  entry;
- tags are optional (``python -m tests.changelog tags`` prints the commands that create the
  missing ones); a tag must name a released entry.
"""

from __future__ import annotations

import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from packaging.version import InvalidVersion, Version

HEADING = re.compile(r"^## \[?v?(?P<version>[0-9][^\]\s]*)\]?(?P<rest>.*)$")
RELEASE = re.compile(r"^ \((?P<date>\d{4}-\d{2}-\d{2}|unreleased)\)( — .+)?$")
UNRELEASED = "unreleased"
TEMPLATE_PATHS = ("copier.yml", "template", "hooks")


@dataclass(frozen=True)
class Entry:
    """One ``## <version>`` section of the changelog."""

    version: str
    heading: str
    body: str

    @property
    def parsed(self) -> Version:
        return Version(self.version)

    @property
    def date(self) -> str | None:
        """The release date, ``unreleased``, or ``None`` when the heading has neither."""
        match = HEADING.match(self.heading)
        found = RELEASE.match(match["rest"]) if match else None
        return found["date"] if found else None

    @property
    def released(self) -> bool:
        return self.date not in (None, UNRELEASED)


def parse_changelog(text: str) -> list[Entry]:
    """Return the changelog's version entries, in file order."""
    entries: list[Entry] = []
    current: tuple[str, str, list[str]] | None = None
    for line in text.splitlines():
        match = HEADING.match(line)
        if match or line.startswith("## "):
            if current:
                entries.append(Entry(current[0], current[1], "\n".join(current[2])))
            current = (match["version"] if match else "", line, [])
        elif current:
            current[2].append(line)
    if current:
        entries.append(Entry(current[0], current[1], "\n".join(current[2])))
    return entries


def git(repo: Path, *args: str) -> list[str]:
    result = subprocess.run(["git", *args], cwd=repo, capture_output=True, text=True, check=True)
    return result.stdout.splitlines()


def release_commit(repo: Path, entry: Entry, newer: Entry | None = None) -> str | None:
    """The commit that released ``entry``: the one that introduced its heading as it reads
    now or, when earlier, the last one before ``newer`` (the next version's entry) was opened:
    an entry is opened only once the one below it is released. ``None`` while neither is
    committed."""
    dated = git(repo, "log", "--reverse", "--format=%H", "-S", entry.heading, "--", "CHANGELOG.md")
    candidates = dated[:1]
    if newer is not None:
        opened = git(
            repo, "log", "--reverse", "--format=%H", "-G",
            rf"^## {re.escape(newer.version)}[ (]", "--", "CHANGELOG.md",
        )  # fmt: skip
        candidates += git(repo, "rev-parse", f"{opened[0]}^") if opened else []
    if len(candidates) == 2 and is_ancestor(repo, candidates[1], candidates[0]):
        return candidates[1]
    return candidates[0] if candidates else None


def is_ancestor(repo: Path, older: str, newer: str) -> bool:
    result = subprocess.run(
        ["git", "merge-base", "--is-ancestor", older, newer], cwd=repo, check=False
    )
    return result.returncode == 0


def release_tags(repo: Path) -> list[Version]:
    """The repository's tags that are versions, newest first (often none: tags are optional)."""
    versions = []
    for tag in git(repo, "tag", "--list"):
        try:
            versions.append(Version(tag))
        except InvalidVersion:
            continue
    return sorted(versions, reverse=True)


def changed_since(repo: Path, ref: str) -> list[str]:
    """Template files that differ between ``ref`` and the working tree (incl. untracked)."""
    changed = git(repo, "diff", "--name-only", ref, "--", *TEMPLATE_PATHS)
    changed += git(repo, "ls-files", "--others", "--exclude-standard", "--", *TEMPLATE_PATHS)
    return sorted(set(changed))


def problems(
    entries: list[Entry], tags: list[Version], changed: list[str], released: str | None = None
) -> list[str]:
    """What is wrong with the changelog, given the version ``tags`` and the template files
    ``changed`` since ``released``, the newest released version (its release commit). An
    empty list when all is well."""
    found: list[str] = []
    if not entries:
        return ["CHANGELOG.md has no '## <version>' entry"]
    versions: list[Version] = []
    for position, entry in enumerate(entries):
        try:
            versions.append(entry.parsed)
        except InvalidVersion:
            found.append(f"heading {entry.heading!r} does not start with a version (## 0.2.0)")
            continue
        if "### Upgrade notes" not in entry.body:
            found.append(f"entry {entry.version} has no '### Upgrade notes' section")
        if entry.date is None:
            found.append(
                f"heading {entry.heading!r} needs '(YYYY-MM-DD)' or '(unreleased)' after "
                "the version"
            )
        elif not entry.released and position > 0:
            found.append(f"entry {entry.version} is unreleased but not the top entry")
    if found:
        return found
    if versions != sorted(versions, reverse=True) or len(set(versions)) != len(versions):
        found.append(f"entries must be newest first without repeats: {entries_list(versions)}")
    found += [f"tag {tag} has no changelog entry" for tag in tags if tag not in versions]
    unreleased = {entry.parsed for entry in entries if not entry.released}
    found += [f"tag {tag} names the unreleased entry" for tag in tags if tag in unreleased]
    if entries[0].released and changed:
        found.append(
            f"the template changed since release {released} ({', '.join(changed[:8])}"
            f"{', ...' if len(changed) > 8 else ''}) but CHANGELOG.md has no entry above "
            f"it: add '## <next version> (unreleased) — <title>' with the change and its "
            "upgrade notes"
        )
    return found


def entries_list(versions: list[Version]) -> str:
    return ", ".join(str(v) for v in versions)


def check(repo: Path) -> list[str]:
    """The version check on the repository at ``repo`` (a full clone; tags are optional)."""
    entries = parse_changelog((repo / "CHANGELOG.md").read_text(encoding="utf-8"))
    newest = next((entry for entry in entries if entry.released), None)
    newer = entries[entries.index(newest) - 1] if newest and entries.index(newest) else None
    commit = release_commit(repo, newest, newer) if newest else None
    changed = changed_since(repo, commit) if commit else []
    return problems(entries, release_tags(repo), changed, newest.version if newest else None)


def missing_tags(repo: Path) -> list[str]:
    """``git tag`` commands for released versions without a tag, at their release commits."""
    tags = release_tags(repo)
    commands = []
    entries = parse_changelog((repo / "CHANGELOG.md").read_text(encoding="utf-8"))
    for newer, entry in zip([None, *entries], entries, strict=False):
        commit = release_commit(repo, entry, newer) if entry.released else None
        if commit and entry.parsed not in tags:
            commands.append(f"git tag {entry.version} {commit}")
    return commands


if __name__ == "__main__":  # python -m tests.changelog [check|tags]
    root = Path(__file__).resolve().parents[1]
    if sys.argv[1:] == ["tags"]:
        print("\n".join(missing_tags(root)) or "every released version has its tag")
    else:
        issues = check(root)
        print("\n".join(issues) or "CHANGELOG.md and the template agree")
        sys.exit(1 if issues else 0)
