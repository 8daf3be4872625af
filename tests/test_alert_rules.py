"""ops/prometheus/alerts.yml: Prometheus loads it (rule_files, the compose mount), each rule is
complete, its PromQL parses, and it reads only series the service exports.

promtool ships only in Prometheus' own release archives (no PyPI or npm package), so the rules
are checked with promql-parser, the PromQL parser of the Rust ecosystem, on their structure as
Prometheus' rule-file format defines it.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import promql_parser
import pytest
import yaml

from .helpers import render

RULE_KEYS = {"alert", "expr", "for", "labels", "annotations", "keep_firing_for"}


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    dest = tmp_path_factory.mktemp("alerts") / "project"
    return render(dest, {"serving": True, "monitoring": True}, skip_tasks=True)


def rules(project: Path) -> list[dict[str, Any]]:
    data = yaml.safe_load((project / "ops/prometheus/alerts.yml").read_text())
    assert set(data) == {"groups"}, data.keys()
    return [rule for group in data["groups"] for rule in group["rules"]]


def exported_series(project: Path) -> set[str]:
    """Series names the service exports (counters get ``_total``, histograms ``_bucket``)."""
    telemetry = (project / "src/my_ml_project/serving/telemetry.py").read_text()
    names = set(re.findall(r'(?:Counter|Gauge|Histogram)\(\s*"(\w+)"', telemetry))
    return names | {f"{n}_bucket" for n in names} | {f"{n}_total" for n in names} | {"up"}


def test_prometheus_loads_the_rules_file(project: Path) -> None:
    config = yaml.safe_load((project / "ops/prometheus.yml").read_text())
    compose = yaml.safe_load((project / "compose.yaml").read_text())

    assert config["rule_files"] == ["/etc/prometheus/alerts.yml"]
    volumes = compose["services"]["prometheus"]["volumes"]
    assert "./ops/prometheus/alerts.yml:/etc/prometheus/alerts.yml:ro" in volumes, volumes


def test_every_rule_is_complete_and_its_promql_parses(project: Path) -> None:
    found = rules(project)

    assert {"ModelNotLoaded", "ServerErrors", "NonFinitePredictions"} <= {r["alert"] for r in found}
    for rule in found:
        assert set(rule) <= RULE_KEYS, f"{rule['alert']}: unknown keys {set(rule) - RULE_KEYS}"
        assert rule["labels"]["severity"] in {"page", "ticket"}, rule["alert"]
        assert rule["annotations"]["summary"], rule["alert"]
        promql_parser.parse(rule["expr"])  # raises ValueError on a syntax error


def test_the_parser_refuses_broken_promql() -> None:
    with pytest.raises(ValueError):
        promql_parser.parse("sum(rate(http_requests_total[5m])")


def series(expr: str) -> set[str]:
    """Names of the series an expression selects (its vector selectors)."""
    names: set[str] = set()

    def visit(node: Any) -> None:
        if isinstance(node, promql_parser.VectorSelector):
            names.add(node.name)

    promql_parser.walk(promql_parser.parse(expr), visit)
    return names


def test_rules_read_only_series_the_service_exports(project: Path) -> None:
    exported = exported_series(project)

    for rule in rules(project):
        names = series(rule["expr"])
        assert names, f"{rule['alert']} selects no series"
        assert names <= exported, f"{rule['alert']} reads series nobody exports: {names - exported}"
    assert series("rate(nope_total[5m])") == {"nope_total"}, "the walk must see selectors"
