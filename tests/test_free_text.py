"""Free-text answers with any characters still render to files that parse and install."""

from __future__ import annotations

import re
import tomllib
import uuid
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from .helpers import render, run

# Quotes, backslashes, Jinja and TOML/YAML syntax, newlines, and any unicode.
NASTY = st.one_of(
    st.sampled_from(['"', "'", "\\", '"""', "{{ x }}", "{% raw %}", "key: value", "# c", "\n"]),
    # Refused by the validators (see test_validators.py): U+0085, which YAML cannot keep, and
    # lone surrogates (category Cs), which no file can hold.
    st.text(
        alphabet=st.characters(exclude_characters="\x85", exclude_categories=["Cs"]),
        min_size=1,
        max_size=3,
    ),
)
FREE_TEXT = st.lists(NASTY, min_size=1, max_size=6).map("".join).filter(lambda s: s.strip())
# An author name must keep a visible character once control characters are spaces (the
# validator refuses others; see test_validators.py).
AUTHOR = FREE_TEXT.filter(lambda s: re.sub("[\x00-\x1f\x7f]+", " ", s).strip())


def answers(name: str, description: str, author: str) -> dict[str, str]:
    return {
        "project_name": name,
        "description": description,
        "author_name": author,
        # The slug is derived from the name; fix it so every example is a valid identifier.
        "project_slug": "free-text",
    }


@settings(
    max_examples=20,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(name=FREE_TEXT, description=FREE_TEXT, author=AUTHOR)
def test_free_text_renders_to_valid_files(
    tmp_path: Path, name: str, description: str, author: str
) -> None:
    dest = render(tmp_path / uuid.uuid4().hex, answers(name, description, author), skip_tasks=True)

    pyproject = tomllib.loads((dest / "pyproject.toml").read_text(encoding="utf-8"))
    assert pyproject["project"]["name"] == "free-text"
    assert pyproject["project"]["authors"][0]["name"].strip()
    recorded = yaml.safe_load((dest / ".copier-answers.yml").read_text(encoding="utf-8"))
    assert recorded["project_name"] == name, "the answers file round-trips the exact text"
    assert recorded["description"] == description
    for source in (dest / "src").rglob("*.py"):
        compile(source.read_text(encoding="utf-8"), str(source), "exec")
    readme = (dest / "README.md").read_text(encoding="utf-8")
    assert readme.startswith("# ")


@pytest.mark.slow
def test_the_nastiest_answers_install_and_import(tmp_path: Path) -> None:
    nasty = 'Ünïcødé "quoted" \\back\\slash\n{{ not jinja }} 🚀 \x7f'
    dest = render(tmp_path / "project", answers(nasty, nasty, nasty))

    run(["uv", "sync", "--locked"], dest)
    result = run(["uv", "run", "python", "-c", "import free_text; print(free_text.__doc__)"], dest)

    assert "free_text" in result.stdout
