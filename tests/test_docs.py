"""The docs site: builds in strict mode, its options reference matches ``copier.yml``, and the
pages that list a generated project's stages or targets name every one."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from .helpers import TEMPLATE_ROOT, render

OPTIONS = TEMPLATE_ROOT / "docs" / "options.md"
CONFIG: dict[str, Any] = yaml.safe_load((TEMPLATE_ROOT / "copier.yml").read_text())
QUESTIONS = {name: spec for name, spec in CONFIG.items() if not name.startswith("_")}
SECTION = re.compile(r"^### `(?P<name>[a-z_]+)`\n(?P<body>.*?)(?=^#{1,3} |\Z)", re.M | re.S)
ROW = re.compile(
    r"^\| type \| default \| choices \|\n\|---\|---\|---\|\n"
    r"\| (?P<type>\w+) \| (?P<default>[^|]*) \|(?P<choices>[^|]*)\|$",
    re.M,
)


def documented() -> dict[str, str]:
    return {m["name"]: m["body"] for m in SECTION.finditer(OPTIONS.read_text(encoding="utf-8"))}


def test_docs_build_in_strict_mode(tmp_path: Path) -> None:
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path)],
        cwd=TEMPLATE_ROOT,
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    output = result.stdout + result.stderr

    assert result.returncode == 0, output
    assert "WARNING" not in output, output
    assert (tmp_path / "index.html").is_file()
    assert (tmp_path / "options" / "index.html").is_file()


def test_every_question_is_documented_and_nothing_else() -> None:
    assert sorted(documented()) == sorted(QUESTIONS), (
        "docs/options.md needs one '### `name`' section per question in copier.yml"
    )


@pytest.mark.parametrize("name", sorted(QUESTIONS))
def test_documented_type_default_and_choices_match_copier_yml(name: str) -> None:
    spec = QUESTIONS[name]
    row = ROW.search(documented().get(name, ""))
    assert row, f"{name}: the section must start with a '| type | default | choices |' table"

    assert row["type"] == spec["type"], f"{name}: type"
    choices = re.findall(r"`([^`]*)`", row["choices"])
    assert choices == [str(choice) for choice in spec.get("choices", [])], f"{name}: choices"
    default = spec.get("default")
    if isinstance(default, bool):
        assert f"`{str(default).lower()}`" in row["default"], f"{name}: default"
    elif isinstance(default, str) and "{{" not in default and "{%" not in default:
        shown = '`""`' if default == "" else f"`{default}`"
        assert shown in row["default"], f"{name}: default must read {shown}"
    else:
        assert row["default"].startswith("from "), (
            f"{name}: a computed default is described, e.g. 'from `project_slug`'"
        )


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A default project, rendered only (no git, no environment)."""
    return render(tmp_path_factory.mktemp("docs") / "project", skip_tasks=True)


def test_agents_md_names_every_stage_make_pipeline_runs(rendered: Path) -> None:
    stages = yaml.safe_load((rendered / "dvc.yaml").read_text(encoding="utf-8"))["stages"]
    agents = (rendered / "AGENTS.md").read_text(encoding="utf-8")
    row = next(line for line in agents.splitlines() if line.startswith("| `make pipeline` |"))

    missing = [name for name in stages if not re.search(rf"\b{name}\b", row)]
    assert not missing, f"AGENTS.md's make pipeline row leaves out {missing}: {row}"


def test_the_tour_lists_every_target_of_the_makefile(rendered: Path) -> None:
    makefile = (rendered / "Makefile").read_text(encoding="utf-8")
    targets = set(re.findall(r"^([a-z][a-z-]*):.*## ", makefile, re.M)) - {"help"}
    tour = (TEMPLATE_ROOT / "docs" / "tour.md").read_text(encoding="utf-8")
    line = next(line for line in tour.splitlines() if line.startswith("├── Makefile"))

    listed = set(re.split(r",\s*", line.removeprefix("├── Makefile").strip()))
    assert targets <= listed, f"docs/tour.md's layout leaves out {sorted(targets - listed)}"
