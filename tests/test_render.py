"""Fast tier: render every case of the option matrix and check it statically."""

from __future__ import annotations

import importlib.util
import json
import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml

from . import manifest
from .helpers import render
from .matrix import CASES

LINES_SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "lines.py"
# An unrendered expression, statement or comment.
# GitHub's `${{ ... }}` and bash's `${#x}` are not Jinja.
JINJA_LEFTOVER = re.compile(r"(?<!\$)\{\{|\{%|(?<!\$)\{#")


class Rendered:
    def __init__(self, path: Path, answers: dict[str, Any]) -> None:
        self.path = path
        self.answers = answers
        self.files = {
            str(p.relative_to(path))
            for p in path.rglob("*")
            if p.is_file() and ".git" not in p.relative_to(path).parts
        }

    def text_files(self) -> list[Path]:
        return [self.path / f for f in sorted(self.files) if not f.endswith(".lock")]


@pytest.fixture(scope="module", params=list(CASES))
def rendered(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Rendered:
    dest = tmp_path_factory.mktemp(request.param) / "project"
    render(dest, CASES[request.param])
    answers = yaml.safe_load((dest / ".copier-answers.yml").read_text())
    return Rendered(dest, answers)


def test_files_match_the_manifest(rendered: Rendered) -> None:
    problems = manifest.check(rendered.files, rendered.answers)

    assert not problems, "\n".join(problems)


def test_lock_file_exists_when_this_python_can_run_the_project(rendered: Rendered) -> None:
    wanted = tuple(int(x) for x in rendered.answers["python_version"].split("."))
    if sys.version_info[:2] < wanted:
        assert "pyproject.toml" in rendered.files  # uv cannot lock for a Python it lacks here
    else:
        assert "uv.lock" in rendered.files, "the lock task must write uv.lock"


def test_no_jinja_is_left_over(rendered: Rendered) -> None:
    leftovers = [
        f"{path.relative_to(rendered.path)}: {line.strip()[:80]}"
        for path in rendered.text_files()
        for line in path.read_text(encoding="utf-8", errors="replace").splitlines()
        # Grafana's legend templates ({{label}}) are meant to reach the dashboard as they are.
        if JINJA_LEFTOVER.search(line) and '"legendFormat"' not in line
    ]

    assert not leftovers, leftovers


def test_structured_files_parse(rendered: Rendered) -> None:
    for path in rendered.text_files():
        text = path.read_text(encoding="utf-8")
        if path.suffix == ".toml":
            tomllib.loads(text)
        elif path.suffix in (".yml", ".yaml"):
            list(yaml.safe_load_all(text))
        elif path.suffix == ".json":
            json.loads(text)
    params = yaml.safe_load((rendered.path / "params.yaml").read_text())
    assert params["task"] == rendered.answers["task"]
    assert params["data"]["target"] == rendered.answers["target_column"]


def test_answers_file_records_every_question(rendered: Rendered) -> None:
    from .matrix import QUESTIONS

    asked = {name for name, spec in QUESTIONS.items() if spec.get("when") is not False}

    assert asked <= set(rendered.answers), asked - set(rendered.answers)


def _ruff(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ruff", *args], cwd=cwd, capture_output=True, text=True, check=False
    )


def test_python_is_ruff_clean(rendered: Rendered) -> None:
    python_files = [f for f in rendered.files if f.endswith(".py")]
    assert len(python_files) > 20, "the lint must run on the generated code"

    result = _ruff("check", "--no-cache", ".", cwd=rendered.path)

    assert result.returncode == 0, result.stdout + result.stderr


@pytest.fixture(scope="module")
def lines() -> ModuleType:
    """benchmarks/lines.py, the script that prints issue 15's figures, loaded once."""
    spec = importlib.util.spec_from_file_location("lines", LINES_SCRIPT)
    assert spec and spec.loader, f"cannot load {LINES_SCRIPT}"
    module = importlib.util.module_from_spec(spec)
    with pytest.MonkeyPatch.context() as patch:
        patch.syspath_prepend(str(LINES_SCRIPT.parent))  # its own helper module
        spec.loader.exec_module(module)
    return module


def test_no_function_is_over_the_budget_and_no_module_imports_itself_back(
    rendered: Rendered, lines: ModuleType
) -> None:
    measured = lines.measure(rendered.path)

    assert measured["total"] > 1000, "the package was found and read"
    assert measured["long_functions"] == [], f"over {lines.MAX_FUNCTION_LINES} lines"
    assert measured["import_cycles"] == []


def test_python_is_ruff_formatted(rendered: Rendered) -> None:
    result = _ruff("format", "--check", "--no-cache", ".", cwd=rendered.path)

    assert result.returncode == 0, result.stdout + result.stderr


def test_setup_compiles_the_environment_only_where_python_caches_no_bytecode(
    rendered: Rendered,
) -> None:
    """With PYTHONDONTWRITEBYTECODE set, each stage process would compile its imports again:
    ``make setup`` compiles the environment once there, and leaves it to Python elsewhere."""

    def setup_commands(**extra: str) -> str:
        env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"} | extra
        return subprocess.run(
            ["make", "-n", "setup"], cwd=rendered.path, env=env, capture_output=True, text=True,
            check=True,
        ).stdout  # fmt: skip

    assert "--compile-bytecode" in setup_commands(PYTHONDONTWRITEBYTECODE="1")
    assert "--compile-bytecode" not in setup_commands()
    assert "--compile-bytecode" not in setup_commands(PYTHONDONTWRITEBYTECODE="")
