"""Rename settings (environment variables) in the deployment files of a generated project.

``copier update`` runs this as an ``after`` migration (see ``_migrations`` in ``copier.yml``)
when a project passes the version that renamed them, so a setting a team added to its compose
file, Dockerfile, CI workflow or manifests keeps its effect under the new name.

Usage: ``migrate_rename_setting.py [--root DIR] OLD=NEW [OLD=NEW ...]``

A name is renamed where it stands whole (``SERVING_FALLBACK``, not ``MY_SERVING_FALLBACK``).
Safe to re-run: once renamed there is nothing left to do. A file that names ``NEW`` already
keeps ``OLD`` (one mapping would hold the setting twice) and the script says so. Files outside
``FILES`` (``.env``, manifests kept elsewhere, CI variables) stay as they are: the service reads
the old names for one more release and names the new ones in its start-up log.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

# The files of a generated project where settings are set, as globs under its root.
FILES = (
    ".env.example",
    "compose.yaml",
    "Dockerfile",
    ".gitlab-ci.yml",
    ".github/workflows/*.yml",
    "ci/*",
    "ops/**/*",
    "deploy/**/*.yaml",
    "deploy/**/*.yml",
)


def whole(name: str) -> re.Pattern[str]:
    """``name`` where it is not part of a longer name."""
    return re.compile(rf"(?<![A-Za-z0-9_]){re.escape(name)}(?![A-Za-z0-9_])")


def rename_settings(text: str, renames: dict[str, str]) -> tuple[str, list[str]]:
    """``text`` with each old name replaced by its new one, and the old names kept because
    the text names the new one already."""
    kept = []
    for old, new in renames.items():
        if not whole(old).search(text):
            continue
        if whole(new).search(text):
            kept.append(old)
            continue
        text = whole(old).sub(new, text)
    return text, kept


def project_files(root: Path) -> list[Path]:
    """The files of ``FILES`` under ``root`` (links left alone: they may point outside)."""
    found = {path for pattern in FILES for path in root.glob(pattern)}
    return sorted(path for path in found if path.is_file() and not path.is_symlink())


def parse_renames(pairs: list[str]) -> dict[str, str]:
    renames = {}
    for pair in pairs:
        old, _, new = pair.partition("=")
        if not (old and new) or "=" in new:
            raise ValueError(f"expected OLD=NEW, got {pair!r}")
        renames[old] = new
    return renames


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, default=Path(), help="the project's folder")
    parser.add_argument("renames", nargs="+", metavar="OLD=NEW")
    args = parser.parse_args(argv)
    try:
        renames = parse_renames(args.renames)
    except ValueError as error:
        parser.error(str(error))
    for path in project_files(args.root):
        try:
            with path.open(encoding="utf-8", newline="") as file:  # keep the line endings
                text = file.read()
        except UnicodeDecodeError:
            continue  # not a text file: no setting to rename
        migrated, kept = rename_settings(text, renames)
        for old in kept:
            print(
                f"migrate_rename_setting: {path} sets {renames[old]} already; "
                f"remove {old} from it by hand"
            )
        if migrated != text:
            with path.open("w", encoding="utf-8", newline="") as file:
                file.write(migrated)
            print(f"migrate_rename_setting: renamed settings in {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
