"""ML_TEST_SCORE.md of generated projects: scored 0 / 0.5 / 1 per test, each claim backed by
evidence that exists in that project (a test it collects, a CI job of its workflows, a file),
section sums and the final score as the rows add up, and at least 5 of 7 in every section of
a default project (issue 17).

The fast tier reads every render of the matrix (test functions found in the test files'
syntax trees); the slow tier runs ``pytest --collect-only`` in set-up projects, so a cited id
is one that ``make test`` runs.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from .helpers import render, run
from .matrix import CASES

ROW = re.compile(
    r"^\| ((Data|Model|Infra|Monitor) [1-7]) \| (.+?) \| (0|0\.5|1) \| (.+) \| (.+) \|$"
)
SUM = re.compile(r"^\| (Data|Model|Infrastructure|Monitoring) \| ([0-9.]+) \|$", re.MULTILINE)
FINAL = re.compile(r"\*\*Final score: ([0-9.]+)\*\*")
SECTIONS = {"Data": "Data", "Model": "Model", "Infra": "Infrastructure", "Monitor": "Monitoring"}
TODO = "TODO-lead"


@dataclass(frozen=True)
class Row:
    id: str
    section: str
    score: float
    evidence: list[str]


def parse(text: str) -> tuple[list[Row], dict[str, float], float]:
    rows = []
    for line in text.splitlines():
        if found := ROW.match(line):
            evidence = re.findall(r"`([^`]+)`", found[6])
            rows.append(Row(found[1], SECTIONS[found[2]], float(found[4]), evidence))
    sums = {name: float(value) for name, value in SUM.findall(text)}
    final = FINAL.search(text)
    assert final, "the file states no final score"
    return rows, sums, float(final[1])


def defined_ids(project: Path) -> set[str]:
    """``file::function`` of every test function in the project's test files."""
    ids = set()
    for path in (project / "tests").glob("test_*.py"):
        tree = ast.parse(path.read_text())
        for node in tree.body:
            if isinstance(node, ast.FunctionDef) and node.name.startswith("test_"):
                ids.add(f"tests/{path.name}::{node.name}")
    return ids


def ci_jobs(project: Path, workflow: str) -> set[str]:
    data = yaml.safe_load((project / workflow).read_text())
    if workflow.startswith(".github/"):
        return set(data["jobs"])
    return {k for k in data if not k.startswith(".") and isinstance(data[k], dict)}


# Written by a copy task (the import of a user's table), which the fast tier's renders skip.
BY_TASKS = {"data/schema.yaml"}


def unresolved(project: Path, evidence: str, collected: set[str]) -> str | None:
    """Why ``evidence`` does not hold in ``project``, or ``None`` when it does."""
    if evidence.startswith("tests/") and "::" in evidence:
        return None if evidence in collected else "no such test is collected"
    if "::" in evidence:
        workflow, job = evidence.split("::", 1)
        if not (project / workflow).is_file():
            return f"no workflow {workflow}"
        return None if job in ci_jobs(project, workflow) else f"no job {job!r} in {workflow}"
    tasks_skipped = not (project / ".git").exists()
    if (project / evidence).exists() or (tasks_skipped and evidence in BY_TASKS):
        return None
    return "no such file"


@pytest.fixture(scope="module", params=list(CASES))
def rendered(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    dest = tmp_path_factory.mktemp(request.param) / "project"
    return render(dest, CASES[request.param], skip_tasks=True)


def check_file(project: Path, collected: set[str]) -> Iterator[str]:
    """Every problem of the project's ML_TEST_SCORE.md."""
    rows, sums, final = parse((project / "ML_TEST_SCORE.md").read_text())
    if sorted(r.id for r in rows) != sorted(f"{s} {n}" for s in SECTIONS for n in range(1, 8)):
        yield f"rows are not the 28 tests: {[r.id for r in rows]}"
    for section in SECTIONS.values():
        total = sum(r.score for r in rows if r.section == section)
        if sums.get(section) != total:
            yield f"{section}: the file says {sums.get(section)}, its rows add up to {total}"
    if final != min(sums.values()):
        yield f"final score {final} is not the lowest section {min(sums.values())}"
    for row in rows:
        if row.score and not row.evidence:
            yield f"{row.id} scores {row.score} without evidence"
        for evidence in row.evidence:
            if why := unresolved(project, evidence, collected):
                yield f"{row.id}: `{evidence}`: {why}"


def test_every_claim_has_evidence_that_exists_and_the_sums_add_up(rendered: Path) -> None:
    problems = list(check_file(rendered, defined_ids(rendered)))

    assert not problems, "\n".join(problems)


def test_a_default_project_scores_at_least_5_in_every_section(tmp_path: Path) -> None:
    project = render(tmp_path / "project", skip_tasks=True)

    _, sums, final = parse((project / "ML_TEST_SCORE.md").read_text())

    assert set(sums) == set(SECTIONS.values()), sums
    assert all(value >= 5 for value in sums.values()), sums
    assert final >= 5, final


def test_a_made_up_citation_is_caught(tmp_path: Path) -> None:
    """The checker itself: an id nobody defined, a job nobody declared, a wrong sum."""
    project = render(tmp_path / "project", skip_tasks=True)
    card = project / "ML_TEST_SCORE.md"
    text = card.read_text()
    text = text.replace(
        "tests/test_gate.py::test_gate_rejects_a_candidate_the_linear_model_beats",
        "tests/test_gate.py::test_that_nobody_wrote",
    )
    text = text.replace(".github/workflows/ci.yml::pipeline", ".github/workflows/ci.yml::nojob", 1)
    text = text.replace("| Infrastructure | 7 |", "| Infrastructure | 6 |")
    card.write_text(text)

    problems = "\n".join(check_file(project, defined_ids(project)))

    assert "test_that_nobody_wrote`: no such test is collected" in problems, problems
    assert "no job 'nojob'" in problems, problems
    assert "Infrastructure: the file says 6.0, its rows add up to 7.0" in problems, problems


def test_no_row_waits_for_its_test_id(tmp_path: Path) -> None:
    project = render(tmp_path / "project", skip_tasks=True)

    assert TODO not in (project / "ML_TEST_SCORE.md").read_text()


# ---------------------------------------------------------------- what `make test` collects


def collected_ids(project: Path) -> set[str]:
    result = run(["uv", "run", "--no-sync", "pytest", "--collect-only", "-q"], project)
    return {line.split("[")[0] for line in result.stdout.splitlines() if "::" in line}


@pytest.mark.slow
def test_every_cited_test_is_collected_in_a_default_project(default_project: Path) -> None:
    collected = collected_ids(default_project)

    assert len(collected) > 100, "the collection found too few tests to be the project's"
    problems = list(check_file(default_project, collected))
    assert not problems, "\n".join(problems)


@pytest.mark.slow
def test_every_cited_test_is_collected_without_serving_monitoring_or_ci(tmp_path: Path) -> None:
    answers = {"serving": False, "monitoring": False, "ci": "none", "task": "regression"}
    project = render(tmp_path / "project", answers)
    run(["uv", "sync", "--locked"], project)

    problems = list(check_file(project, collected_ids(project)))

    assert not problems, "\n".join(problems)
