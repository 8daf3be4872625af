"""ML_TEST_SCORE.md stays true: each cited test, CI job and file exists, and the sums add up."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import yaml

ROOT = Path(__file__).parent.parent
ROW = re.compile(
    r"^\| ((Data|Model|Infra|Monitor) [1-7]) \| (.+?) \| (0|0\.5|1) \| (.+) \| (.+) \|$"
)
SUM = re.compile(r"^\| (Data|Model|Infrastructure|Monitoring) \| ([0-9.]+) \|$", re.MULTILINE)
SECTIONS = {"Data": "Data", "Model": "Model", "Infra": "Infrastructure", "Monitor": "Monitoring"}


def _rows() -> list[tuple[str, str, float, list[str]]]:
    text = (ROOT / "ML_TEST_SCORE.md").read_text(encoding="utf-8")
    return [
        (found[1], SECTIONS[found[2]], float(found[4]), re.findall(r"`([^`]+)`", found[6]))
        for line in text.splitlines()
        if (found := ROW.match(line))
    ]


def _defined_tests() -> set[str]:
    ids = set()
    for path in (ROOT / "tests").glob("test_*.py"):
        for node in ast.parse(path.read_text(encoding="utf-8")).body:
            if isinstance(node, ast.FunctionDef) and node.name.startswith("test_"):
                ids.add(f"tests/{path.name}::{node.name}")
    return ids


def _problem(evidence: str, tests: set[str]) -> str | None:
    if evidence.startswith("tests/") and "::" in evidence:
        return None if evidence in tests else "no such test"
    if "::" in evidence:
        workflow, job = evidence.split("::", 1)
        data = yaml.safe_load((ROOT / workflow).read_text(encoding="utf-8"))
        jobs = data["jobs"] if workflow.startswith(".github/") else data
        return None if job in jobs else f"no job {job!r} in {workflow}"
    return None if (ROOT / evidence).exists() else "no such file"


def test_every_cited_test_job_and_file_exists() -> None:
    # given the table's rows and the tests defined in tests/
    rows, tests = _rows(), _defined_tests()

    # when each piece of evidence is looked up
    problems = [
        f"{row_id}: `{evidence}`: {why}"
        for row_id, _, _, evidence_list in rows
        for evidence in evidence_list
        if (why := _problem(evidence, tests))
    ]

    # then all 28 tests are scored and each citation holds
    assert len(rows) == 28, f"expected the 28 tests of the rubric, found {len(rows)} rows"
    assert not problems, "ML_TEST_SCORE.md cites what does not exist:\n" + "\n".join(problems)


def test_section_sums_and_the_final_score_match_the_rows() -> None:
    text = (ROOT / "ML_TEST_SCORE.md").read_text(encoding="utf-8")
    stated = {name: float(value) for name, value in SUM.findall(text)}
    rows = _rows()

    for section in SECTIONS.values():
        total = sum(score for _, name, score, _ in rows if name == section)
        assert stated.get(section) == total, (
            f"{section}: stated {stated.get(section)}, rows {total}"
        )
    final = re.search(r"\*\*Final score: ([0-9.]+)\*\*", text)
    assert final and float(final[1]) == min(stated.values()), "final score is the lowest section"
