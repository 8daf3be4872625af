"""Carry a project's edits of generated modules that 0.6.0 moved into the engine folder.

``copier update`` runs this as an ``after`` migration (see ``_migrations`` in ``copier.yml``):
by then the new version's files are rendered, and each old path the template no longer has
is still in the project, as the user last committed it. For each move ``OLD -> NEW`` this
script three-way merges the user's edits of ``OLD`` (against the template's own ``OLD`` in
the version the project was generated from, read from the template's git history) into
``NEW``, then deletes ``OLD``. An unedited file simply goes; an edit that merges cleanly
lands in ``NEW``; one that does not leaves conflict markers in ``NEW`` (``make lint`` and the
pre-commit hook refuse them until resolved). Without the old version's text (a template
without history), an edited ``OLD`` is kept beside as ``OLD.orig`` and named in the output.

Usage: ``migrate_moved_files.py --package PKG --template DIR --answers-file FILE``

Safe to re-run: a move whose ``OLD`` is gone, or whose ``NEW`` the new version does not render
(the feature is off), is left alone.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

# Paths relative to the project, ``{pkg}`` standing for the package.
MOVES = {
    "src/{pkg}/core/rows.py": "src/{pkg}/engine/rows.py",
    "src/{pkg}/io/files.py": "src/{pkg}/engine/files.py",
    "src/{pkg}/monitoring/log_writer.py": "src/{pkg}/engine/log_writer.py",
    "src/{pkg}/serving/access_log.py": "src/{pkg}/engine/access_log.py",
    "src/{pkg}/serving/batching.py": "src/{pkg}/engine/batching.py",
    "src/{pkg}/serving/compiled.py": "src/{pkg}/engine/compiled.py",
    "src/{pkg}/serving/limits.py": "src/{pkg}/engine/limits.py",
    "src/{pkg}/serving/plain_json.py": "src/{pkg}/engine/plain_json.py",
    "src/{pkg}/serving/protocol.py": "src/{pkg}/engine/protocol.py",
    "src/{pkg}/serving/server.py": "src/{pkg}/engine/server.py",
}
JINJA_IF = re.compile(r"\{%-?\s*if\s[^%]*%\}(.*?)\{%-?\s*endif\s*-?%\}")


def git(*args: str, cwd: Path) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(["git", *args], cwd=cwd, capture_output=True, check=False)


def old_commit(project: Path, answers_file: str, template: Path) -> str | None:
    """The template commit the project was last generated from (its committed answers)."""
    shown = git("show", f"HEAD:{answers_file}", cwd=project)
    if shown.returncode != 0:
        return None
    commit = str((yaml.safe_load(shown.stdout) or {}).get("_commit", ""))
    for ref in (commit, *re.findall(r"-g([0-9a-f]{7,40})$", commit)):
        found = git("rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}", cwd=template)
        if ref and found.returncode == 0:
            return ref
    return None


def template_text(template: Path, ref: str, path: str, package: str) -> bytes | None:
    """The template's file at ``ref`` that renders to ``path``, if it needs no rendering."""
    listed = git("ls-tree", "-r", "--name-only", ref, "--", "template/", cwd=template)
    for name in listed.stdout.decode().splitlines():
        rendered = JINJA_IF.sub(r"\1", name.removeprefix("template/"))
        if rendered.replace("{{ package_name }}", package) == path:
            shown = git("show", f"{ref}:{name}", cwd=template)
            return shown.stdout if shown.returncode == 0 else None
    return None


def merge(project: Path, old: Path, new: Path, base: bytes) -> bool:
    """Three-way merge the edits of ``old`` (against ``base``) into ``new``; False on conflict.
    ``base`` goes to a file of its own outside the project: no file of the user's is touched."""
    with tempfile.TemporaryDirectory(prefix="moved-") as folder:
        base_file = Path(folder, old.name)
        base_file.write_bytes(base)
        result = subprocess.run(
            ["git", "merge-file", "-L", "after updating", "-L", "last update", "-L",
             "your edits, moved", str(new), str(base_file), str(old)],
            cwd=project, check=False, capture_output=True,
        )  # fmt: skip
    if result.returncode < 0 or result.returncode > 127:
        raise OSError(f"git merge-file failed on {new}: {result.stderr.decode()}")
    return result.returncode == 0


def free_name(path: Path, suffix: str) -> Path:
    """``path`` + ``suffix``, or + ``suffix.1``, ``.2``, ...: the first name no file has (a
    rename onto an existing file would replace it)."""
    candidate, number = path.with_name(path.name + suffix), 0
    while candidate.exists() or candidate.is_symlink():
        number += 1
        candidate = path.with_name(f"{path.name}{suffix}.{number}")
    return candidate


def migrate(project: Path, package: str, template: Path, answers_file: str) -> list[str]:
    """Apply every move; the lines to print (what needs the user's attention)."""
    ref = old_commit(project, answers_file, template)
    notes = []
    for old_name, new_name in MOVES.items():
        old = project / old_name.format(pkg=package)
        new = project / new_name.format(pkg=package)
        if not old.is_file() or not new.is_file():
            continue
        relative, moved = str(old.relative_to(project)), new.relative_to(project)
        base = template_text(template, ref, relative, package) if ref else None
        if base is None:
            if old.read_bytes() != new.read_bytes():
                kept = free_name(old, ".orig")
                old.rename(kept)
                notes.append(f"{relative} moved to {moved}; yours is {kept.name}: port it")
                continue
        elif old.read_bytes() != base and not merge(project, old, new, base):
            notes.append(f"{relative} moved to {moved}: resolve the conflicts with your edits")
        old.unlink()
    return notes


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--package", required=True)
    parser.add_argument("--template", type=Path, required=True)
    parser.add_argument("--answers-file", default=".copier-answers.yml")
    parser.add_argument("--project", type=Path, default=Path.cwd())
    args = parser.parse_args(argv)
    for note in migrate(args.project, args.package, args.template, args.answers_file):
        print(f"migrate_moved_files: {note}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
