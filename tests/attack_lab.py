"""The machinery of the adversarial suite (``attacks.py``): the project under attack, its
working copies, one server at a time, the measurements around each attack, and the tables.

Each attack is bounded: ``ATTACK_TIMEOUT`` per hostile request, ``KILL_ABOVE_MB`` of worker
growth. The limits it is judged by are the issue's (``HEALTH_LIMIT_S`` and the others).
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from .helpers import TEMPLATE_ROOT, project_env
from .hostile import (
    ArtifactServer,
    HealthProbe,
    MemorySampler,
    Reply,
    exchange,
    rss_mb,
    worker_pid,
)
from .server import Server, free_port, start_server, stop_process

# The limits.
HEALTH_LIMIT_S = 1.0
GROWTH_LIMIT_MB = 100.0  # per hostile request in flight
KEPT_LIMIT_MB = 50.0  # still held once the attack is over (the growth "returns")
ERROR_BODY_LIMIT = 64_000  # bytes
# The suite's own bounds: no attack may hold the machine, whatever the service does.
ATTACK_TIMEOUT = 20.0  # seconds to wait for the answer to one hostile request
KILL_ABOVE_MB = 1500.0  # the suite kills a worker that grows more than this
SETTLE_S = 3.0  # seconds the RSS is given to come back

SCOPES = ("score", "feedback", "metrics", "docs")


def api_keys_env(keys: dict[str, Sequence[str]]) -> dict[str, str]:
    """The service setting that gives it these API keys (key -> scopes): one entry a key,
    ``name:scope,scope:sha256:<digest of the key>``. The old service ignores it."""
    entries = [
        f"attack{n}:{','.join(scopes)}:sha256:{hashlib.sha256(key.encode()).hexdigest()}"
        for n, (key, scopes) in enumerate(keys.items())
    ]
    return {"SERVING_API_KEYS": " ".join(entries)}


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


# ---------------------------------------------------------------------------- the project

ROWS_SCRIPT = """
import json, sys
import pandas as pd, yaml
params = yaml.safe_load(open("params.yaml"))
schema = yaml.safe_load(open(params["paths"]["schema"]))
columns = [c for c in schema["columns"] if c.get("role", "feature") == "feature"]
features = [c["name"] for c in columns]
test = pd.read_parquet(params["paths"]["test"])[features].head(int(sys.argv[2]))
test.to_csv(sys.argv[1], index=False)
rows = test.astype(object).where(test.notna(), None).to_dict("records")
numeric = [c["name"] for c in columns if c.get("type", "numeric") == "numeric"]
print(json.dumps({"features": features, "numeric": numeric, "rows": rows}))
"""


@dataclass
class Project:
    """A generated project, set up and with its pipeline run: read, never written."""

    root: Path
    package: str
    features: list[str]
    numeric: list[str]
    rows: list[dict[str, Any]]  # the test split's first rows, features only
    rows_csv: Path

    @property
    def python(self) -> Path:
        return self.root / ".venv" / "bin" / "python"

    @property
    def params(self) -> dict[str, Any]:
        return yaml.safe_load((self.root / "params.yaml").read_text())

    @property
    def model_folder(self) -> Path:
        return self.root / self.params["paths"]["model"]


def package_of(root: Path) -> str:
    answers = root / ".copier-answers.yml"
    if answers.is_file():
        name = yaml.safe_load(answers.read_text()).get("package_name")
        if name:
            return str(name)
    found = sorted(p.parent.name for p in (root / "src").glob("*/__init__.py"))
    if not found:
        raise ValueError(f"{root}: no package under src/")
    return found[0]


def read_project(root: Path, work: Path) -> Project:
    if not (root / ".venv" / "bin" / "python").is_file():
        raise ValueError(f"{root}: no .venv (run `make setup && make pipeline` there first)")
    rows_csv = work / "rows.csv"
    result = subprocess.run(
        [str(root / ".venv" / "bin" / "python"), "-c", ROWS_SCRIPT, str(rows_csv), "60"],
        cwd=root,
        env=project_env(),
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    found = json.loads(result.stdout)
    return Project(
        root, package_of(root), found["features"], found["numeric"], found["rows"], rows_csv
    )


def copy_project(root: Path, dest: Path) -> Path:
    """The project without its virtual environment (commands run the original's python)."""
    shutil.copytree(root, dest, symlinks=True, ignore=shutil.ignore_patterns(".venv"))
    return dest


# ---------------------------------------------------------------------------- results


@dataclass
class Check:
    name: str
    ok: bool
    detail: str = ""


@dataclass
class Sent:
    """What the report keeps of one answer (the body only as its size)."""

    label: str
    status: int | None
    size: int
    honest_503: bool
    error: str
    seconds: float


@dataclass
class Result:
    """The measurements of one attack (or one command case) and its verdict."""

    name: str
    item: str
    what: str
    guard: bool
    sent: list[Sent] = field(default_factory=list)
    checks: list[Check] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    leaks: list[str] = field(default_factory=list)
    health_s: float | None = None
    rss: tuple[float, float, float] | None = None  # before, peak, after (MB)
    allowance_mb: float = GROWTH_LIMIT_MB
    up: str = ""  # "yes", "frozen", "exited", "refused to start" ("" = no server)
    may_refuse_start: bool = False
    commands: list[tuple[str, int | None]] = field(default_factory=list)
    error: str = ""

    def criteria(self) -> list[Check]:
        """Every criterion of the issue that applies, then the attack's own checks."""
        found: list[Check] = []
        if self.error:
            found.append(Check("suite ran the attack", False, self.error))
        exercised = bool(self.sent or self.commands or self.up == "refused to start")
        found.append(Check("exercised", exercised, "nothing sent" if not exercised else ""))
        if self.sent:
            late = [s.label for s in self.sent if s.error == "timeout"]
            late_text = f"no answer in {ATTACK_TIMEOUT:.0f} s" if late else ""
            found.append(Check("answered", not late, late_text))
            bad = [s for s in self.sent if s.status and s.status >= 500 and not s.honest_503]
            found.append(Check("no 5xx", not bad, ", ".join(f"{s.label}: {s.status}" for s in bad)))
            errors = [s.size for s in self.sent if s.status and s.status >= 400]
            largest = max(errors, default=0)
            found.append(Check("error body", largest <= ERROR_BODY_LIMIT, size_text(largest)))
        if self.health_s is not None:
            found.append(Check("/health", self.health_s < HEALTH_LIMIT_S, f"{self.health_s:.2f} s"))
        if self.rss is not None:
            before, peak, after = self.rss
            grown, kept = peak - before, after - before
            ok = grown <= self.allowance_mb and kept <= KEPT_LIMIT_MB
            found.append(Check("memory", ok, f"{before:.0f}/{peak:.0f}/{after:.0f} MB"))
        if self.up or self.sent:
            refused = self.up == "refused to start" and self.may_refuse_start
            found.append(Check("up", self.up == "yes" or refused, self.up))
        found.append(Check("no secret", not self.leaks, "; ".join(self.leaks)))
        return found + self.checks

    def failures(self) -> list[Check]:
        return [check for check in self.criteria() if not check.ok]

    @property
    def passed(self) -> bool:
        return not self.failures()

    def statuses(self) -> str:
        counts = Counter(str(s.status) if s.status else s.error.split(" ")[0] for s in self.sent)
        return ", ".join(f"{k}x{n}" if n > 1 else k for k, n in counts.items()) or "-"

    def report(self) -> str:
        """Everything measured, for an assertion message."""
        lines = [f"{self.name} (issue item {self.item}): {self.what}"]
        lines += [f"  {'ok  ' if c.ok else 'FAIL'} {c.name}: {c.detail}" for c in self.criteria()]
        lines += [f"  answers: {self.statuses()}"]
        lines += [f"  command: {label} -> exit {code}" for label, code in self.commands]
        lines += [f"  note: {note}" for note in self.notes]
        return "\n".join(lines)


def size_text(n: int) -> str:
    """Sizes as the issue gives them: decimal kB and MB."""
    return f"{n / 1e3:.1f} kB" if n < 1e6 else f"{n / 1e6:.1f} MB"


# ---------------------------------------------------------------------------- servers


@dataclass(frozen=True)
class ServerSpec:
    """One configuration of the service: ``settings(lab)`` gives its environment variables
    beyond the base ones (and may prepare folders); ``copy`` names its working copy."""

    name: str
    settings: Callable[[Lab], dict[str, str]]
    copy: str = "main"


@dataclass
class Running:
    spec: ServerSpec
    port: int
    server: Server | None
    pid: int = 0
    fresh: bool = True  # no attack ran yet: its log from the start belongs to the next one
    tainted: bool = False  # frozen, killed or bloated: restarted before the next attack
    refused: str = ""  # the output of a service that would not start


class Lab:
    """What the attacks share: the project, its working copies, secrets, and one server at a
    time (restarted with other settings, or after an attack froze or bloated it)."""

    def __init__(self, project_root: Path, work: Path, template: Path = TEMPLATE_ROOT) -> None:
        self.work = work
        self.template = template
        work.mkdir(parents=True, exist_ok=True)
        self.project = read_project(project_root.resolve(), work)
        self.secrets = {
            "tracking password": "pw-" + secrets.token_hex(12),
            "model URI password": "pw-" + secrets.token_hex(12),
            "API key": "key-" + secrets.token_hex(16),
        }
        self.key = self.secrets["API key"]
        self.logs = work / "logs"
        self.logs.mkdir(exist_ok=True)
        self._copies: dict[str, Path] = {}
        self._running: Running | None = None
        self._artifacts: ArtifactServer | None = None
        self._cache: dict[str, Any] = {}

    def __enter__(self) -> Lab:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.stop_server()
        if self._artifacts is not None:
            self._artifacts.close()

    # -- working copies and environments

    def copy(self, name: str) -> Path:
        if name not in self._copies:
            self._copies[name] = copy_project(self.project.root, self.work / "copies" / name)
        return self._copies[name]

    def env(self, copy: Path, extra: dict[str, str] | None = None) -> dict[str, str]:
        """Variables for the project's commands in ``copy``: its own code, bounded MLflow
        retries, logs in the work folder, and ``extra``."""
        venv_bin = self.project.python.parent
        base = {
            "PYTHONPATH": str(copy / "src"),
            "PATH": f"{venv_bin}{os.pathsep}{os.environ.get('PATH', '')}",
            "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0",
            "MLFLOW_HTTP_REQUEST_TIMEOUT": "5",
            "MONITORING_LOG_PATH": str(self.logs / "predictions.jsonl"),
            "MONITORING_FEEDBACK_PATH": str(self.logs / "feedback.jsonl"),
            "MONITORING_REPORT_DIR": str(self.work / "reports"),
            "SERVING_WORKERS": "1",
        }
        return {**base, **(extra or {})}

    def command(self, *args: str) -> list[str]:
        return [str(self.project.python), "-m", self.project.package, *args]

    def cached(self, name: str, make: Callable[[], Any]) -> Any:
        if name not in self._cache:
            self._cache[name] = make()
        return self._cache[name]

    def artifacts(self) -> ArtifactServer:
        if self._artifacts is None:
            self._artifacts = ArtifactServer(self.project.model_folder)
        return self._artifacts

    # -- the server

    def server(self, spec: ServerSpec) -> Running:
        running = self._running
        if running is not None and running.spec.name == spec.name and not running.tainted:
            return running
        self.stop_server()
        copy = self.copy(spec.copy)
        port = free_port()
        env = self.env(copy, {**api_keys_env({self.key: SCOPES}), **spec.settings(self)})
        log = self.work / f"serve-{spec.name}-{port}.log"
        command = self.command("serve", "--host", "127.0.0.1", "--port", str(port))
        try:
            server = start_server(command, copy, log, port, env)
        except AssertionError as error:  # the service refused to start: say what it said
            self._running = Running(spec, port, None, refused=str(error)[-1500:], tainted=True)
            return self._running
        self._running = Running(spec, port, server, pid=worker_pid(server.process.pid, port))
        self._warm_up(port)
        return self._running

    def _warm_up(self, port: int) -> None:
        """One valid request per route first, so that what the service builds on first use
        is not counted as an attack's memory."""
        rows = self.project.rows[:2]
        csv = ",".join(self.project.features) + "\n"
        csv += "".join(
            ",".join("" if r[f] is None else str(r[f]) for f in self.project.features) + "\n"
            for r in rows
        )
        auth = bearer(self.key)
        as_json = {"Content-Type": "application/json", **auth}
        for path, body, headers in (
            ("/predict", json.dumps({"instances": rows}).encode(), as_json),
            ("/invocations", json.dumps({"dataframe_records": rows}).encode(), as_json),
            ("/invocations", csv.encode(), {"Content-Type": "text/csv", **auth}),
            ("/feedback", b'{"labels": [{"request_id": "warm-up", "label": 1}]}', as_json),
        ):
            exchange(port, "POST", path, body, headers)
        for path in ("/ready", "/metrics"):
            exchange(port, "GET", path, headers=auth)

    def stop_server(self, kill: bool = False) -> None:
        running, self._running = self._running, None
        if running is None or running.server is None:
            return
        process = running.server.process
        if kill and process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
        stop_process(process, timeout=15)

    # -- running attacks

    def run(self, attack: Attack) -> Result:
        result = Result(attack.name, attack.item, attack.what, attack.guard)
        result.may_refuse_start = attack.may_refuse_start
        result.allowance_mb = GROWTH_LIMIT_MB * attack.in_flight
        try:
            if attack.server is not None:
                self._run_against_server(attack, result)
            else:
                attack.action(Context(self, None, result))
        except Exception as error:  # a broken attack is a failed row, not a crashed table
            result.error = f"{type(error).__name__}: {error}"
        return result

    def _run_against_server(self, attack: Attack, result: Result) -> None:
        assert attack.server is not None
        running = self.server(attack.server)
        if running.server is None:
            result.up = "refused to start"
            said = running.refused.strip().splitlines() or [""]
            errors = [line for line in said if "Error" in line and "http" not in line] or said
            result.notes.append("start-up: " + errors[-1].strip()[:300])
            context = Context(self, running, result)
            context.scan("start-up output", running.refused)
            attack.action(context)
            return
        log_start = 0 if running.fresh else running.server.log.stat().st_size
        running.fresh = False
        context = Context(self, running, result)
        before = rss_mb(running.pid) or 0.0
        sampler = MemorySampler(
            running.pid, before, KILL_ABOVE_MB, lambda: self._kill(running, result)
        )
        probe = HealthProbe(running.port)
        probe.start()
        probe.wait_first()
        sampler.start()
        try:
            attack.action(context)
        finally:
            result.health_s = probe.stop()
            peak = sampler.stop()
            self._after(running, result, (before, peak), sampler.killed, log_start, context)

    def _kill(self, running: Running, result: Result) -> None:
        result.notes.append(f"the suite killed the worker past +{KILL_ABOVE_MB:.0f} MB")
        running.tainted = True
        assert running.server is not None
        os.killpg(running.server.process.pid, signal.SIGKILL)

    def _after(
        self,
        running: Running,
        result: Result,
        memory: tuple[float, float],
        sampler_killed: bool,
        log_start: int,
        context: Context,
    ) -> None:
        assert running.server is not None
        before, peak = memory
        frozen = sampler_killed or any(s.error == "timeout" for s in result.sent)
        after = peak if frozen else settle(running.pid, before)
        result.rss = (before, peak, after if after is not None else peak)
        result.up = "killed by the suite" if sampler_killed else self._state(running, frozen)
        if result.up == "yes":
            metrics = exchange(running.port, "GET", "/metrics", headers=bearer(self.key))
            context.scan("/metrics", metrics.body)
            time.sleep(0.3)  # the access log is written in batches by the event loop
        with running.server.log.open("rb") as handle:
            handle.seek(log_start)
            context.scan("server log", handle.read())
        if result.up != "yes" or (after or 0) - before > 3 * KEPT_LIMIT_MB:
            running.tainted = True
            self.stop_server(kill=True)

    @staticmethod
    def _state(running: Running, frozen: bool) -> str:
        assert running.server is not None
        if running.server.process.poll() is not None:
            return "exited"
        if frozen:
            return "frozen"
        health = exchange(running.port, "GET", "/health", timeout=10)
        return "yes" if health.status == 200 else "frozen"


def settle(pid: int, before: float) -> float | None:
    """The worker's RSS once it has had ``SETTLE_S`` seconds to give memory back."""
    deadline = time.monotonic() + SETTLE_S
    lowest = rss_mb(pid)
    while lowest is not None and lowest - before > KEPT_LIMIT_MB and time.monotonic() < deadline:
        time.sleep(0.2)
        now = rss_mb(pid)
        lowest = min(lowest, now) if now is not None else lowest
    return lowest


class Context:
    """What an attack's action uses: requests that are recorded and scanned for secrets,
    commands whose exit codes are recorded, and checks."""

    def __init__(self, lab: Lab, running: Running | None, result: Result) -> None:
        self.lab = lab
        self.running = running
        self.result = result
        self.project = lab.project

    @property
    def port(self) -> int:
        assert self.running is not None
        return self.running.port

    def send(
        self,
        method: str,
        path: str,
        body: bytes | dict[str, Any] | None = None,
        *,
        content_type: str | None = "application/json",
        key: str | None = "",
        headers: dict[str, str] | None = None,
        timeout: float = ATTACK_TIMEOUT,
    ) -> Reply:
        """One request; ``key=""`` sends the suite's API key, ``None`` none."""
        data = json.dumps(body).encode() if isinstance(body, dict) else body
        sent = dict(headers or {})
        if data is not None and content_type is not None:
            sent["Content-Type"] = content_type
        if key is not None:
            sent.update(bearer(key or self.lab.key))
        reply = exchange(self.port, method, path, data, sent, timeout)
        return self.record(f"{method} {path}", reply)

    def record(self, label: str, reply: Reply) -> Reply:
        self.result.sent.append(
            Sent(label, reply.status, len(reply.body), reply.honest_503, reply.error, reply.seconds)
        )
        self.scan(f"{label} answer", reply.body)
        self.scan(f"{label} headers", "\n".join(f"{k}: {v}" for k, v in reply.headers.items()))
        return reply

    def scan(self, where: str, text: bytes | str) -> None:
        """Record where a secret appears (by name: the value stays out of the report)."""
        data = text if isinstance(text, bytes) else text.encode(errors="replace")
        for name, value in self.lab.secrets.items():
            leak = f"{name} in {where}"
            if value.encode() in data and leak not in self.result.leaks:
                self.result.leaks.append(leak)

    def run(
        self, label: str, args: list[str], cwd: Path, **extra: str
    ) -> subprocess.CompletedProcess[str]:
        completed = subprocess.run(
            args,
            cwd=cwd,
            env=project_env(self.lab.env(cwd, extra)),
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
        self.result.commands.append((label, completed.returncode))
        self.scan(f"{label} output", completed.stdout + completed.stderr)
        return completed

    def check(self, name: str, ok: bool, detail: str = "") -> bool:
        self.result.checks.append(Check(name, ok, detail))
        return ok

    def note(self, text: str) -> None:
        self.result.notes.append(text)

    def row(self, i: int = 0) -> dict[str, Any]:
        return dict(self.project.rows[i % len(self.project.rows)])


@dataclass(frozen=True)
class Attack:
    """One attack of the issue: ``action`` sends it and adds its own checks. ``server`` names
    the service configuration (empty: a command, no server). ``guard``: it held on the last
    release, kept as a regression guard."""

    name: str
    item: str
    what: str
    action: Callable[[Context], None]
    server: ServerSpec | None = None
    guard: bool = False
    in_flight: int = 1
    may_refuse_start: bool = False


def status_of(reply: Reply) -> str:
    return str(reply.status) if reply.status else reply.error


def client_error(reply: Reply) -> bool:
    return reply.status is not None and 400 <= reply.status < 500


# ---------------------------------------------------------------------------- tables


def mark(ok: bool) -> str:
    return "✓" if ok else "✗"


def cell(result: Result, name: str) -> str:
    found = [c for c in result.criteria() if c.name == name]
    return f"{found[0].detail or ''} {mark(found[0].ok)}".strip() if found else "-"


GENERIC = {"exercised", "answered", "no 5xx", "error body", "/health", "memory", "up", "no secret"}


def own_checks(result: Result) -> str:
    checks = [c for c in result.criteria() if c.name not in GENERIC]
    texts = [f"{mark(c.ok)} {c.name}" + (f" ({c.detail[:90]})" if c.detail else "") for c in checks]
    return "; ".join(texts + [f"note: {note}" for note in result.notes])


def _escape(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def service_table(results: Sequence[Result]) -> str:
    lines = [
        "| attack | item | answers | no 5xx | /health max | RSS MB before/peak/after "
        "| largest error body | secrets | up | own checks | verdict |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        name = r.name + (" (guard)" if r.guard else "")
        row = [
            name,
            r.item,
            r.statuses(),
            mark(not any(c.name == "no 5xx" and not c.ok for c in r.criteria())),
            cell(r, "/health"),
            cell(r, "memory"),
            cell(r, "error body"),
            "none ✓" if not r.leaks else "; ".join(r.leaks) + " ✗",
            cell(r, "up"),
            own_checks(r),
            "pass" if r.passed else "**FAIL**",
        ]
        lines.append("| " + " | ".join(_escape(str(x)) for x in row) + " |")
    return "\n".join(lines)


def cli_table(results: Sequence[Result]) -> str:
    lines = [
        "| case | item | what | commands (exit) | checks | verdict |",
        "|---|---|---|---|---|---|",
    ]
    for r in results:
        commands = ", ".join(f"{label}: {code}" for label, code in r.commands) or "-"
        row = [r.name, r.item, r.what, commands, own_checks(r), "pass" if r.passed else "**FAIL**"]
        lines.append("| " + " | ".join(_escape(str(x)) for x in row) + " |")
    return "\n".join(lines)


LEGEND = (
    f"Criteria: no 5xx (a 503 with Retry-After is allowed); /health < {HEALTH_LIMIT_S:.0f} s "
    f"while the attack is handled; RSS growth ≤ {GROWTH_LIMIT_MB:.0f} MB per hostile request in "
    f"flight and ≤ {KEPT_LIMIT_MB:.0f} MB kept {SETTLE_S:.0f} s later; error bodies ≤ 64 kB; "
    "no secret in any answer, header, /metrics or server log line; the process still answers. "
    f"Each hostile request is given {ATTACK_TIMEOUT:.0f} s; a worker past "
    f"+{KILL_ABOVE_MB:.0f} MB is killed by the suite."
)


def run_all(lab: Lab, attacks: Sequence[Attack]) -> Iterator[Result]:
    for attack in attacks:
        started = time.monotonic()
        result = lab.run(attack)
        verdict = "pass" if result.passed else "FAIL"
        print(f"{attack.name}: {verdict} in {time.monotonic() - started:.0f} s", file=sys.stderr)
        yield result
