"""The scripts in hooks/ do their job, fail with a reason, and are safe to run twice."""

from __future__ import annotations

import hashlib
import importlib.util
import shutil
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest
import yaml

from .helpers import DATA, TEMPLATE_ROOT


def load_hook(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, TEMPLATE_ROOT / "hooks" / f"{name}.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up while the class is built
    spec.loader.exec_module(module)
    return module


git_init = load_hook("git_init")
import_dataset = load_hook("import_dataset")
lock = load_hook("lock")


def test_git_init_creates_a_repository_once(tmp_path: Path) -> None:
    assert git_init.main(tmp_path) == 0
    head = (tmp_path / ".git" / "HEAD").read_text()

    assert git_init.main(tmp_path) == 0, "a second run is a no-op"
    assert head == "ref: refs/heads/main\n"
    assert (tmp_path / ".git" / "HEAD").read_text() == head


def test_git_init_leaves_an_enclosing_repository_alone(tmp_path: Path) -> None:
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    inner = tmp_path / "project"
    inner.mkdir()

    assert git_init.main(inner) == 0
    assert not (inner / ".git").exists()


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    return tmp_path


def run_import(source: Path | str, target: str, task: str = "classification") -> int:
    return import_dataset.main(["--source", str(source), "--target", target, "--task", task])


def test_import_copies_tracks_and_describes_the_csv(project: Path) -> None:
    assert run_import(DATA / "customers.csv", "churn") == 0

    raw = project / "data/raw/dataset.csv"
    assert raw.read_bytes() == (DATA / "customers.csv").read_bytes()
    record = yaml.safe_load((project / "data/raw/dataset.csv.dvc").read_text())["outs"][0]
    assert record["md5"] == hashlib.md5(raw.read_bytes()).hexdigest()
    assert record["size"] == raw.stat().st_size
    assert (project / "data/raw/.gitignore").read_text() == "/dataset.csv\n"
    schema = yaml.safe_load((project / "data/schema.yaml").read_text())
    kinds = {c["name"]: (c["type"], c["role"]) for c in schema["columns"]}
    assert schema["target"] == {"name": "churn", "type": "categorical"}
    assert kinds["tenure_months"] == ("numeric", "feature"), "numbers with gaps stay numeric"
    assert kinds["plan"] == ("categorical", "feature")
    assert kinds["customer_id"] == ("categorical", "ignore"), "unique strings look like ids"


def test_import_twice_changes_nothing_and_keeps_an_edited_schema(project: Path) -> None:
    assert run_import(DATA / "customers.csv", "churn") == 0
    schema = project / "data/schema.yaml"
    schema.write_text(schema.read_text() + "# edited by hand\n")
    before = {p: p.read_bytes() for p in project.rglob("*") if p.is_file()}

    assert run_import(DATA / "customers.csv", "churn") == 0

    after = {p: p.read_bytes() for p in project.rglob("*") if p.is_file()}
    assert after == before


def test_relative_source_resolves_against_the_callers_folder(
    project: Path, monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory
) -> None:
    caller = tmp_path_factory.mktemp("caller")
    shutil.copy(DATA / "customers.csv", caller / "mine.csv")
    monkeypatch.setenv("PWD", str(caller))

    assert run_import("mine.csv", "churn") == 0
    assert (project / "data/raw/dataset.csv").exists()


@pytest.mark.parametrize(
    ("content", "target", "task", "message"),
    [
        ("", "y", "classification", "is empty"),
        ("a,y\n", "y", "classification", "no data rows"),
        ("a,y\n1,x\n2,y\n", "z", "classification", "'z' is not a column"),
        ("a,y\n1,x\n2,y\n", "y", "regression", "is not numeric"),
        ("a,y\n1,x\n2,x\n", "y", "classification", "single class"),
        ("a,a,y\n1,2,3\n", "y", "classification", "duplicated column"),
        ("a,y\n1,2,3\n", "y", "classification", "expected 2 fields, found 3"),
    ],
)
def test_unusable_csv_is_refused_with_the_reason(
    project: Path,
    capsys: pytest.CaptureFixture[str],
    content: str,
    target: str,
    task: str,
    message: str,
) -> None:
    source = project / "in.csv"
    source.write_text(content)

    assert run_import(source, target, task) == 1

    assert message in capsys.readouterr().err
    assert not (project / "data").exists(), "nothing is written for a refused file"


def test_import_infers_from_a_bounded_sample_and_leaves_the_rest_to_validate(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given a table whose first rows are numbers and of one class, and whose later rows hold
    # a word in the numeric column and the second class
    monkeypatch.setattr(import_dataset, "SAMPLE_ROWS", 30)
    lines = ["amount,y", *[f"{i}.5,x" for i in range(30)], "oops,z", "7,z"]
    source = project / "late.csv"
    source.write_text("\n".join(lines) + "\n")

    # when imported
    assert run_import(source, "y") == 0

    # then the contract comes from the sample only (validate checks the later rows against
    # it), the single class of the sample is no refusal, and the whole file is copied
    schema = yaml.safe_load((project / "data/schema.yaml").read_text())
    assert schema["columns"] == [
        {"name": "amount", "type": "numeric", "role": "feature", "nullable": True}
    ], "inferred from the first 30 rows, not from the whole file"
    assert "the first 30 rows" in (project / "data/schema.yaml").read_text()
    assert (project / "data/raw/dataset.csv").read_bytes() == source.read_bytes()


def test_missing_source_is_named(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run_import(project / "nope.csv", "y") == 1
    assert "does not exist" in capsys.readouterr().err


def test_lock_without_uv_warns_and_lets_the_copy_finish(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # no uv on PATH

    assert lock.main(tmp_path) == 0
    assert "uv is not installed" in capsys.readouterr().err


def test_lock_writes_uv_lock_and_is_stable(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text(
        '[project]\nname = "x"\nversion = "0"\nrequires-python = ">=3.11"\ndependencies = []\n'
    )

    assert lock.main(tmp_path) == 0
    first = (tmp_path / "uv.lock").read_text()
    assert lock.main(tmp_path) == 0
    assert (tmp_path / "uv.lock").read_text() == first


def _project_needing(folder: Path, dependency: str) -> Path:
    folder.mkdir()
    (folder / "pyproject.toml").write_text(
        f'[project]\nname = "x"\nversion = "0"\nrequires-python = ">=3.11"\n'
        f'dependencies = ["{dependency}"]\n'
    )
    return folder


def _cut_network(monkeypatch: pytest.MonkeyPatch) -> None:
    """Send uv's requests to a closed port (the index URL, hence the cache keys, stay the same)."""
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy"):
        monkeypatch.setenv(name, "http://127.0.0.1:9")
    for name in ("NO_PROXY", "no_proxy"):
        monkeypatch.delenv(name, raising=False)


def test_lock_resolves_from_the_cache_without_the_index(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("UV_CACHE_DIR", str(tmp_path / "cache"))
    first = _project_needing(tmp_path / "first", "iniconfig")
    assert lock.main(first) == 0  # empty cache: offline fails, uv asks the index
    assert "iniconfig" in (first / "uv.lock").read_text()

    _cut_network(monkeypatch)
    second = _project_needing(tmp_path / "second", "iniconfig")
    assert lock.main(second) == 0
    assert "iniconfig" in (second / "uv.lock").read_text(), "resolved from the warm cache"


def test_lock_without_cache_or_index_warns_and_lets_the_copy_finish(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("UV_CACHE_DIR", str(tmp_path / "cache"))
    _cut_network(monkeypatch)
    project = _project_needing(tmp_path / "project", "iniconfig")

    assert lock.main(project) == 0
    assert "'uv lock' failed" in capsys.readouterr().err
    assert not (project / "uv.lock").exists()


def test_import_types_dates_and_free_text_as_features(project: Path) -> None:
    # given a daily table: an ISO date per row (all distinct), a free-text note, a category
    lines = ["day,note,kind,y"]
    for i in range(40):
        lines.append(
            f"2024-01-{1 + i % 28:02d}T0{i % 10}:00,the {i}th note of the day,k{i % 3},{i % 2}"
        )
    source = project / "daily.csv"
    source.write_text("\n".join(lines) + "\n")

    # when imported
    assert run_import(source, "y") == 0

    # then the date and the text are features of their own types, not identifiers to ignore
    schema = yaml.safe_load((project / "data/schema.yaml").read_text())
    kinds = {c["name"]: (c["type"], c["role"]) for c in schema["columns"]}
    assert kinds == {
        "day": ("datetime", "feature"),
        "note": ("text", "feature"),
        "kind": ("categorical", "feature"),
    }, kinds


def test_import_types_zero_padded_digits_as_text_not_numbers(project: Path) -> None:
    # given zero-padded identifiers (all distinct), zero-padded codes, amounts and plain codes
    lines = ["account,branch,amount,region,y"]
    for i in range(40):
        lines.append(f"{123 + i:07d},{7 + 5 * (i % 3):03d},0.{i:02d},{1 + i % 5},{i % 2}")
    source = project / "accounts.csv"
    source.write_text("\n".join(lines) + "\n")

    # when imported
    assert run_import(source, "y") == 0

    # then the leading zeros make text: an identifier to ignore and a category, not numbers;
    # a decimal below one (0.05) and codes without zeros stay numbers
    schema = yaml.safe_load((project / "data/schema.yaml").read_text())
    kinds = {c["name"]: (c["type"], c["role"]) for c in schema["columns"]}
    assert kinds == {
        "account": ("categorical", "ignore"),
        "branch": ("categorical", "feature"),
        "amount": ("numeric", "feature"),
        "region": ("numeric", "feature"),
    }, kinds
