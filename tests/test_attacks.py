"""The adversarial suite of issue 14 (``attacks.py``) against a default project: one test per
attack, each asserting every criterion of the issue that applies to it.

The slow tests start the generated service on 127.0.0.1 (one worker at a time) and run its
commands in copies of the project; each attack is bounded in time (``ATTACK_TIMEOUT``) and
memory (``KILL_ABOVE_MB``). The fast tests check the suite's own judgement and tools.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
import zlib
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import pytest

from . import attacks
from .attack_lab import Attack, Check, Context, Lab, Result, Sent, service_table
from .attacks import CLI_CASES, SERVICE_ATTACKS, canary_ids, slow_clients
from .hostile import parse_raw, pickle_model


@pytest.fixture(scope="module")
def lab(default_project: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    with Lab(default_project, tmp_path_factory.mktemp("attacks")) as shared:
        yield shared


def assert_held(result: Result) -> None:
    exercised = bool(result.sent or result.commands or result.up == "refused to start")
    assert exercised, f"{result.name}: the attack sent nothing, so it proves nothing"
    assert not result.error, result.report()
    failed = [check.name for check in result.failures()]
    assert not failed, f"failed: {', '.join(failed)}\n{result.report()}"


@pytest.mark.slow
@pytest.mark.parametrize("attack", SERVICE_ATTACKS, ids=lambda attack: attack.name)
def test_the_service_holds(lab: Lab, attack: Attack) -> None:
    # given the service with the settings the attack needs, when the attack runs
    result = lab.run(attack)
    # then no 500, /health < 1 s, memory bounded, small errors, no secret, still up
    assert_held(result)


@pytest.mark.slow
@pytest.mark.parametrize("case", CLI_CASES, ids=lambda case: case.name)
def test_the_commands_hold(lab: Lab, case: Attack) -> None:
    result = lab.run(case)
    assert_held(result)


# ---------------------------------------------------------------------------- the suite itself


def sent(status: int | None, size: int = 10, honest: bool = False, error: str = "") -> Sent:
    return Sent("POST /predict", status, size, honest, error, 0.01)


def verdicts(result: Result) -> dict[str, bool]:
    return {check.name: check.ok for check in result.criteria()}


def test_a_500_fails_and_an_honest_503_passes() -> None:
    server_error = Result("a", "1", "", False, sent=[sent(500)], up="yes")
    overload = Result("b", "1", "", False, sent=[sent(503, honest=True)], up="yes")
    bare_503 = Result("c", "1", "", False, sent=[sent(503)], up="yes")

    assert verdicts(server_error)["no 5xx"] is False, "a 500 must fail"
    assert verdicts(overload)["no 5xx"] is True, "a 503 with Retry-After is allowed"
    assert verdicts(bare_503)["no 5xx"] is False, "a 503 without Retry-After is not honest"


def test_limits_of_the_issue_are_applied() -> None:
    result = Result("a", "1", "", False, sent=[sent(422, size=65 * 1024)], up="yes")
    result.health_s, result.rss = 1.0, (300.0, 401.0, 320.0)

    found = verdicts(result)

    assert found["error body"] is False, "65 KB is over the 64 KB limit"
    assert found["/health"] is False, "1 s is not under 1 s"
    assert found["memory"] is False, "101 MB of growth is over 100 MB"
    result.rss = (300.0, 390.0, 340.0)
    assert verdicts(result)["memory"] is True, "90 MB of growth, 40 MB kept: within limits"


def test_memory_that_does_not_come_back_fails() -> None:
    result = Result("a", "1", "", False, sent=[sent(422)], up="yes", rss=(300.0, 380.0, 351.0))

    assert verdicts(result)["memory"] is False, "51 MB kept after the attack is over 50 MB"


def test_a_timeout_a_leak_and_a_frozen_server_fail_and_nothing_sent_is_not_a_pass() -> None:
    late = Result("a", "1", "", False, sent=[sent(None, error="timeout")], up="frozen")
    leaky = Result("b", "2", "", False, sent=[sent(200)], up="yes", leaks=["x in /ready"])
    empty = Result("c", "1", "", False)

    assert verdicts(late)["answered"] is False and verdicts(late)["up"] is False
    assert verdicts(leaky)["no secret"] is False
    assert verdicts(empty)["exercised"] is False, "an attack that sent nothing cannot pass"
    assert "FAIL" in service_table([late, leaky, empty])


def test_own_checks_decide_too() -> None:
    result = Result("a", "4", "", False, sent=[sent(202)], up="yes")
    result.checks.append(Check("anonymous writes refused", False, "202"))

    assert not result.passed


def test_canary_ids_land_on_each_side_of_the_share() -> None:
    low, high = canary_ids(0.5, 5)

    assert all(zlib.crc32(i.encode()) / 2**32 < 0.5 for i in low)
    assert all(zlib.crc32(i.encode()) / 2**32 >= 0.5 for i in high)
    assert len(set(low + high)) == 10


def test_raw_answers_are_parsed() -> None:
    reply = parse_raw(b"HTTP/1.1 415 Unsupported\r\nRetry-After: 3\r\n\r\n{}", 0.1)

    assert (reply.status, reply.headers["retry-after"], reply.body) == (415, "3", b"{}")
    assert parse_raw(b"garbage", 0.1).status is None


def test_the_hostile_model_runs_code_when_unpickled(tmp_path: Path) -> None:
    # given a model folder like an MLflow one, with the crafted model.pkl
    template = tmp_path / "template"
    template.mkdir()
    (template / "MLmodel").write_text(
        "flavors:\n  python_function: {model_path: model.skops}\n"
        "  sklearn: {pickled_model: model.skops, serialization_format: skops,"
        " skops_trusted_types: [numpy.dtype]}\n"
    )
    (template / "model.skops").write_bytes(b"x")
    marker = tmp_path / "ran"
    folder = pickle_model(template, tmp_path / "hostile", marker)
    assert not marker.exists(), "making the folder must not run the payload"

    # when something unpickles it (as cloudpickle.load would)
    code = "import pickle, sys; pickle.load(open(sys.argv[1], 'rb'))"
    subprocess.run([sys.executable, "-c", code, str(folder / "model.pkl")], check=True)

    # then the marker shows that code ran, and the MLmodel points at the pickle
    assert marker.exists(), "the payload must be able to prove that it ran"
    mlmodel = (folder / "MLmodel").read_text()
    assert "cloudpickle" in mlmodel and "skops_trusted_types" not in mlmodel
    assert not (folder / "model.skops").exists()


class FakeServer:
    """Accepts connections on 127.0.0.1 and closes each after ``close_after`` seconds
    (None: never), reading whatever is sent."""

    def __init__(self, close_after: float | None) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.close_after = close_after
        self.held: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                connection, _ = self.listener.accept()
            except OSError:
                return
            self.held.append(connection)
            if self.close_after is not None:
                threading.Timer(self.close_after, connection.close).start()

    def close(self) -> None:
        self.listener.close()
        for connection in self.held:
            connection.close()


def slow_client_result(server: FakeServer) -> Result:
    result = Result("slow", "10", "", False)
    lab = SimpleNamespace(secrets={}, project=None, key="k")
    context = Context(lab, SimpleNamespace(port=server.port), result)  # type: ignore[arg-type]
    slow_clients(context, b"POST / HTTP/1.1\r\nX-A: ", "partial headers")
    return result


def test_slow_clients_closed_by_the_server_pass() -> None:
    server = FakeServer(close_after=0.3)
    try:
        result = slow_client_result(server)
    finally:
        server.close()

    assert verdicts(result)["closed by the server"] is True, result.report()
    assert verdicts(result)["exercised"] is True, "closed connections count as answered"


def test_slow_clients_held_open_fail(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(attacks, "SLOW_WAIT", 0.5)
    server = FakeServer(close_after=None)
    try:
        result = slow_client_result(server)
    finally:
        server.close()

    assert verdicts(result)["closed by the server"] is False, result.report()
    assert {s.error for s in result.sent} == {"held open"}
