"""Carry an answer over to a renamed question in a project's answers file.

``copier update`` runs this as a ``before`` migration (see ``_migrations`` in ``copier.yml``),
before it asks the new template's questions, so a project answered under the old name gets
the same value under the new one and is not asked again.

Usage: ``migrate_rename_answer.py --answers-file .copier-answers.yml OLD NEW``

Safe to re-run: when ``OLD`` is absent there is nothing to do; when both names are present
the new one wins (it was answered on purpose) and the stale old one is dropped. Only the
``OLD`` entry's lines change, so comments and every other answer stay byte for byte.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

import yaml


def top_level_entry(lines: list[str], key: str) -> tuple[int, int] | None:
    """Return the ``[start, end)`` line span of top-level ``key`` in a YAML mapping."""
    pattern = re.compile(rf"^{re.escape(key)}\s*:")
    for start, line in enumerate(lines):
        if pattern.match(line):
            end = start + 1
            # Continuation lines of the value are indented (or blank inside a block scalar).
            while end < len(lines) and (lines[end].startswith((" ", "\t")) or not lines[end]):
                end += 1
            return start, end
    return None


def rename_answer(text: str, old: str, new: str) -> str:
    """Return the answers file ``text`` with answer ``old`` stored under ``new``."""
    answers = yaml.safe_load(text) or {}
    if not isinstance(answers, dict):
        raise ValueError("the answers file is not a YAML mapping")
    lines = text.splitlines(keepends=True)
    span = top_level_entry([line.rstrip("\r\n") for line in lines], old)
    if old not in answers or span is None:
        return text
    start, end = span
    if new in answers:
        del lines[start:end]
    else:
        lines[start] = re.sub(rf"^{re.escape(old)}(\s*:)", lambda m: new + m.group(1), lines[start])
    return "".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--answers-file", type=Path, default=Path(".copier-answers.yml"))
    parser.add_argument("old", help="the question's previous name")
    parser.add_argument("new", help="the question's current name")
    args = parser.parse_args(argv)

    path: Path = args.answers_file
    if not path.is_file():
        print(f"migrate_rename_answer: {path} not found; nothing to migrate", file=sys.stderr)
        return 0
    text = path.read_text(encoding="utf-8")
    try:
        migrated = rename_answer(text, args.old, args.new)
    except (ValueError, yaml.YAMLError) as error:
        print(f"migrate_rename_answer: cannot read {path}: {error}", file=sys.stderr)
        return 1
    if migrated == text:
        print(f"migrate_rename_answer: no {args.old!r} answer in {path}; nothing to do")
        return 0
    path.write_text(migrated, encoding="utf-8")
    print(f"migrate_rename_answer: answer {args.old!r} is now {args.new!r} in {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
