"""compose.yaml of a generated project: no anonymous or stock-password Grafana, and an MLflow
server at the locked client's version that answers the api service at ``mlflow:5000``.

Docker (and its compose plugin) cannot run here, so the fast tier reads the rendered YAML, and
the slow tier runs the MLflow service's exact command from the project's own venv on 127.0.0.1,
sending the Host headers the containers would send.
"""

from __future__ import annotations

import http.client
import re
import socket
import subprocess
import sys
import time
import tomllib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import yaml

from .helpers import project_env, render

COMPOSE_HOSTS = ("mlflow:5000", "localhost:5000", "127.0.0.1:5000")


@pytest.fixture(scope="module")
def compose(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    project = render(
        tmp_path_factory.mktemp("compose") / "project",
        {"serving": True, "monitoring": True},
        skip_tasks=True,
    )
    return yaml.safe_load((project / "compose.yaml").read_text())


def test_grafana_has_no_anonymous_access_and_no_stock_password(compose: dict[str, Any]) -> None:
    environment = compose["services"]["grafana"]["environment"]

    assert environment["GF_AUTH_ANONYMOUS_ENABLED"] == "false"
    assert not any(key.startswith("GF_AUTH_ANONYMOUS_ORG") for key in environment)
    # Compose stops with the message when the variable is unset or empty (`:?`), so Grafana
    # never starts with its stock admin/admin.
    password = environment["GF_SECURITY_ADMIN_PASSWORD"]
    assert re.fullmatch(r"\$\{GRAFANA_ADMIN_PASSWORD:\?[^}]+\}", password), password


def test_mlflow_server_matches_the_locked_minor_version_and_allows_the_compose_hosts(
    compose: dict[str, Any],
) -> None:
    mlflow = compose["services"]["mlflow"]

    assert re.fullmatch(r"ghcr\.io/mlflow/mlflow:v3\.17\.\d+", mlflow["image"]), mlflow["image"]
    (allowed,) = [arg for arg in mlflow["command"] if arg.startswith("--allowed-hosts=")]
    assert allowed.removeprefix("--allowed-hosts=").split(",") == list(COMPOSE_HOSTS)
    assert compose["services"]["api"]["environment"]["MLFLOW_TRACKING_URI"] == "http://mlflow:5000"


@pytest.fixture(scope="module")
def team_project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return render(tmp_path_factory.mktemp("team") / "project", skip_tasks=True)


@pytest.fixture(scope="module")
def team(team_project: Path) -> dict[str, Any]:
    """compose.tracking.yaml of a default project: the team's tracking services."""
    return yaml.safe_load((team_project / "compose.tracking.yaml").read_text())


def test_team_mlflow_image_passes_hadolint(team_project: Path) -> None:
    hadolint = Path(sys.executable).parent / "hadolint"
    result = subprocess.run(
        [str(hadolint), str(team_project / "ops" / "mlflow.Dockerfile")],
        capture_output=True, text=True, check=False,
    )  # fmt: skip

    assert result.returncode == 0, result.stdout + result.stderr


def test_team_services_take_every_secret_from_the_environment(team: dict[str, Any]) -> None:
    """Compose refuses to start without each secret (`:?`): no stock password ever runs, and
    none is written in the file."""
    secrets = {
        "POSTGRES_PASSWORD", "PGPASSWORD", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY",
        "MLFLOW_AUTH_ADMIN_PASSWORD", "MLFLOW_FLASK_SERVER_SECRET_KEY",
    }  # fmt: skip
    seen = set()
    for name, service in team["services"].items():
        for key, value in (service.get("environment") or {}).items():
            if key in secrets:
                seen.add(key)
                assert re.fullmatch(r"\$\{[A-Z_]+:\?[^}]+\}", value), (name, key, value)
        for arg in service.get("command") or []:
            assert not re.search(r"://[^/@\s]*:[^/@\s]*@", arg), f"{name}: a password in {arg}"
    assert seen == secrets, f"secrets not found in the services: {secrets - seen}"


def test_team_mlflow_server_authenticates_and_proxies_artifacts(team: dict[str, Any]) -> None:
    mlflow = team["services"]["mlflow"]
    command = mlflow["command"]

    assert "--app-name=basic-auth" in command, command
    assert any(a.startswith("--backend-store-uri=postgresql+psycopg://") for a in command)
    # --artifacts-destination: clients up- and download through the server (no bucket keys)
    assert any(a.startswith("--artifacts-destination=s3://") for a in command), command
    assert "--no-serve-artifacts" not in command and not any(
        a.startswith("--default-artifact-root") for a in command
    ), command
    assert mlflow["build"]["dockerfile"] == "ops/mlflow.Dockerfile"
    for name in ("postgres", "s3"):
        image = team["services"][name]["image"]
        assert re.search(r":\d+(\.\d+)+(-[a-z]+)?$", image), f"{name} image not pinned: {image}"


# ---------------------------------------------------------------- the server, for real


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def status_for_host(port: int, host: str) -> int:
    """The server's answer to an API call that carries ``Host: host`` (as a container would)."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        connection.request(
            "GET", "/api/2.0/mlflow/experiments/search?max_results=1", headers={"Host": host}
        )
        return connection.getresponse().status
    finally:
        connection.close()


@contextmanager
def mlflow_server(project: Path, command: list[str], tmp_path: Path) -> Iterator[int]:
    """The compose service's command, on 127.0.0.1 and with its paths under ``tmp_path``."""
    port = free_port()
    tmp_path.mkdir()
    local = {
        "--host=0.0.0.0": "--host=127.0.0.1",
        "--port=5000": f"--port={port}",
        "--backend-store-uri=sqlite:////mlflow/mlflow.db": (
            f"--backend-store-uri=sqlite:///{tmp_path / 'mlflow.db'}"
        ),
        "--artifacts-destination=/mlflow/artifacts": (
            f"--artifacts-destination={tmp_path / 'artifacts'}"
        ),
    }
    executable, *args = [local.get(arg, arg) for arg in command]
    log = (tmp_path / "server.log").open("w")
    process = subprocess.Popen(
        [str(project / ".venv" / "bin" / executable), *args],
        cwd=tmp_path,
        env=project_env(),
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                status_for_host(port, "localhost")
                break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise AssertionError((tmp_path / "server.log").read_text()[-3000:]) from None
                time.sleep(0.5)
        yield port
    finally:
        process.terminate()
        process.wait(timeout=30)
        log.close()


@pytest.mark.slow
def test_compose_mlflow_command_serves_the_api_service_host(
    default_project: Path, tmp_path: Path
) -> None:
    """MLflow 3.17 refuses a Host header that is not localhost or a private IP (DNS-rebinding
    protection): without --allowed-hosts the api service's http://mlflow:5000 gets 403."""
    compose = yaml.safe_load((default_project / "compose.yaml").read_text())
    mlflow = compose["services"]["mlflow"]
    lock = tomllib.loads((default_project / "uv.lock").read_text())
    locked = next(p["version"] for p in lock["package"] if p["name"] == "mlflow")
    tag = mlflow["image"].rsplit(":v", 1)[1]
    without = [arg for arg in mlflow["command"] if not arg.startswith("--allowed-hosts")]

    with mlflow_server(default_project, mlflow["command"], tmp_path / "with") as port:
        with_flag = {host: status_for_host(port, host) for host in (*COMPOSE_HOSTS, "evil.test")}
    with mlflow_server(default_project, without, tmp_path / "without") as port:
        without_flag = status_for_host(port, "mlflow:5000")

    assert tag.split(".")[:2] == locked.split(".")[:2], (
        f"compose runs MLflow {tag}, uv.lock pins {locked}: move the image tag to the lock"
    )
    assert with_flag == {**dict.fromkeys(COMPOSE_HOSTS, 200), "evil.test": 403}, with_flag
    assert without_flag == 403, "without the flag, the api service's Host is refused"
