"""Read ``CHANGELOG.md`` and check it against the release tags and what changed since.

The rule the version check enforces (``tests/test_changelog.py``):

- releases are git tags named like the changelog's headings (``0.1.0``), and every tag has
  an entry; entries are newest first, each with an ``### Upgrade notes`` section;
- a top entry without a tag is the release being prepared (the lead tags it when releasing);
- when ``copier.yml``, ``template/`` or ``hooks/`` differ from the newest tag (committed or
  not), the top entry must be newer than that tag: a changed template needs a new entry.
"""

from __future__ import annotations

import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

from packaging.version import InvalidVersion, Version

HEADING = re.compile(r"^## \[?v?(?P<version>[0-9][^\]\s]*)\]?(?P<rest>.*)$")
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


def release_tags(repo: Path) -> list[Version]:
    """The repository's tags that are versions, newest first."""
    out = subprocess.run(
        ["git", "tag", "--list"], cwd=repo, capture_output=True, text=True, check=True
    ).stdout
    versions = []
    for tag in out.split():
        try:
            versions.append(Version(tag))
        except InvalidVersion:
            continue
    return sorted(versions, reverse=True)


def tag_name(repo: Path, version: Version) -> str:
    """The tag spelling of ``version`` (``0.1.0`` or ``v0.1.0``)."""
    out = subprocess.run(
        ["git", "tag", "--list"], cwd=repo, capture_output=True, text=True, check=True
    ).stdout
    return next(tag for tag in out.split() if Version(tag.lstrip("v")) == version)


def changed_since(repo: Path, ref: str) -> list[str]:
    """Template files that differ between ``ref`` and the working tree (incl. untracked)."""

    def git(*args: str) -> list[str]:
        result = subprocess.run(
            ["git", *args], cwd=repo, capture_output=True, text=True, check=True
        )
        return result.stdout.splitlines()

    changed = git("diff", "--name-only", ref, "--", *TEMPLATE_PATHS)
    changed += git("ls-files", "--others", "--exclude-standard", "--", *TEMPLATE_PATHS)
    return sorted(set(changed))


def problems(entries: list[Entry], tags: list[Version], changed: list[str]) -> list[str]:
    """What is wrong with the changelog, given the release ``tags`` (newest first) and the
    template files ``changed`` since the newest tag. An empty list when all is well."""
    found: list[str] = []
    if not entries:
        return ["CHANGELOG.md has no '## <version>' entry"]
    versions: list[Version] = []
    for entry in entries:
        try:
            versions.append(entry.parsed)
        except InvalidVersion:
            found.append(f"heading {entry.heading!r} does not start with a version (## 0.2.0)")
            continue
        if "### Upgrade notes" not in entry.body:
            found.append(f"entry {entry.version} has no '### Upgrade notes' section")
    if found:
        return found
    if versions != sorted(versions, reverse=True) or len(set(versions)) != len(versions):
        found.append(f"entries must be newest first without repeats: {entries_list(versions)}")
    found += [f"tag {tag} has no changelog entry" for tag in tags if tag not in versions]
    if tags and versions[0] <= tags[0] and changed:
        found.append(
            f"the template changed since release {tags[0]} ({', '.join(changed[:8])}"
            f"{', ...' if len(changed) > 8 else ''}) but CHANGELOG.md has no entry above "
            f"{tags[0]}: add '## <next version>' with the change and its upgrade notes"
        )
    return found


def entries_list(versions: list[Version]) -> str:
    return ", ".join(str(v) for v in versions)
