"""The answer sets the render tests use, derived from the questions in ``copier.yml``.

Options that interact (the task and where the data comes from) are multiplied; options that
are independent of each other are cycled through those cases so that every choice of every
question is rendered at least once.
"""

from __future__ import annotations

import itertools
from typing import Any

import yaml

from .helpers import DATA, TEMPLATE_ROOT

QUESTIONS: dict[str, Any] = {
    name: spec
    for name, spec in yaml.safe_load((TEMPLATE_ROOT / "copier.yml").read_text()).items()
    if not name.startswith("_")
}


def choices(name: str) -> list[Any]:
    spec = QUESTIONS[name]
    if spec.get("type") == "bool":
        return [True, False]
    return list(spec["choices"])


SOURCES: dict[str, dict[str, str]] = {
    "builtin": {},
    "csv": {"dataset_path": str(DATA / "customers.csv")},
}
CSV_TARGETS = {"classification": "churn", "regression": "lifetime_value"}
INDEPENDENT = ("ci", "serving", "monitoring", "dvc_remote", "python_version", "estimator")


def cases() -> dict[str, dict[str, Any]]:
    """Named answer sets: task x source, then the independent options cycled over them."""
    base = list(itertools.product(choices("task"), SOURCES))
    widest = max(len(choices(name)) for name in INDEPENDENT)
    # Enough whole rounds of the product that the widest option, at stride 2, shows every value.
    needed = -(-2 * widest // len(base)) * len(base)
    result: dict[str, dict[str, Any]] = {"defaults": {}}
    for index in range(needed):
        task, source = base[index % len(base)]
        answers: dict[str, Any] = {"task": task, **SOURCES[source]}
        if source == "csv":
            answers["target_column"] = CSV_TARGETS[task]
        for position, name in enumerate(INDEPENDENT):
            options = choices(name)
            # Alternate the stride so pairs of booleans meet in every combination.
            answers[name] = options[(index // (1 + position % 2)) % len(options)]
        label = "-".join(
            [task, source, *(f"{n}={answers[n]}" for n in ("ci", "serving", "monitoring"))]
        )
        result[f"{label}-{answers['dvc_remote']}-py{answers['python_version']}"] = answers
    result["ci-none"] = {"ci": "none"}
    result["no-serving-no-monitoring"] = {"serving": False, "monitoring": False}
    result["long-package-name"] = {"project_name": "x" * 32}
    return result


CASES = cases()
