"""The adversarial suite of issue 14: every attack of the issue, run against a generated project.

    uv run python -m tests.attacks --project DIR [--template DIR] [--out table.md] [-k NAME]

The project folder is only read: the suite copies it (without ``.venv``) into a work folder,
runs the project's own ``.venv/bin/python`` there, and starts the service on 127.0.0.1 (one
uvicorn worker, as ``make serve``) with the settings each attack needs. Every attack is
bounded in time and count. For each one it measures the answers (no 500; an honest 503 has
``Retry-After``), the slowest ``GET /health`` while the attack is handled (probed every
~100 ms from another connection), the worker's RSS before, at peak and after, the largest
error body, whether a secret appears in any answer, header, ``/metrics`` or the server's log,
and whether the process still answers at the end; plus checks of its own. The second table
does the same for commands (``monitor``, ``export-model``, ``dvc repro``, ``predict``) and
copier's validators. ``tests/test_attacks.py`` runs the same definitions under pytest.
"""

from __future__ import annotations

import argparse
import fnmatch
import hashlib
import json
import re
import secrets
import select
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import zlib
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import yaml

from .attack_lab import (
    LEGEND,
    Attack,
    Context,
    Lab,
    Sent,
    ServerSpec,
    bearer,
    cli_table,
    client_error,
    run_all,
    service_table,
    size_text,
    status_of,
)
from .helpers import TEMPLATE_ROOT, project_env
from .hostile import ArtifactServer, Reply, exchange, parse_raw, pickle_model, raw_exchange
from .server import free_port, front_proxy, nginx_binary

SLOW_CONNECTIONS = 20
SLOW_WAIT = 10.0  # seconds a slow client may stay open (the server's timeouts are 3 s here)
SERVER_TIMEOUT = "3"
LOG_WAIT = 6.0  # seconds for the prediction log's writer to flush

REGISTER_SCRIPT = """
import importlib, sys
import mlflow
from mlflow.tracking import MlflowClient
settings = importlib.import_module(sys.argv[1] + ".config").get_settings()
mlflow.set_tracking_uri(settings.mlflow_tracking_uri)
client = MlflowClient()
version = client.create_model_version(settings.model_name, source=sys.argv[2])
client.set_registered_model_alias(settings.model_name, sys.argv[3], version.version)
print(version.version)
"""

COUNT_SCRIPT = """
import sys
import pandas as pd, yaml
print(len(pd.read_parquet(yaml.safe_load(open("params.yaml"))["paths"][sys.argv[1]])))
"""


# ---------------------------------------------------------------------------- service attacks


def predict_body(context: Context, rows: int = 2) -> dict[str, Any]:
    return {"instances": [context.row(i) for i in range(rows)]}


def records_body(context: Context, rows: int = 2) -> dict[str, Any]:
    return {"dataframe_records": [context.row(i) for i in range(rows)]}


def expect_4xx(context: Context, replies: Sequence[Reply], what: str = "refused (4xx)") -> None:
    context.check(what, all(map(client_error, replies)), ", ".join(map(status_of, replies)))


def csv_many_rows(context: Context) -> None:
    header = ",".join(context.project.features).encode() + b"\n"
    body = header + b"1\n" * 1_900_000
    context.note(f"body {size_text(len(body))}")
    reply = context.send("POST", "/invocations", body, content_type="text/csv")
    expect_4xx(context, [reply])


def csv_many_columns(context: Context) -> None:
    names = ",".join(f"c{i}" for i in range(400_000)).encode()
    body = names + b"\n" + b",".join([b"1"] * 400_000) + b"\n"
    context.note(f"body {size_text(len(body))}")
    reply = context.send("POST", "/invocations", body, content_type="text/csv")
    expect_4xx(context, [reply])


def with_extra_keys(context: Context) -> dict[str, Any]:
    return context.row() | {f"x{i:07d}_extra": 1 for i in range(100_000)}


def json_extra_keys_predict(context: Context) -> None:
    body = json.dumps({"instances": [with_extra_keys(context)]}).encode()
    context.note(f"body {size_text(len(body))}")
    expect_4xx(context, [context.send("POST", "/predict", body)])


def json_extra_keys_invocations(context: Context) -> None:
    body = json.dumps({"dataframe_records": [with_extra_keys(context)]}).encode()
    context.note(f"body {size_text(len(body))}")
    expect_4xx(context, [context.send("POST", "/invocations", body)])


def json_huge_array(context: Context) -> None:
    body = b'{"instances":[' + b",".join([b"0"] * 1_000_000) + b"]}"
    replies = [context.send("POST", path, body) for path in ("/predict", "/invocations")]
    expect_4xx(context, replies)


def json_deep_nesting(context: Context) -> None:
    depth = 100_000
    body = b'{"instances":' + b"[" * depth + b"]" * depth + b"}"
    replies = [context.send("POST", path, body) for path in ("/predict", "/invocations")]
    expect_4xx(context, replies)


def json_nan_and_huge_numbers(context: Context) -> None:
    name = context.project.numeric[0]
    replies = []
    for literal in (b"NaN", b"Infinity", b"1e400"):
        row = json.dumps(context.row() | {name: "@@"}).encode().replace(b'"@@"', literal)
        for path, key in (("/predict", b"instances"), ("/invocations", b"dataframe_records")):
            body = b'{"' + key + b'":[' + row + b"]}"
            replies.append(context.send("POST", path, body))
    expect_4xx(context, replies)


def not_utf8(context: Context) -> None:
    name = context.project.features[0].encode()
    body = b'{"instances":[{"' + name + b'":"\xff\xfe\xc3"}]}'
    replies = [context.send("POST", path, body) for path in ("/predict", "/invocations")]
    csv = b",".join(f.encode() for f in context.project.features) + b"\n\xff\xfe,\xc3\n"
    replies.append(context.send("POST", "/invocations", csv, content_type="text/csv"))
    expect_4xx(context, replies)


SAFE_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")


def header_injection(context: Context) -> None:
    auth = f"Authorization: Bearer {context.lab.key}\r\n".encode()
    bad_ids = [
        b"abc\rSet-Cookie: injected=1",
        b"abc\nSet-Cookie: injected=1",
        b"abc%0d%0aSet-Cookie:%20injected=1",
        b"\xff\xfeid",
        b"a" * 10_000,
        b"id\x00nul",
    ]
    injected, echoed = [], []
    for value in bad_ids:
        request = (
            b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            + auth
            + b"X-Request-ID: "
            + value
            + b"\r\nConnection: close\r\n\r\n"
        )
        reply = context.record("GET /health (X-Request-ID)", raw_exchange(context.port, request))
        if "set-cookie" in reply.headers or "injected" in " ".join(reply.headers.values()):
            injected.append(value[:20])
        given = reply.headers.get("x-request-id")
        if given is not None and not SAFE_ID.fullmatch(given):
            echoed.append(given[:40])
    context.check("no injected header", not injected, repr(injected))
    context.check("echoed ids are safe", not echoed, repr(echoed))


def feedback_labels(count: int, prefix: str, size: int = 370) -> dict[str, Any]:
    pad = "z" * (size - 70)
    return {
        "labels": [
            {"request_id": f"{prefix}-{i:08d}", "row": i % 7, "label": f"{pad}{i}"}
            for i in range(count)
        ]
    }


def feedback_bytes(lab: Lab) -> int:
    return sum(p.stat().st_size for p in lab.logs.glob("feedback.jsonl*") if p.is_file())


def feedback_anonymous(context: Context) -> None:
    before = feedback_bytes(context.lab)
    body = json.dumps(feedback_labels(10_000, "anon")).encode()
    context.note(f"4 posts of {size_text(len(body))}, 10,000 labels each")
    replies = [context.send("POST", "/feedback", body, key=None) for _ in range(4)]
    grown = feedback_bytes(context.lab) - before
    expect_4xx(context, replies, "anonymous writes refused")
    context.check("feedback file unchanged", grown == 0, f"grew {size_text(grown)}")


def feedback_lines(lab: Lab, request_id: str) -> list[Any]:
    found = []
    for path in lab.logs.glob("feedback.jsonl*"):
        for line in path.read_bytes().splitlines():
            if request_id.encode() in line:
                try:
                    found.append(json.loads(line))
                except ValueError:
                    found.append(line)
    return found


def feedback_overwrite(context: Context) -> None:
    """Two different labels for one (request_id, row): the second may not replace the first.
    Held when the second write is refused or never recorded."""
    request_id = "overwrite-" + secrets.token_hex(6)
    one = {"labels": [{"request_id": request_id, "row": 0, "label": 1}]}
    other = {"labels": [{"request_id": request_id, "row": 0, "label": 0}]}
    accepted = context.send("POST", "/feedback", one)
    context.check("first label accepted", accepted.status in (200, 201, 202), status_of(accepted))
    replaced = context.send("POST", "/feedback", other)
    time.sleep(0.2)
    labels = [
        r.get("label") for r in feedback_lines(context.lab, request_id) if isinstance(r, dict)
    ]
    # Held when the second label is refused, never recorded, or recorded but not the one the
    # project's monitor joins to the prediction (its own join_feedback decides, not the suite).
    try:
        joined = project_python(
            context,
            context.project.root,
            JOIN_SCRIPT.format(package=context.project.package),
            str(context.lab.logs / "feedback.jsonl"),
            request_id,
        )
    except RuntimeError:  # no monitoring.feedback (before 0.6.0): the file decides
        joined = "unknown"
    kept = client_error(replaced) or 0 not in labels or joined == "1"
    context.check(
        "second label does not replace it",
        kept,
        f"{status_of(replaced)}, file: {labels}, monitor joins: {joined}",
    )


JOIN_SCRIPT = """
import sys
from pathlib import Path
import pandas as pd
from {package}.monitoring import feedback
predictions = pd.DataFrame({{feedback.REQUEST_ID: [sys.argv[2]], feedback.ROW: [0]}})
joined = feedback.join_feedback(predictions, Path(sys.argv[1]), "target")
print(joined["target"].iloc[0])
"""


def feedback_echo(context: Context) -> None:
    token = "echo-" + secrets.token_hex(8)
    label = {"nested": token + "-" + "q" * 200_000}
    body = {"labels": [{"request_id": "echo-test", "row": -1, "label": label}]}
    reply = context.send("POST", "/feedback", body)
    context.check("validated (400/422)", reply.status in (400, 422), status_of(reply))
    context.check("input not echoed", token.encode() not in reply.body, size_text(len(reply.body)))


def canary_ids(share: float, count: int) -> tuple[list[str], list[str]]:
    """Ids whose crc32 lands below ``share`` (the canary's half) and above it."""
    low: list[str] = []
    high: list[str] = []
    n = 0
    while len(low) < count or len(high) < count:
        candidate = f"attack-{n}"
        bucket = zlib.crc32(candidate.encode()) / 2**32
        side = low if bucket < share else high
        if len(side) < count:
            side.append(candidate)
        n += 1
    return low, high


def canary_by_client_id(context: Context) -> None:
    """Ids whose crc32 falls in the canary's half, and others: if every answer's arm follows
    the id, a client picks the model that answers it."""
    ready = context.send("GET", "/ready").json() or {}
    champion = str(ready.get("model_version"))
    low, high = canary_ids(0.5, 10)
    arms: dict[str, list[str]] = {"low": [], "high": []}
    for side, ids in (("low", low), ("high", high)):
        for request_id in ids:
            reply = context.send(
                "POST", "/predict", predict_body(context, 1), headers={"X-Request-ID": request_id}
            )
            version = str((reply.json() or {}).get("model_version"))
            arm = "champion" if version == champion else "canary"
            arms[side].append(arm if reply.status == 200 else status_of(reply))
    answered = Counter(arms["low"] + arms["high"])
    context.check("both arms answered", set(answered) == {"champion", "canary"}, str(answered))
    follows = set(arms["low"]) == {"canary"} and set(arms["high"]) == {"champion"}
    context.check(
        "arm not chosen by the client's id",
        not follows,
        f"ids of the canary's half: {Counter(arms['low'])}, others: {Counter(arms['high'])}",
    )


def slow_clients(context: Context, start: bytes, label: str, port: int | None = None) -> None:
    """``SLOW_CONNECTIONS`` connections to ``port`` (the service's by default) that send
    ``start`` and then nothing: each should be closed within the timeouts while /health keeps
    answering."""
    connections = []
    for _ in range(SLOW_CONNECTIONS):
        connection = socket.create_connection(("127.0.0.1", port or context.port), timeout=5)
        connection.sendall(start)
        connections.append(connection)
    opened = time.monotonic()
    waiting = {c: b"" for c in connections}
    closed: list[float] = []
    while waiting and time.monotonic() - opened < SLOW_WAIT:
        readable, _, _ = select.select(list(waiting), [], [], 0.2)
        for connection in readable:
            try:
                chunk = connection.recv(65536)
            except OSError:
                chunk = b""
            if chunk:
                waiting[connection] += chunk
                continue
            answer = waiting.pop(connection)
            closed.append(time.monotonic() - opened)
            if answer:
                context.record(label, parse_raw(answer, closed[-1]))
            else:
                context.result.sent.append(Sent(label, None, 0, False, "closed", closed[-1]))
    for connection in connections:
        connection.close()
    for _ in waiting:
        context.result.sent.append(Sent(label, None, 0, False, "held open", SLOW_WAIT))
    detail = f"{len(closed)}/{SLOW_CONNECTIONS} closed in {SLOW_WAIT:.0f} s"
    if closed:
        detail += f" (last after {max(closed):.1f} s)"
    context.check("closed by the server", len(closed) == SLOW_CONNECTIONS, detail)


def slow_headers(context: Context) -> None:
    """uvicorn has no header timeout: the project's answer is its front proxy (ops/nginx.conf,
    in compose), so the clients go through that proxy, run from the project's own file with
    the lab's short timeout, in front of the service. Without nginx the service is tried bare
    (and fails: nothing else closes such a connection)."""
    start = b"POST /predict HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nX-A: "
    if nginx_binary() is None or not (context.project.root / "ops" / "nginx.conf").is_file():
        context.note("no nginx or no ops/nginx.conf: straight to the service")
        slow_clients(context, start, "partial headers")
        return
    folder = Path(tempfile.mkdtemp(prefix="nginx-", dir=context.lab.work))
    upstream = f"127.0.0.1:{context.port}"
    with front_proxy(context.project.root, upstream, folder, int(SERVER_TIMEOUT)) as base:
        context.note("through the project's ops/nginx.conf")
        slow_clients(context, start, "partial headers", int(base.rpartition(":")[2]))


def slow_body(context: Context) -> None:
    start = (
        f"POST /predict HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        f"Authorization: Bearer {context.lab.key}\r\nContent-Length: 1000\r\n\r\n"
        '{"instances": ['
    ).encode()
    slow_clients(context, start, "partial body")


def content_types(context: Context) -> None:
    replies = []
    for path, body in (
        ("/predict", predict_body(context)),
        ("/invocations", records_body(context)),
    ):
        for kind in ("text/plain", "application/x-www-form-urlencoded", None):
            replies.append(context.send("POST", path, json.dumps(body).encode(), content_type=kind))
    statuses = ", ".join(map(status_of, replies))
    context.check(
        "415 for text/plain, a form, none", all(r.status == 415 for r in replies), statuses
    )


def cors(context: Context) -> None:
    origin = {"Origin": "https://evil.example"}
    preflight = {**origin, "Access-Control-Request-Method": "POST"}
    replies = [
        context.send("OPTIONS", "/predict", headers=preflight),
        context.send("POST", "/predict", predict_body(context), headers=origin),
    ]
    allowed = [r.headers.get("access-control-allow-origin") for r in replies]
    context.check("no CORS by default", not any(allowed), repr(allowed))


def log_files_private(context: Context) -> None:
    context.send("POST", "/predict", predict_body(context))
    context.send("POST", "/feedback", {"labels": [{"request_id": "mode-check", "label": 1}]})
    paths = [context.lab.logs / "predictions.jsonl", context.lab.logs / "feedback.jsonl"]
    deadline = time.monotonic() + LOG_WAIT
    while not all(p.exists() for p in paths) and time.monotonic() < deadline:
        time.sleep(0.2)
    modes = {p.name: oct(p.stat().st_mode & 0o777) for p in paths if p.exists()}
    context.check("both files written", len(modes) == 2, str(modes))
    public = [p.name for p in paths if p.exists() and p.stat().st_mode & 0o004]
    context.check("not world-readable", not public, str(modes))


def readiness_and_scoring(context: Context) -> tuple[Reply, list[Reply]]:
    ready = context.send("GET", "/ready")
    scored = [
        context.send("POST", "/predict", predict_body(context)),
        context.send("POST", "/invocations", records_body(context)),
    ]
    context.send("GET", "/metrics")
    context.send("GET", "/health")
    return ready, scored


def registry_with_password(context: Context) -> None:
    ready, scored = readiness_and_scoring(context)
    body = ready.json() or {}
    context.note(
        f"/ready {ready.status}: status={body.get('status')}, model={body.get('model_uri')}"
    )
    context.check("/ready not 200 without a real model", ready.status != 200, status_of(ready))
    baseline = [r for r in scored if r.status == 200]
    context.check(
        "no 200 from a constant baseline", not baseline, ", ".join(map(status_of, scored))
    )


def registry_with_password_baseline_chosen(context: Context) -> None:
    """The operator chose the baseline (``SERVING_ROLLOUT_FALLBACK=baseline``): it may answer, and
    must say so; the password still stays in."""
    ready, scored = readiness_and_scoring(context)
    body = ready.json() or {}
    context.note(
        f"/ready {ready.status}: status={body.get('status')}, model={body.get('model_uri')}"
    )
    named = "baseline" in json.dumps(body)
    context.check("/ready names the baseline", named, str(body.get("status")))
    context.check(
        "the baseline answers",
        all(r.status == 200 for r in scored),
        ", ".join(map(status_of, scored)),
    )


def model_uri_with_password(context: Context) -> None:
    ready, _ = readiness_and_scoring(context)
    served = len(context.lab.artifacts().served)
    context.note(f"/ready {ready.status}; the stand-in artifact server served {served} files")


def marker_absent(context: Context, marker: Path) -> None:
    if context.running is not None and context.running.server is not None:
        ready = context.send("GET", "/ready")
        context.send("POST", "/predict", predict_body(context))
        reason = (ready.json() or {}).get("reason")
        context.note(f"/ready {status_of(ready)}" + (f": {reason!s:.120}" if reason else ""))
    context.check("pickle not loaded (no marker file)", not marker.exists(), str(marker.name))


def marker(lab: Lab, name: str) -> Path:
    return lab.work / "markers" / f"{name}.ran"


def pickle_folder(lab: Lab, name: str) -> Path:
    (lab.work / "markers").mkdir(exist_ok=True)
    folder = lab.work / "pickles" / name
    if not folder.exists():
        pickle_model(lab.project.model_folder, folder, marker(lab, name))
    return folder


def hash_without_key(context: Context) -> None:
    if context.running is None or context.running.server is None:
        context.check("refused at start-up", True, "the service would not start")
        return
    name = context.project.numeric[0]
    value = context.row()[name]
    context.send("POST", "/predict", {"instances": [context.row()]})
    log = context.lab.logs / "hashed" / "predictions.jsonl"
    deadline = time.monotonic() + LOG_WAIT
    while not log.exists() and time.monotonic() < deadline:
        time.sleep(0.2)
    text = log.read_bytes() if log.exists() else b""
    guesses = {str(value), repr(value), json.dumps(value)}
    digests = {hashlib.sha256(g.encode()).hexdigest() for g in guesses}
    found = [d[:16] for d in digests if d[:16].encode() in text]
    # Held: refused at start-up (above), or no log and the service says why (its log names the
    # missing key), or a log with no hash that anyone could compute without the key.
    said = "MONITORING_HASH_KEY" in context.running.server.log.read_text(errors="replace")
    context.check(
        "log written, or refused and said",
        bool(text) or said,
        "written" if text else ("refused, said in the service's log" if said else "silent"),
    )
    context.check(
        "no unkeyed hash of the value", not found, f"sha256({value!r}) found" if found else ""
    )


# ---------------------------------------------------------------------------- configurations


def main_settings(lab: Lab) -> dict[str, str]:
    """Short server timeouts (settings of the fixed service) and a canary that answers half
    of the requests: a copy of the champion's folder, so its answers name another version."""
    challenger = lab.work / "challenger"
    if not challenger.exists():
        shutil.copytree(lab.project.model_folder, challenger)
        (challenger / "registered_model.json").unlink(missing_ok=True)
    return {
        "SERVING_BODY_TIMEOUT": SERVER_TIMEOUT,
        "SERVING_TIMEOUT_KEEP_ALIVE": SERVER_TIMEOUT,
        "SERVING_ROLLOUT_CHALLENGER_URI": str(challenger),
        "SERVING_ROLLOUT_CANARY_SHARE": "0.5",
    }


def registry_settings(lab: Lab) -> dict[str, str]:
    password = lab.secrets["tracking password"]
    return {"MLFLOW_TRACKING_URI": f"http://alice:{password}@127.0.0.1:{free_port()}/"}


def model_uri_settings(lab: Lab) -> dict[str, str]:
    return {"SERVING_MODEL_URI": lab.artifacts().uri("bob", lab.secrets["model URI password"])}


def alias_settings(lab: Lab) -> dict[str, str]:
    """The registry's ``challenger`` alias on a pickle model (in a copy of its own)."""

    def register() -> str:
        folder = pickle_folder(lab, "alias")
        copy = lab.copy("alias")
        args = [str(lab.project.python), "-c", REGISTER_SCRIPT, lab.project.package]
        done = subprocess.run(
            [*args, str(folder), "challenger"],
            cwd=copy,
            env=project_env(lab.env(copy)),
            capture_output=True,
            text=True,
            timeout=300,
            check=True,
        )
        return done.stdout.strip()

    lab.cached("alias", register)
    return {}


def hash_settings(lab: Lab) -> dict[str, str]:
    (lab.logs / "hashed").mkdir(exist_ok=True)
    return {
        "MONITORING_HASH_COLUMNS": json.dumps([lab.project.numeric[0]]),
        "MONITORING_LOG_PATH": str(lab.logs / "hashed" / "predictions.jsonl"),
    }


def plain_settings(lab: Lab) -> dict[str, str]:
    (lab.work / "monitor").mkdir(exist_ok=True)
    return {"MONITORING_LOG_PATH": str(lab.work / "monitor" / "predictions.jsonl")}


MAIN = ServerSpec("main", main_settings)
REGISTRY = ServerSpec("registry", registry_settings)
REGISTRY_BASELINE = ServerSpec(
    "registry-baseline",
    lambda lab: registry_settings(lab) | {"SERVING_ROLLOUT_FALLBACK": "baseline"},
)
MODEL_URI = ServerSpec("model-uri", model_uri_settings)
PICKLE_SERVING = ServerSpec(
    "pickle-serving", lambda lab: {"SERVING_MODEL_URI": str(pickle_folder(lab, "serving"))}
)
PICKLE_CHALLENGER = ServerSpec(
    "pickle-challenger",
    lambda lab: {"SERVING_ROLLOUT_CHALLENGER_URI": str(pickle_folder(lab, "challenger"))},
)
PICKLE_ALIAS = ServerSpec("pickle-alias", alias_settings, copy="alias")
HASH = ServerSpec("hash", hash_settings)
PLAIN = ServerSpec("plain", plain_settings)


def _slow(name: str, what: str, action: Callable[[Context], None]) -> Attack:
    return Attack(name, "10", what, action, MAIN, in_flight=SLOW_CONNECTIONS)


SERVICE_ATTACKS = [
    Attack("json-huge-array", "1", "10^6-element array", json_huge_array, MAIN, guard=True),
    Attack("json-deep-nesting", "1", "100,000 nested arrays", json_deep_nesting, MAIN, True),
    Attack("json-nan-1e400", "1", "NaN, Infinity, 1e400", json_nan_and_huge_numbers, MAIN, True),
    Attack("not-utf8", "1", "bytes that are not UTF-8 (JSON, CSV)", not_utf8, MAIN, guard=True),
    Attack(
        "header-injection", "1", "CR/LF, NUL, 10 kB in X-Request-ID", header_injection, MAIN, True
    ),
    Attack("cors", "11", "preflight and POST from another origin", cors, MAIN, guard=True),
    Attack("content-type", "11", "JSON sent as text/plain, a form, none", content_types, MAIN),
    Attack("feedback-anonymous", "4", "4 x 3.7 MB of labels, no key", feedback_anonymous, MAIN),
    Attack("feedback-overwrite", "4", "a second label for one (id, row)", feedback_overwrite, MAIN),
    Attack("feedback-422-echo", "4", "invalid label of 200 kB", feedback_echo, MAIN),
    Attack(
        "canary-client-id",
        "4",
        "client ids on each side of the canary",
        canary_by_client_id,
        MAIN,
    ),
    Attack("log-files-mode", "11", "prediction and feedback files", log_files_private, MAIN),
    _slow("slow-headers", f"{SLOW_CONNECTIONS} connections, partial headers", slow_headers),
    _slow("slow-body", f"{SLOW_CONNECTIONS} connections, partial bodies", slow_body),
    Attack(
        "json-extra-keys-predict",
        "1",
        "2 MB row, 100,000 extra keys",
        json_extra_keys_predict,
        MAIN,
    ),
    Attack(
        "json-extra-keys-invocations",
        "1",
        "2 MB row, 100,000 extra keys",
        json_extra_keys_invocations,
        MAIN,
    ),
    Attack("csv-rows", "1", "CSV of 1.9M short rows (3.8 MB)", csv_many_rows, MAIN),
    Attack("csv-columns", "1", "CSV of 400,000 columns", csv_many_columns, MAIN),
    Attack(
        "secret-tracking-uri",
        "2, 3",
        "MLFLOW_TRACKING_URI with a password, registry down",
        registry_with_password,
        REGISTRY,
    ),
    Attack(
        "secret-tracking-uri-baseline",
        "2, 3",
        "the same, SERVING_ROLLOUT_FALLBACK=baseline chosen",
        registry_with_password_baseline_chosen,
        REGISTRY_BASELINE,
    ),
    Attack(
        "secret-model-uri",
        "2",
        "SERVING_MODEL_URI with a password",
        model_uri_with_password,
        MODEL_URI,
    ),
    Attack(
        "pickle-serving-uri",
        "6",
        "SERVING_MODEL_URI: a cloudpickle model",
        lambda c: marker_absent(c, marker(c.lab, "serving")),
        PICKLE_SERVING,
    ),
    Attack(
        "pickle-challenger-uri",
        "6",
        "SERVING_ROLLOUT_CHALLENGER_URI: a cloudpickle model",
        lambda c: marker_absent(c, marker(c.lab, "challenger")),
        PICKLE_CHALLENGER,
    ),
    Attack(
        "pickle-challenger-alias",
        "6",
        "registry alias challenger: a cloudpickle model",
        lambda c: marker_absent(c, marker(c.lab, "alias")),
        PICKLE_ALIAS,
    ),
    Attack(
        "hash-without-key",
        "11",
        "MONITORING_HASH_COLUMNS, no key",
        hash_without_key,
        HASH,
        may_refuse_start=True,
    ),
]


# ---------------------------------------------------------------------------- command cases


def make_monitor_logs(lab: Lab) -> dict[str, Any]:
    """Prediction logs written by the service itself: test rows, then one request of two rows
    with every numeric feature at 1e308 and -1e308; and a copy with one torn UTF-8 line."""
    running = lab.server(PLAIN)
    if running.server is None:
        raise RuntimeError(f"the service would not start: {running.refused[-300:]}")
    headers = {"Content-Type": "application/json", **bearer(lab.key)}
    rows = lab.project.rows
    statuses = []
    for start in range(0, len(rows), 10):
        body = json.dumps({"instances": rows[start : start + 10]}).encode()
        statuses.append(exchange(running.port, "POST", "/predict", body, headers).status)
    extremes = [rows[0] | dict.fromkeys(lab.project.numeric, v) for v in (1e308, -1e308)]
    body = json.dumps({"instances": extremes}).encode()
    extreme = exchange(running.port, "POST", "/predict", body, headers)
    lab.stop_server()  # a graceful stop writes what the log still holds
    lines = (lab.work / "monitor" / "predictions.jsonl").read_bytes().splitlines(keepends=True)
    marked = [line for line in lines if b"e+308" in line or b"e308" in line]
    normal = [line for line in lines if line not in marked]
    extreme_log = lab.work / "monitor-extreme" / "predictions.jsonl"
    torn_log = lab.work / "monitor-torn" / "predictions.jsonl"
    for path in (extreme_log, torn_log):
        path.parent.mkdir(exist_ok=True)
    extreme_log.write_bytes(b"".join(lines))
    half = len(normal) // 2
    torn = normal[0][: len(normal[0]) // 2] + b"\xe2\x82\n"  # cut inside a 3-byte character
    torn_log.write_bytes(b"".join([*normal[:half], torn, *normal[half:]]))
    return {
        "extreme": extreme_log,
        "torn": torn_log,
        "note": f"test rows answered {Counter(statuses)}, extreme rows {extreme.status}, "
        f"{len(marked)} of {len(lines)} log lines hold them",
        "logged": extreme.status == 200 and bool(marked) and bool(normal),
    }


def run_monitor(context: Context, log: Path) -> None:
    out = log.parent / "report"
    done = context.run(
        "monitor",
        context.lab.command("monitor", "--current", str(log), "--output-dir", str(out)),
        context.lab.copy("main"),
        MONITORING_FEEDBACK_PATH=str(log.parent / "no-feedback.jsonl"),
    )
    context.check("exit 0 or 1", done.returncode in (0, 1), exit_text(done))
    written = sorted(p.name for p in out.glob("*")) if out.is_dir() else []
    context.check("report written", bool(written), ", ".join(written))


ANSI = re.compile(r"\x1b\[[0-9;]*m")


def tail(done: subprocess.CompletedProcess[str]) -> str:
    """The last line of a command's output that says something (no colours, progress bars
    or the frames of a rich traceback)."""
    text = ANSI.sub("", done.stderr.strip() or done.stdout.strip())
    frames = set("│╭╮╰╯─")
    lines = [
        line.strip()
        for line in text.splitlines()
        if line.strip() and "%|" not in line and not frames & set(line)
    ]
    return lines[-1][-160:] if lines else ""


def exit_text(done: subprocess.CompletedProcess[str]) -> str:
    return f"exit {done.returncode}" + (f": {tail(done)}" if done.returncode else "")


def monitor_extreme(context: Context) -> None:
    logs = context.lab.cached("monitor-logs", lambda: make_monitor_logs(context.lab))
    context.check("extreme rows accepted and logged", logs["logged"], logs["note"])
    run_monitor(context, logs["extreme"])


def monitor_torn(context: Context) -> None:
    logs = context.lab.cached("monitor-logs", lambda: make_monitor_logs(context.lab))
    run_monitor(context, logs["torn"])


def listing(folder: Path) -> set[str]:
    return {str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file()}


def export_into(context: Context, target: str) -> None:
    copy = context.lab.copy("export-" + target.replace(".", "dot").replace("/", "-"))
    before = listing(copy)
    done = context.run(
        f"export-model -o {target}", context.lab.command("export-model", "--output", target), copy
    )
    lost = sorted(before - listing(copy))
    context.check("refused", done.returncode != 0, exit_text(done))
    sample = ", ".join(lost[:3])
    context.check("no file lost", not lost, f"{len(lost)} of {len(before)} lost {sample}")


def project_python(context: Context, copy: Path, script: str, *args: str) -> str:
    done = subprocess.run(
        [str(context.project.python), "-c", script, *args],
        cwd=copy,
        env=project_env(context.lab.env(copy)),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"the project's python failed: {tail(done)}")
    return done.stdout.strip()


TO_CSV_SCRIPT = """
import sys
import pandas as pd, yaml
from pathlib import Path
path = yaml.safe_load(open("params.yaml"))["paths"]["ingested"]
Path(sys.argv[1]).parent.mkdir(parents=True, exist_ok=True)
pd.read_parquet(path).to_csv(sys.argv[1], index=False)
"""


def stale_data(context: Context) -> None:
    """README's "bring your own data": ``data.source`` set to a CSV, then the CSV changes."""
    copy = context.lab.copy("stale")
    params = yaml.safe_load((copy / "params.yaml").read_text())
    raw = f"{params['paths']['raw']}/source.csv"  # the README's steps: a file in data/raw/
    project_python(context, copy, TO_CSV_SCRIPT, raw)
    text = (copy / "params.yaml").read_text()
    old = params["data"]["source"]
    changed = re.sub(rf"(source:\s*)[\"']?{re.escape(old)}[\"']?", rf'\g<1>"{raw}"', text, count=1)
    if changed == text:
        raise RuntimeError(f"data.source {old!r} not found in params.yaml")
    (copy / "params.yaml").write_text(changed)
    dvc = [str(context.project.python.parent / "dvc"), "repro", "ingest"]
    first = context.run("dvc repro ingest (CSV source)", dvc, copy)
    rows_first = project_python(context, copy, COUNT_SCRIPT, "ingested")
    csv = (copy / raw).read_bytes().splitlines(keepends=True)
    (copy / raw).write_bytes(b"".join(csv[:101]))
    second = context.run("dvc repro ingest (CSV cut to 100 rows)", dvc, copy)
    rows_second = project_python(context, copy, COUNT_SCRIPT, "ingested")
    context.check(
        "CSV source ingested",
        "Running stage 'ingest'" in first.stdout and rows_first == str(len(csv) - 1),
        f"exit {first.returncode}, {rows_first} rows of {len(csv) - 1}",
    )
    said = [line for line in second.stdout.splitlines() if "'ingest'" in line]
    reran = "Running stage 'ingest'" in second.stdout
    context.check("ingest reran", reran, said[0] if said else exit_text(second))
    context.check(
        "ingested rows follow the file", rows_second == "100", f"{rows_first} -> {rows_second}"
    )


def predict_pickle(context: Context) -> None:
    lab = context.lab
    folder = pickle_folder(lab, "predict")
    out = lab.work / "predict-out.csv"
    args = ["predict", "--model", str(folder), "--input", str(lab.project.rows_csv)]
    done = context.run(
        "predict --model", lab.command(*args, "--output", str(out)), lab.copy("main")
    )
    context.note(exit_text(done))
    context.check("pickle not loaded (no marker file)", not marker(lab, "predict").exists())


def monitor_pickle(context: Context) -> None:
    lab = context.lab
    folder = pickle_folder(lab, "monitor")
    args = ["monitor", "--current", str(lab.project.rows_csv), "--model", str(folder)]
    out = ["--output-dir", str(lab.work / "monitor-pickle")]
    done = context.run("monitor --model", lab.command(*args, *out), lab.copy("main"))
    context.note(exit_text(done))
    context.check("pickle not loaded (no marker file)", not marker(lab, "monitor").exists())


def copier_refuses(context: Context, label: str, answers: dict[str, str], needle: str) -> None:
    dest = context.lab.work / "renders" / label
    copier = Path(sys.executable).parent / "copier"
    data = [arg for key, value in answers.items() for arg in ("--data", f"{key}={value}")]
    args = [str(copier), "copy", "--trust", "--defaults", "--vcs-ref", "HEAD", "--skip-tasks"]
    done = subprocess.run(
        [*args, *data, str(context.lab.template), str(dest)],
        env=project_env(),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    context.result.commands.append(("copier copy", done.returncode))
    context.check("copier refused", done.returncode != 0, exit_text(done))
    written = [p for p in dest.rglob("*") if p.is_file() and needle.encode() in p.read_bytes()]
    names = ", ".join(str(p.relative_to(dest)) for p in written[:3])
    context.check("nothing written with it", not written, names)


def validator_cr(context: Context) -> None:
    url = "s3://bucket/project\r[cache]\rdir = /tmp/injected-cache"
    copier_refuses(context, "cr", {"dvc_remote": "s3", "dvc_remote_url": url}, "injected-cache")


def validator_credentials(context: Context) -> None:
    password = "pw-" + secrets.token_hex(8)
    uri = f"http://ann:{password}@127.0.0.1:5000"
    copier_refuses(context, "credentials", {"mlflow_tracking_uri": uri}, password)


def tracking_down(context: Context) -> None:
    """A command and a stage that open the tracking store, pointed by a URI with a password at
    a port where nothing listens: each fails, says which store, and never prints the password
    (MLflow's own messages carry the URI they called)."""
    copy = context.lab.copy("tracking-down")
    settings = registry_settings(context.lab)
    register = [str(context.project.python), "-m", f"{context.project.package}.stages.register"]
    for label, args in (("champion", context.lab.command("champion")), ("register", register)):
        done = context.run(label, args, copy, **settings)
        context.check(f"{label} failed", done.returncode != 0, exit_text(done))
        said = done.stdout + done.stderr
        context.check(f"{label} names the store", "http://alice:***@127.0.0.1" in said, tail(done))


def model_uri_commands(context: Context) -> None:
    """predict, explain and monitor given a model URI with a password, on a server that holds
    no model there: each refuses it, naming the URI without the password."""
    lab = context.lab
    empty = lab.work / "not-a-model"
    empty.mkdir(exist_ok=True)
    (empty / "README.txt").write_text("not a model\n", encoding="utf-8")
    server = ArtifactServer(empty)
    try:
        uri = server.uri("bob", lab.secrets["model URI password"])
        rows, copy = str(lab.project.rows_csv), lab.copy("model-uri-commands")
        commands = {
            "predict": ["predict", "-i", rows, "-o", str(lab.work / "scored.csv"), "--model", uri],
            "explain": ["explain", "--input", rows, "--model", uri],
            "monitor": ["monitor", "-c", rows, "--model", uri, "--output-dir", str(lab.work / "m")],
        }
        for label, args in commands.items():
            done = context.run(label, lab.command(*args), copy)
            context.check(f"{label} refused", done.returncode != 0, exit_text(done))
            named = "http://bob:***@127.0.0.1" in done.stdout + done.stderr
            context.check(f"{label} names the model", named, tail(done))
    finally:
        server.close()


CLI_CASES = [
    Attack("monitor-1e308", "5", "monitor: rows of 1e308 and -1e308 in the log", monitor_extreme),
    Attack("monitor-torn-utf8", "5", "monitor: a torn UTF-8 line in the log", monitor_torn),
    Attack("export-into-data", "7", "export-model --output data", lambda c: export_into(c, "data")),
    Attack("export-into-dot", "7", "export-model -o .", lambda c: export_into(c, ".")),
    Attack("stale-data", "8", "CSV source cut from all rows to 100, dvc repro", stale_data),
    Attack("predict-pickle", "6", "predict --model <cloudpickle folder>", predict_pickle),
    Attack("monitor-pickle", "6", "monitor --model <cloudpickle folder>", monitor_pickle),
    Attack("tracking-down", "11", "champion, register: password in URI, no server", tracking_down),
    Attack(
        "model-uri-commands",
        "11",
        "predict, explain, monitor: --model URI with a password",
        model_uri_commands,
    ),
    Attack("validator-cr", "11", "copier: CR in dvc_remote_url", validator_cr),
    Attack(
        "validator-credentials", "11", "copier: tracking URI with a password", validator_credentials
    ),
]


def selected(attacks: Sequence[Attack], patterns: Sequence[str]) -> list[Attack]:
    if not patterns:
        return list(attacks)
    return [a for a in attacks if any(fnmatch.fnmatch(a.name, p) or p in a.name for p in patterns)]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tests.attacks", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--project", type=Path, required=True, help="a generated project, set up")
    parser.add_argument("--template", type=Path, default=TEMPLATE_ROOT, help="for the validators")
    parser.add_argument("--out", type=Path, help="also write the tables to this Markdown file")
    parser.add_argument("--work", type=Path, help="work folder (default: a new temporary one)")
    parser.add_argument("-k", action="append", default=[], help="only attacks matching (repeat)")
    parser.add_argument("--only", choices=["service", "cli"], help="only one of the two tables")
    options = parser.parse_args(argv)
    work = options.work or Path(tempfile.mkdtemp(prefix="attacks-"))
    print(f"work folder: {work}", file=sys.stderr)
    with Lab(options.project, work, options.template) as lab:
        service = (
            []
            if options.only == "cli"
            else list(run_all(lab, selected(SERVICE_ATTACKS, options.k)))
        )
        lab.stop_server()
        cli = (
            [] if options.only == "service" else list(run_all(lab, selected(CLI_CASES, options.k)))
        )
    text = "\n\n".join(
        part
        for part in (
            f"Project: {options.project}\n\n{LEGEND}",
            service_table(service) if service else "",
            cli_table(cli) if cli else "",
        )
        if part
    )
    print(text)
    for result in [*service, *cli]:
        if not result.passed:
            print("\n" + result.report(), file=sys.stderr)
    if options.out:
        options.out.write_text(text + "\n")
    return 0 if all(r.passed for r in [*service, *cli]) else 1


if __name__ == "__main__":
    sys.exit(main())
