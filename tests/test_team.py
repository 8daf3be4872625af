"""The team's tracking services, for real: PostgreSQL, an S3 server and ``mlflow server`` with
basic-auth on, as ``compose.tracking.yaml`` runs them, and a generated project that logs,
registers, serves and pushes its data through them.

Docker cannot run here, so each compose service runs as a local process on 127.0.0.1:
PostgreSQL 15 from Debian (``initdb``/``pg_ctl`` in a temporary folder, as the ``postgres`` user
when the tests run as root), moto's server mode as the S3 endpoint (the project reaches it the
way it reaches AWS S3 or SeaweedFS: an endpoint URL and credentials from the environment), and
the compose file's own ``mlflow server`` command from the project's venv (group
``tracking-server``). The project is configured by the environment only: no file of it names
the server.
"""

from __future__ import annotations

import base64
import json
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest
import yaml

from .helpers import PACKAGE, render, run
from .server import call, free_port, start_server, stop_process, stop_server

pytestmark = pytest.mark.slow

MODEL = "my-ml-project"
DVC_BUCKET = "team-data"
ARTIFACT_BUCKET = "mlflow"  # compose.tracking.yaml: --artifacts-destination=s3://mlflow/artifacts


def say(message: str) -> None:
    """The transcript (pytest -s shows it): what ran, against what, with which answer."""
    print(f"[team] {message}", flush=True)


def postgres_bin() -> Path:
    """Debian's PostgreSQL binaries (package postgresql-15; .ci/run installs it)."""
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    if initdb is None:
        pytest.fail("PostgreSQL is not installed (apt-get install postgresql): initdb not found")
    return Path(initdb).resolve().parent


# ---------------------------------------------------------------- the services


@dataclass
class Postgres:
    port: int
    password: str


@contextmanager
def postgres() -> Iterator[Postgres]:
    """A PostgreSQL cluster in a temporary folder, on 127.0.0.1, password auth (scram)."""
    binaries = postgres_bin()
    # initdb and postgres refuse root: run them as the `postgres` user in a folder it owns.
    as_user = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    folder = Path(tempfile.mkdtemp(prefix="team-pg-"))
    password = secrets.token_urlsafe(16)
    (folder / "pw").write_text(password)
    if as_user:
        shutil.chown(folder, "postgres")
        shutil.chown(folder / "pw", "postgres")
    port = free_port()
    subprocess.run(
        [*as_user, str(binaries / "initdb"), "-D", str(folder / "data"), "-U", "mlflow",
         f"--pwfile={folder / 'pw'}", "-A", "scram-sha-256", "--no-sync"],
        check=True, capture_output=True,
    )  # fmt: skip
    options = f"-c listen_addresses=127.0.0.1 -p {port} -k {folder} -c fsync=off"
    try:
        subprocess.run(
            [*as_user, str(binaries / "pg_ctl"), "-D", str(folder / "data"), "-o", options,
             "-l", str(folder / "log"), "-w", "start"],
            check=True, capture_output=True, timeout=60,
        )  # fmt: skip
        say(f"PostgreSQL started on 127.0.0.1:{port} (user mlflow, password auth)")
        yield Postgres(port, password)
    finally:
        subprocess.run(
            [*as_user, str(binaries / "pg_ctl"), "-D", str(folder / "data"), "-m", "fast", "stop"],
            check=False, capture_output=True, timeout=60,
        )  # fmt: skip
        shutil.rmtree(folder, ignore_errors=True)


@contextmanager
def moto_server(folder: Path) -> Iterator[str]:
    """moto's S3 server (this repository's dev dependency), the offline stand-in for S3."""
    port = free_port()
    log = folder / "moto.log"
    with log.open("wb") as handle:
        process = subprocess.Popen(
            [str(Path(sys.executable).parent / "moto_server"), "-H", "127.0.0.1", "-p", str(port)],
            stdout=handle, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    endpoint = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                urllib.request.urlopen(endpoint + "/moto-api/", timeout=5).close()
                break
            except OSError:
                assert process.poll() is None and time.monotonic() < deadline, log.read_text()
                time.sleep(0.3)
        say(f"S3 server (moto) started on {endpoint}")
        yield endpoint
    finally:
        stop_process(process)


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def rest(base: str, path: str, auth: str, body: Any = None) -> Any:
    """One MLflow REST call with basic auth; raises HTTPError on an error status."""
    request = urllib.request.Request(
        base + path,
        data=None if body is None else json.dumps(body).encode(),
        method="GET" if body is None else "POST",
        headers={"Authorization": auth, "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read() or b"{}")


@dataclass
class Tracking:
    uri: str
    admin: str  # Authorization header values, never printed
    users: dict[str, str]  # name -> password
    s3: Any  # boto3 client of the S3 endpoint
    s3_endpoint: str
    s3_env: dict[str, str]


def compose_mlflow(project: Path) -> tuple[list[str], dict[str, str]]:
    compose = yaml.safe_load((project / "compose.tracking.yaml").read_text())
    service = compose["services"]["mlflow"]
    return list(service["command"]), dict(service["environment"])


def local_command(command: list[str], port: int, pg_port: int) -> list[str]:
    """The compose command with this machine's addresses: only hosts, ports and workers move."""
    moved = {
        "--host=0.0.0.0": "--host=127.0.0.1",
        "--port=5000": f"--port={port}",
        "--workers=2": "--workers=1",  # 2 cores shared by the whole test run
    }
    local = [moved.get(arg, arg.replace("@postgres:5432/", f"@127.0.0.1:{pg_port}/"))
             for arg in command]  # fmt: skip
    local = [a.replace("--allowed-hosts=", f"--allowed-hosts=127.0.0.1:{port},") for a in local]
    assert local.count(f"--port={port}") == 1 and any(f":{pg_port}/" in a for a in local), local
    return local


@contextmanager
def mlflow_server(
    project: Path, folder: Path, pg: Postgres, s3_endpoint: str
) -> Iterator[tuple[str, str]]:
    """compose.tracking.yaml's mlflow service: its command and environment, secrets generated
    here, hosts moved to 127.0.0.1. Yields its URL and the admin's Authorization header."""
    command, environment = compose_mlflow(project)
    port = free_port()
    auth_ini = (project / "ops" / "mlflow-auth.ini").read_text()
    (folder / "auth.ini").write_text(auth_ini.replace("@postgres:5432/", f"@127.0.0.1:{pg.port}/"))
    env = {
        "PGPASSWORD": pg.password,
        "MLFLOW_AUTH_CONFIG_PATH": str(folder / "auth.ini"),
        "MLFLOW_AUTH_ADMIN_USERNAME": environment["MLFLOW_AUTH_ADMIN_USERNAME"],
        "MLFLOW_AUTH_ADMIN_PASSWORD": secrets.token_urlsafe(16),
        "MLFLOW_FLASK_SERVER_SECRET_KEY": secrets.token_urlsafe(32),
        "MLFLOW_S3_ENDPOINT_URL": s3_endpoint,
        "AWS_ACCESS_KEY_ID": "team-key",
        "AWS_SECRET_ACCESS_KEY": secrets.token_urlsafe(16),
    }
    assert set(env) == set(environment), (
        f"compose.tracking.yaml's mlflow environment changed: {sorted(environment)}"
    )
    executable, *args = local_command(command, port, pg.port)
    server = start_server(
        [str(project / ".venv" / "bin" / executable), *args], folder, folder / "mlflow.log",
        port, env,
    )  # fmt: skip
    try:
        say(f"MLflow server started on {server.base}: {' '.join(args[:3])} "
            f"--backend-store-uri=postgresql+psycopg://mlflow@127.0.0.1:{pg.port}/mlflow "
            "--artifacts-destination=s3://mlflow/artifacts (artifacts proxied)")  # fmt: skip
        yield (
            server.base,
            basic(env["MLFLOW_AUTH_ADMIN_USERNAME"], env["MLFLOW_AUTH_ADMIN_PASSWORD"]),
        )
    finally:
        stop_server(server)


def create_databases(project: Path, pg: Postgres) -> None:
    """What the postgres image does on first start: POSTGRES_DB, then ops/postgres-init.sql."""
    script = (
        "import os, sys, psycopg\n"
        "conn = psycopg.connect(host='127.0.0.1', port=int(sys.argv[1]), user='mlflow',"
        " dbname='postgres', autocommit=True)\n"
        "conn.execute('CREATE DATABASE mlflow')\n"
        "for statement in open(sys.argv[2]).read().split(';'):\n"
        "    lines = [l for l in statement.splitlines() if not l.startswith('--')]\n"
        "    if ''.join(lines).strip(): conn.execute('\\n'.join(lines))\n"
    )
    run([".venv/bin/python", "-c", script, str(pg.port), "ops/postgres-init.sql"], project,
        env={"PGPASSWORD": pg.password})  # fmt: skip


# ---------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A project whose DVC remote is S3, with the tracking server's group installed."""
    path = render(
        tmp_path_factory.mktemp("team") / "project",
        {"dvc_remote": "s3", "dvc_remote_url": f"s3://{DVC_BUCKET}/{MODEL}"},
    )
    run(["uv", "sync", "--locked", "--group", "tracking-server"], path)
    return path


@pytest.fixture(scope="module")
def tracking(project: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Tracking]:
    folder = tmp_path_factory.mktemp("services")
    with postgres() as pg, moto_server(folder) as s3_endpoint:
        create_databases(project, pg)
        s3_env = {
            "AWS_ACCESS_KEY_ID": "team-key",
            "AWS_SECRET_ACCESS_KEY": "team-secret",
            "AWS_DEFAULT_REGION": "us-east-1",
        }
        s3 = boto3.client(
            "s3", endpoint_url=s3_endpoint, region_name="us-east-1",
            aws_access_key_id="team-key", aws_secret_access_key="team-secret",
        )  # fmt: skip
        for bucket in (ARTIFACT_BUCKET, DVC_BUCKET):  # compose: the s3-init service
            s3.create_bucket(Bucket=bucket)
        with mlflow_server(project, folder, pg, s3_endpoint) as (uri, admin):
            users = {"trainer": secrets.token_urlsafe(12), "reader": secrets.token_urlsafe(12)}
            for name, password in users.items():
                rest(uri, "/api/2.0/mlflow/users/create", admin,
                     {"username": name, "password": password})  # fmt: skip
            yield Tracking(uri, admin, users, s3, s3_endpoint, s3_env)


def as_user(tracking: Tracking, user: str) -> dict[str, str]:
    """The project's environment for ``user``: the server's address and credentials only (no
    AWS key: the artifacts go through the server)."""
    return {
        "MLFLOW_TRACKING_URI": tracking.uri,
        "MLFLOW_TRACKING_USERNAME": user,
        "MLFLOW_TRACKING_PASSWORD": tracking.users[user],
    }


def champion_version(tracking: Tracking) -> str | None:
    try:
        answer = rest(tracking.uri,
                      f"/api/2.0/mlflow/registered-models/alias?name={MODEL}&alias=champion",
                      tracking.admin)  # fmt: skip
    except urllib.error.HTTPError as error:
        if error.code == 404:
            return None
        raise
    return str(answer["model_version"]["version"])


def server_runs(tracking: Tracking) -> list[str]:
    experiments = rest(tracking.uri, "/api/2.0/mlflow/experiments/search?max_results=100",
                       tracking.admin)["experiments"]  # fmt: skip
    ids = [experiment["experiment_id"] for experiment in experiments]
    runs = rest(tracking.uri, "/api/2.0/mlflow/runs/search", tracking.admin,
                {"experiment_ids": ids, "max_results": 1000}).get("runs", [])  # fmt: skip
    return sorted(run["info"]["run_id"] for run in runs)


def bucket_keys(tracking: Tracking, bucket: str) -> list[str]:
    pages = tracking.s3.get_paginator("list_objects_v2").paginate(Bucket=bucket)
    return [item["Key"] for page in pages for item in page.get("Contents", [])]


# ---------------------------------------------------------------- the tests


def test_credentials_in_the_project_env_file_reach_the_server(
    project: Path, tracking: Tracking
) -> None:
    """docs/team.md: the URI and the two credentials may live in an uncommitted .env instead of
    the environment; MLflow itself reads only the environment."""
    env_file = project / ".env"
    env_file.write_text(
        "".join(f"{name}={value}\n" for name, value in as_user(tracking, "trainer").items())
    )
    try:
        # from a subfolder, as a notebook would run it; nothing exported
        result = run([str(project / ".venv" / "bin" / PACKAGE), "champion"],
                     project / "notebooks", check=False)  # fmt: skip
    finally:
        env_file.unlink()
    output = result.stdout + result.stderr
    say(f"champion with the credentials in .env: exit {result.returncode}; "
        + (output.strip().splitlines() or ["no output"])[-1])  # fmt: skip

    assert "401" not in output and "not authenticated" not in output, output[-3000:]
    assert "no champion yet" in output or "version" in output, output[-3000:]
    assert tracking.users["trainer"] not in output, "the password reached the output"


@pytest.fixture(scope="module")
def first_run(project: Path, tracking: Tracking) -> dict[str, Any]:
    """The pipeline, logged and registered on the server by a user who is not an admin."""
    assert champion_version(tracking) is None, "a fresh server has no champion"
    started = time.monotonic()
    result = run(["uv", "run", "dvc", "repro"], project, env=as_user(tracking, "trainer"))
    say(f"pipeline against the server: {time.monotonic() - started:.0f} s; "
        + result.stdout.strip().splitlines()[-1])  # fmt: skip
    output = result.stdout + result.stderr
    assert tracking.users["trainer"] not in output, "the tracking password reached the log"
    return json.loads((project / "reports" / "registry.json").read_text())


def test_pipeline_registers_a_champion_on_the_server(
    first_run: dict[str, Any], tracking: Tracking
) -> None:
    version = champion_version(tracking)
    say(f"registry on the server: {MODEL}@champion = version {version}")

    assert first_run["promoted"] and first_run["version"] == "1", first_run
    assert version == "1", f"the server's champion is {version}, the pipeline registered 1"
    keys = bucket_keys(tracking, ARTIFACT_BUCKET)
    assert any(key.endswith("/MLmodel") for key in keys), (
        f"the model was not stored in s3://{ARTIFACT_BUCKET} through the server: {keys[:20]}"
    )


def test_service_loads_the_champion_from_the_server(
    project: Path, first_run: dict[str, Any], tracking: Tracking, tmp_path: Path
) -> None:
    port = free_port()
    # The reader may only read: serving needs no write access, and no bucket key either.
    server = start_server(
        [str(project / ".venv" / "bin" / PACKAGE), "serve", "--port", str(port)],
        project, tmp_path / "serve.log", port, as_user(tracking, "reader"),
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 120
        while (ready := call(server.base, "/ready")).status != 200:
            assert time.monotonic() < deadline, (ready.body, server.output())
            time.sleep(0.5)
    finally:
        stop_server(server)
    say(f"service /ready: {ready.status} {json.dumps(ready.body)}")
    assert tracking.users["reader"] not in server.output(), "the password reached the log"

    assert ready.body["model_version"] == first_run["version"] == "1", ready.body
    # The service resolves the alias once, at start-up, to the version it then serves.
    assert ready.body["model_uri"] == f"models:/{MODEL}/1", ready.body


def test_dvc_pushes_and_pulls_through_the_s3_endpoint(
    project: Path, first_run: dict[str, Any], tracking: Tracking
) -> None:
    # The documented setting (docs/team.md): an S3-compatible store needs its endpoint URL.
    run(["uv", "run", "dvc", "remote", "modify", "storage", "endpointurl", tracking.s3_endpoint],
        project)  # fmt: skip
    push = run(["uv", "run", "dvc", "push"], project, env=tracking.s3_env)
    say("dvc push: " + push.stdout.strip().splitlines()[-1])
    pushed = bucket_keys(tracking, DVC_BUCKET)
    model = project / "models" / "candidate"
    before = sorted(p.relative_to(model).as_posix() for p in model.rglob("*") if p.is_file())
    shutil.rmtree(project / ".dvc" / "cache")
    shutil.rmtree(model)
    (project / "data" / "processed" / "train.parquet").unlink()

    pull = run(["uv", "run", "dvc", "pull"], project, env=tracking.s3_env)
    say("dvc pull: " + pull.stdout.strip().splitlines()[-1])
    after = sorted(p.relative_to(model).as_posix() for p in model.rglob("*") if p.is_file())
    status = run(["uv", "run", "dvc", "status", "--quiet"], project, check=False)

    assert pushed and all(key.startswith(f"{MODEL}/files/md5/") for key in pushed), pushed
    assert after == before and "MLmodel" in after, (before, after)
    assert (project / "data" / "processed" / "train.parquet").is_file()
    assert status.returncode == 0, f"pulled files differ from dvc.lock:\n{status.stdout}"


def test_bucket_listing(first_run: dict[str, Any], tracking: Tracking, project: Path) -> None:
    """The transcript's last part: what the server and DVC stored in the S3 store."""
    for bucket in (ARTIFACT_BUCKET, DVC_BUCKET):
        keys = bucket_keys(tracking, bucket)
        say(f"s3://{bucket}: {len(keys)} objects")
        for key in keys:
            say(f"  s3://{bucket}/{key}")
        assert keys, f"s3://{bucket} is empty"


def test_worse_candidate_is_refused_against_the_servers_champion_in_ci(
    project: Path, first_run: dict[str, Any], tracking: Tracking
) -> None:
    """Must show 2: a second run with a deliberately worse parameter, through ci/pipeline.sh
    as the main branch's CI job runs it (write credentials), refused by the gate."""
    params = project / "params.yaml"
    original = params.read_text()
    # 3 boosting iterations instead of up to 200: every threshold still met, the champion not.
    worse = original.replace("      max_iter: 200\n", "      max_iter: 3\n")
    assert worse != original, "hist_gradient_boosting's max_iter not found in params.yaml"
    params.write_text(worse)
    try:
        result = run(["bash", "ci/pipeline.sh"], project, check=False,
                     env={**as_user(tracking, "trainer"), "CI": "true"})  # fmt: skip
    finally:
        params.write_text(original)
    record = json.loads((project / "reports" / "registry.json").read_text())
    output = result.stdout + result.stderr
    say("ci/pipeline.sh with max_iter 3: exit "
        f"{result.returncode}; " + next(
            (line.strip() for line in output.splitlines() if "quality gate failed" in line),
            "no gate message"))  # fmt: skip
    search = f"/api/2.0/mlflow/model-versions/search?filter=name%3D%27{MODEL}%27"
    versions = rest(tracking.uri, search, tracking.admin)["model_versions"]

    assert result.returncode != 0, "the gate let a worse candidate through"
    assert "worse than champion version 1" in output, output[-3000:]
    # the absolute thresholds still hold (the example's slice gate may also refuse so weak a model)
    absolute = [r for r in record["reasons"] if "does not meet the threshold" in r]
    absolute = [r for r in absolute if not r.startswith("slice ")]
    assert absolute == [], f"refused on an absolute threshold: {record['reasons']}"
    assert not record["promoted"] and record["previous_champion"] == "1", record
    assert champion_version(tracking) == "1", "the champion moved"
    assert [v["version"] for v in versions] == ["1"], "the refused candidate was registered"


def test_pull_request_run_compares_with_the_servers_champion_and_writes_nothing(
    project: Path, first_run: dict[str, Any], tracking: Tracking
) -> None:
    """A pull request's CI run (read-only user): the gate reads the server's champion, the run
    stays on the runner, and neither a version nor an alias is written."""
    before = server_runs(tracking)
    env = {**as_user(tracking, "reader"), "REGISTRY_READ_ONLY": "true", "CI": "true"}
    result = run(["bash", "ci/pipeline.sh"], project, check=False, env=env)
    record = json.loads((project / "reports" / "registry.json").read_text())
    say(
        f"pull request run (read-only user): exit {result.returncode}; registry.json: "
        f"{json.dumps({k: record[k] for k in ('promoted', 'previous_champion', 'read_only')})}"
    )
    search = f"/api/2.0/mlflow/model-versions/search?filter=name%3D%27{MODEL}%27"
    versions = rest(tracking.uri, search, tracking.admin)["model_versions"]
    after = server_runs(tracking)

    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "read-only registry: nothing registered" in result.stdout, result.stdout[-3000:]
    assert record["previous_champion"] == "1" and record["shared_registry"], record
    assert not record["promoted"] and record["version"] is None, record
    assert [v["version"] for v in versions] == ["1"] and champion_version(tracking) == "1"
    assert before and before == after, f"the pull request logged runs on the server: {after}"
