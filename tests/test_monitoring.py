"""Monitoring in a generated project, run for real: service, prediction log, ``monitor``, fallback.

The project trained on the user CSV (numeric and categorical features) is served with a
``challenger`` alias registered beside the champion. The test split is sent, then the same rows
shifted (numeric feature +2 standard deviations, one category renamed); ``monitor`` reads each
window of the log. A deliberately broken champion then shows the fallback. The registry is put
back as it was afterwards: other suites share the project.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from .helpers import PACKAGE, render, run
from .matrix import CASES
from .server import Server, call, free_port, start_server, stop_server

# A path: with a folder, or a file name with one of these extensions (not `a.b` setting names).
PATH_IN_BACKTICKS = r"`((?:[\w.-]+/)+[\w.-]*|[\w.-]+\.(?:py|ya?ml|md|toml|json|sh|csv)|Makefile)`"
SHIFTED_NUMERIC = "monthly_charges"
SHIFTED_CATEGORY = "plan"
BATCH = 10

ROWS_SCRIPT = f"""
import json, sys
import pandas as pd, yaml
params = yaml.safe_load(open("params.yaml"))
schema = yaml.safe_load(open(params["paths"]["schema"]))
features = [c["name"] for c in schema["columns"] if c.get("role", "feature") == "feature"]
train = pd.read_parquet(params["paths"]["train"])
labelled = pd.read_parquet(params["paths"]["test"])
json.dump(labelled[params["data"]["target"]].tolist(), open(f"{{sys.argv[1]}}/labels.json", "w"))
test = labelled[features]
shifted = test.copy()
shifted["{SHIFTED_NUMERIC}"] += 2 * train["{SHIFTED_NUMERIC}"].std()
shifted["{SHIFTED_CATEGORY}"] = shifted["{SHIFTED_CATEGORY}"].replace({{"standard": "platinum"}})
for name, frame in (("test", test), ("shifted", shifted)):
    rows = frame.astype(object).where(frame.notna(), None).to_dict("records")
    json.dump(rows, open(f"{{sys.argv[1]}}/{{name}}.json", "w"))
"""

# A second model (linear, on the same split) under the alias `challenger`, as a team would
# register one to try it in shadow before promoting it.
CHALLENGER_SCRIPT = f"""
import mlflow
from mlflow.models import infer_signature
from mlflow.tracking import MlflowClient
from {PACKAGE}.config import get_settings, load_params
from {PACKAGE}.core.models import build_pipeline
from {PACKAGE}.core.schema import load_schema
from {PACKAGE}.io import tracking
from {PACKAGE}.io.data import read_table

settings = get_settings()
params = load_params(settings.params_file)
schema = load_schema(params.paths.schema_file)
train = read_table(params.paths.train)
X, y = train[schema.feature_names], train[schema.target.name]
model = build_pipeline(schema, params.task, "linear", {{}}, params.seed).fit(X, y)
tracking.configure(settings)
with mlflow.start_run():
    info = mlflow.sklearn.log_model(
        model, name="model", signature=infer_signature(X.head(5), model.predict(X.head(5))),
        skops_trusted_types=tracking.skops_trusted_types(model),
    )
version = mlflow.register_model(info.model_uri, settings.model_name).version
MlflowClient().set_registered_model_alias(settings.model_name, "challenger", str(version))
print(version)
"""

# `champion` -> a registered version whose files do not exist: it cannot load.
BREAK_SCRIPT = f"""
from mlflow.tracking import MlflowClient
from {PACKAGE}.config import get_settings
from {PACKAGE}.io import tracking
settings = get_settings()
tracking.configure(settings)
client = MlflowClient()
version = client.create_model_version(settings.model_name, source="/nonexistent/broken-model")
client.set_registered_model_alias(settings.model_name, "champion", str(version.version))
print(version.version)
"""

ALIAS_SCRIPT = f"""
import sys
from mlflow.tracking import MlflowClient
from {PACKAGE}.config import get_settings
from {PACKAGE}.io import tracking
settings = get_settings()
tracking.configure(settings)
client = MlflowClient()
if sys.argv[2] == "-":
    client.delete_registered_model_alias(settings.model_name, sys.argv[1])
else:
    client.set_registered_model_alias(settings.model_name, sys.argv[1], sys.argv[2])
"""


def serve(project: Path, log: Path, env: dict[str, str] | None = None) -> Server:
    """``<package> serve`` on a free port; returns once ``/health`` answers."""
    port = free_port()
    return start_server(
        ["uv", "run", PACKAGE, "serve", "--port", str(port)], project, log, port, env
    )


def python(project: Path, script: str, *args: str) -> str:
    return run(["uv", "run", "python", "-c", script, *args], project).stdout.strip()


def champion_version(project: Path) -> str:
    out = run(["uv", "run", PACKAGE, "champion"], project).stdout
    match = re.search(r"version (\S+)", out)
    assert match, out
    return match.group(1)


def send(server: Server, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    answers = []
    for start in range(0, len(rows), BATCH):
        answer = call(server.base, "/predict", {"instances": rows[start : start + BATCH]})
        assert answer.status == 200, answer.body
        answers.append(answer.body)
    return answers


def logged_rows(log: Path) -> list[dict[str, Any]]:
    """The log's scored rows, read as the project documents the layout: a line per request,
    its inputs and predictions column by column (``inputs[feature][i]`` belongs to row ``i``)."""
    rows = []
    for text in log.read_text().splitlines() if log.is_file() else []:
        line = json.loads(text)
        inputs, predictions = line.pop("inputs"), line.pop("predictions")
        shadow = line.pop("challenger_predictions", None)
        for i, prediction in enumerate(predictions):
            row = {**line, "row": i, **{name: values[i] for name, values in inputs.items()}}
            row["prediction"] = prediction
            if shadow is not None:
                row["challenger_prediction"] = shadow[i]
            rows.append(row)
    return rows


def wait_for_rows(log: Path, count: int, timeout: float = 30) -> list[dict[str, Any]]:
    """The log's scored rows once it has ``count`` of them (written in batches, in the
    background)."""
    deadline = time.monotonic() + timeout
    rows: list[dict[str, Any]] = []
    while time.monotonic() < deadline:
        rows = logged_rows(log)
        if len(rows) >= count:
            break
        time.sleep(0.2)
    assert len(rows) >= count, f"{log} has {len(rows)} rows, expected {count}"
    return rows


def wait_for_metric(server: Server, pattern: str, timeout: float = 15) -> str:
    """``/metrics`` once ``pattern`` matches it (the log's thread counts rows after writing)."""
    deadline = time.monotonic() + timeout
    while True:
        metrics: str = call(server.base, "/metrics").body
        if re.search(pattern, metrics) or time.monotonic() > deadline:
            assert re.search(pattern, metrics), f"{pattern!r} not in /metrics:\n{metrics}"
            return metrics
        time.sleep(0.2)


def monitor(project: Path, since: str, out: Path) -> tuple[int, dict[str, Any], str]:
    result = run(
        [
            "uv", "run", PACKAGE, "monitor",
            "--current", "logs/predictions.jsonl",
            "--since", since,
            "--output-dir", str(out),
        ],
        project,
        check=False,
    )  # fmt: skip
    assert result.returncode in (0, 1), result.stderr
    summary = json.loads((out / "summary.json").read_text())
    return result.returncode, summary, result.stdout + result.stderr


def now() -> str:
    stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S")
    time.sleep(1.1)  # `--since` has one-second resolution: keep the windows apart
    return stamp


@pytest.fixture(scope="module")
def monitored(
    csv_project: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Path, Server, Path, str]]:
    """The CSV project served with a shadow challenger; the registry is restored afterwards."""
    data = tmp_path_factory.mktemp("monitoring")
    python(csv_project, ROWS_SCRIPT, str(data))
    champion = champion_version(csv_project)
    python(csv_project, CHALLENGER_SCRIPT)
    shutil.rmtree(csv_project / "logs", ignore_errors=True)
    server = serve(csv_project, data / "serve.log")
    try:
        ready = call(server.base, "/ready")
        assert ready.status == 200, ready.body
        yield csv_project, server, data, champion
    finally:
        stop_server(server)
        python(csv_project, ALIAS_SCRIPT, "challenger", "-")
        python(csv_project, ALIAS_SCRIPT, "champion", champion)


@pytest.mark.slow
def test_monitor_passes_on_the_test_split_then_flags_exactly_the_shifted_features(
    monitored: tuple[Path, Server, Path, str],
) -> None:
    project, server, data, _ = monitored
    test_rows = json.loads((data / "test.json").read_text())
    shifted_rows = json.loads((data / "shifted.json").read_text())
    log = project / "logs/predictions.jsonl"
    logged = len(logged_rows(log))

    calm_since = now()
    send(server, test_rows)
    wait_for_rows(log, logged + len(test_rows))
    calm_code, calm, calm_output = monitor(project, calm_since, data / "calm")

    assert calm_code == 0, calm_output
    assert calm["current_rows"] == len(test_rows)
    assert calm["drifted_features"] == [], calm["features"]
    assert calm["alerts"] == []

    shift_since = now()
    send(server, shifted_rows)
    wait_for_rows(log, logged + len(test_rows) + len(shifted_rows))
    shift_code, shifted, shift_output = monitor(project, shift_since, data / "shifted")

    assert shift_code == 1, shift_output
    assert shifted["current_rows"] == len(shifted_rows)
    assert sorted(shifted["drifted_features"]) == sorted([SHIFTED_NUMERIC, SHIFTED_CATEGORY])
    assert any("drifted" in alert for alert in shifted["alerts"]), shifted["alerts"]


@pytest.mark.slow
def test_shadow_challenger_predictions_are_logged_beside_the_champions(
    monitored: tuple[Path, Server, Path, str],
) -> None:
    project, server, data, champion = monitored
    log = project / "logs/predictions.jsonl"
    before = len(logged_rows(log))
    send(server, json.loads((data / "test.json").read_text())[:BATCH])
    lines = wait_for_rows(log, before + BATCH)[before:]

    assert all(line["model_version"] == champion for line in lines), lines[0]
    assert all(line["served_by"] == "champion" for line in lines)
    assert all(line["challenger_version"] not in (None, champion) for line in lines), lines[0]
    assert all(line["challenger_prediction"] is not None for line in lines)
    metrics = wait_for_metric(server, r'monitoring_shadow_predictions_total\{agrees="yes"\} [1-9]')
    assert re.search(r"monitoring_input_rows_total [1-9]", metrics)


@pytest.mark.slow
def test_a_two_worker_service_writes_every_logged_request_before_it_stops(
    monitored: tuple[Path, Server, Path, str],
) -> None:
    """Workers end as multiprocessing children, which terminate their daemon children (the log
    writers) before ``atexit`` runs: the app's shutdown must write the queued lines and free
    the shared memory. A flush interval longer than the test leaves it all to the shutdown;
    SIGTERM reaches the whole process group, writers included."""
    project, _, data, _ = monitored
    rows = json.loads((data / "test.json").read_text())[: 6 * BATCH]
    log = data / "two-workers" / "predictions.jsonl"
    env = {"MONITORING_LOG_PATH": str(log), "MONITORING_FLUSH_SECONDS": "60"}
    port = free_port()
    command = ["uv", "run", PACKAGE, "serve", "--port", str(port), "--workers", "2"]
    server = start_server(command, project, data / "two-workers.log", port, env)
    try:
        send(server, rows)
        before = logged_rows(log)
    finally:
        stop_server(server)

    assert before == [], "written before the shutdown: the test would prove nothing"
    assert len(logged_rows(log)) == len(rows), server.output()
    assert "leaked shared_memory" not in server.output()


def api_key(project: Path, name: str, scopes: str) -> tuple[str, str]:
    """A new key from ``<package> api-key new``: (the key, its SERVING_API_KEYS entry)."""
    lines = run(
        ["uv", "run", PACKAGE, "api-key", "new", "--name", name, "--scopes", scopes], project
    )
    printed = [line.strip() for line in lines.stdout.splitlines()]
    return printed[1], printed[3]


@pytest.mark.slow
def test_canary_share_is_drawn_by_the_service_and_keyed_feedback_reaches_monitor(
    monitored: tuple[Path, Server, Path, str],
) -> None:
    """SERVING_ROLLOUT_CANARY_SHARE=0.3: the challenger answers about 30% of the requests, drawn by
    the service; labels sent to /feedback with a key give each arm its measured quality, and a
    later, different label for a row is reported by ``monitor``, not used."""
    project, _, data, champion = monitored
    rows = json.loads((data / "test.json").read_text())
    labels = json.loads((data / "labels.json").read_text())
    ids = [f"canary-{n}" for n in range(len(rows))]
    key, entry = api_key(project, "labeler", "score,feedback")
    auth = {"Authorization": f"Bearer {key}"}
    log = project / "logs/predictions.jsonl"
    before = len(logged_rows(log))
    env = {"SERVING_ROLLOUT_CANARY_SHARE": "0.3", "SERVING_API_KEYS": entry}
    server = serve(project, data / "canary.log", env)
    try:
        ready = call(server.base, "/ready")
        since = now()
        versions = {
            i: call(
                server.base, "/predict", {"instances": [row]}, **auth, **{"X-Request-ID": i}
            ).body["model_version"]
            for i, row in zip(ids, rows, strict=True)
        }
        body = {"labels": [{"request_id": i, "label": y} for i, y in zip(ids, labels, strict=True)]}
        feedback = call(server.base, "/feedback", body, **auth)
        other = next(label for label in labels if label != labels[0])
        later = call(
            server.base, "/feedback", {"labels": [{"request_id": ids[0], "label": other}]}, **auth
        )
        anonymous = call(server.base, "/feedback", body)
        refused = call(server.base, "/feedback", {"labels": [{"request_id": "x"}]}, **auth)
        wait_for_rows(log, before + len(ids))
    finally:
        stop_server(server)
    _, summary, output = monitor(project, since, data / "canary")

    challenger = ready.body["canary_version"]
    canary = {i for i, version in versions.items() if version == challenger}
    assert ready.body["canary_share"] == 0.3 and challenger not in (None, champion), ready.body
    assert set(versions.values()) == {champion, challenger}, versions
    assert 0 < len(canary) < len(ids) * 0.6, "about 30% of the requests"
    assert feedback.status == 202 and feedback.body == {"recorded": len(ids)}, feedback.body
    assert later.status == 202, later.body
    assert anonymous.status == 401 and key not in str(anonymous.body), anonymous.body
    assert refused.status == 422 and "label" in str(refused.body), refused.body
    assert key not in server.output(), "the key was logged"
    arms = {arm["served_by"]: arm for arm in summary["canary"]["arms"]}
    assert arms["canary"]["rows"] == len(canary), output
    assert arms["champion"]["rows"] == len(ids) - len(canary)
    assert arms["canary"]["quality"]["labelled_rows"] == len(canary)
    assert arms["champion"]["quality"]["labelled_rows"] == len(ids) - len(canary)
    assert summary["feedback_conflicts"] == 1 and "the first stands" in output, output


@pytest.mark.slow
def test_rows_at_the_float_limits_and_a_torn_line_end_in_alerts_not_a_failure(
    monitored: tuple[Path, Server, Path, str],
) -> None:
    """Issue 14: two rows the service accepted (every number 1e308, then -1e308) made
    ``monitor`` exit 2 on the whole log, and so did one torn UTF-8 byte (a crash mid-write):
    the scheduled job failed instead of retraining. Both must end in a verdict (here an
    alert: exit 1) with the report, the torn line counted; the log is not readable by all."""
    project, server, data, _ = monitored
    row = json.loads((data / "test.json").read_text())[0]
    extremes = [
        {
            name: sign * 1e308 if isinstance(value, int | float) and not isinstance(value, bool)
            else value
            for name, value in row.items()
        }
        for sign in (1, -1)
    ]  # fmt: skip
    log = project / "logs/predictions.jsonl"
    before = len(logged_rows(log))
    since = now()
    answer = call(server.base, "/predict", {"instances": extremes})
    wait_for_rows(log, before + len(extremes))
    torn = data / "torn" / "predictions.jsonl"  # a copy: the other tests keep a clean log
    torn.parent.mkdir()
    torn.write_bytes(log.read_bytes() + b'{"request_id": "crash", "inputs": {"plan": ["\xc3')
    out = data / "extremes"
    result = run(
        [
            "uv", "run", PACKAGE, "monitor", "--current", str(torn), "--since", since,
            "--output-dir", str(out),
        ],
        project,
        check=False,
    )  # fmt: skip
    output = result.stdout + result.stderr

    assert answer.status == 200, answer.body
    assert result.returncode == 1, output  # the last release: 2, "Too many bins ..."
    summary = json.loads((out / "summary.json").read_text())
    assert summary["current_rows"] == len(extremes)
    assert summary["unreadable"]["lines"] == {"not UTF-8": 1}, summary["unreadable"]
    assert "skipped unreadable log lines" in output
    assert any("outside the training range" in alert for alert in summary["alerts"]), output
    assert "Unreadable input" in (out / "report.html").read_text()
    assert log.stat().st_mode & 0o007 == 0, oct(log.stat().st_mode)


@pytest.mark.slow
def test_html_report_renders_offline_in_headless_chromium(
    monitored: tuple[Path, Server, Path, str], tmp_path: Path
) -> None:
    _, _, data, _ = monitored
    report = data / "shifted" / "report.html"
    if not report.is_file():
        pytest.fail("the shifted-data report was not written (run the drift test first)")
    html = report.read_text()
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        message = "chromium is not installed (apt-get install chromium)"
        if os.environ.get("CI"):
            pytest.fail(message + "; .ci/run installs it")  # CI must not pass by skipping
        pytest.skip(message)

    screenshot = tmp_path / "report.png"
    subprocess.run(
        [
            browser, "--headless", "--no-sandbox", "--disable-gpu",
            "--disable-background-networking", "--disable-component-update", "--disable-sync",
            "--no-first-run", f"--user-data-dir={tmp_path / 'profile'}",
            "--window-size=1280,2400", f"--screenshot={screenshot}", report.as_uri(),
        ],
        capture_output=True,
        timeout=120,
        check=True,
    )  # fmt: skip

    assert not re.search(r"(src|href)\s*=\s*['\"]?(https?:)?//", html), "loads from the network"
    assert html.count("data:image/png;base64,") >= 2, "plots are not inlined"
    assert screenshot.stat().st_size > 20_000, "the screenshot is (nearly) blank"
    shutil.copy(screenshot, data / "report.png")  # kept with the run's temp files to look at


@pytest.mark.slow
def test_broken_champion_falls_back_and_says_so(
    monitored: tuple[Path, Server, Path, str],
) -> None:
    project, _, data, _ = monitored
    rows = json.loads((data / "test.json").read_text())[:3]
    broken = python(project, BREAK_SCRIPT)
    server = serve(project, data / "broken.log")
    try:
        ready = call(server.base, "/ready")
        answer = call(server.base, "/predict", {"instances": rows})
        metrics = call(server.base, "/metrics").body
    finally:
        stop_server(server)

    assert ready.status == 200 and ready.body["status"] == "fallback", ready.body
    assert "cannot load" in ready.body["reason"], ready.body
    assert answer.status == 200, answer.body
    assert len(answer.body["predictions"]) == len(rows)
    assert answer.body["fallback"] == "previous", "which kind answered, not the error text"
    assert answer.body["model_version"] != broken, "answered by the broken version?"
    assert "model_fallback_active 1.0" in metrics


@pytest.mark.slow
def test_model_card_and_ml_test_score_of_a_fresh_project(csv_project: Path) -> None:
    card = (csv_project / "reports/model_card.md").read_text()
    score = (csv_project / "ML_TEST_SCORE.md").read_text()

    assert re.search(r"data version .*`[0-9a-f]{32}`", card), card
    assert "| metric | model | baseline |" in card
    assert "## Intended use" in card and "## Limitations" in card
    assert re.search(r"\*\*Final score: [0-9.]+\*\*", score), "ML_TEST_SCORE.md states no score"
    rows = re.findall(r"^\| (Data|Model|Infra|Monitor) (\d)", score, flags=re.MULTILINE)
    assert len(rows) == 28, rows


@pytest.mark.parametrize(
    "case", ["defaults", "no-serving-no-monitoring", "ci-none", "long-package-name"]
)
def test_every_path_named_in_ml_test_score_exists(case: str, tmp_path: Path) -> None:
    """Fast tier: each `path` the table names is a file or folder of the same render."""
    answers = CASES[case]
    dest = render(tmp_path / "project", answers, skip_tasks=True)
    text = (dest / "ML_TEST_SCORE.md").read_text()
    named = set(re.findall(PATH_IN_BACKTICKS, text))

    missing = sorted(p for p in named if not (dest / p).exists())
    assert named, "ML_TEST_SCORE.md names no path"
    assert not missing, missing
