"""Pipeline time with the SQLite default against the team's server (PostgreSQL + S3).

One project (DVC remote s3://, group tracking-server installed), the same machine: the whole
pipeline (`dvc repro --force`) logging to `sqlite:///mlflow.db`, then to `mlflow server
--app-name basic-auth` on PostgreSQL 15 with its artifacts in an S3 store (moto's server), the
services started as tests/test_team.py starts them (compose.tracking.yaml's command, on
127.0.0.1). Each figure is the median of --repeat runs; every run registers a version (the
candidate equals the champion, which the gate allows). The load average is printed because the
machine may be shared.

    uv run python benchmarks/team.py [--repeat N]
"""

from __future__ import annotations

import argparse
import secrets
import statistics
import sys
import tempfile
from pathlib import Path

import boto3

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _common import env_for, load_average, render, timed

from tests import test_team


def pipeline_seconds(project: Path, env: dict[str, str], repeat: int) -> list[float]:
    return [timed(["uv", "run", "dvc", "repro", "--force"], project, env) for _ in range(repeat)]


def against_server(project: Path, folder: Path, repeat: int) -> list[float]:
    with test_team.postgres() as pg, test_team.moto_server(folder) as endpoint:
        test_team.create_databases(project, pg)
        s3 = boto3.client(
            "s3", endpoint_url=endpoint, region_name="us-east-1",
            aws_access_key_id="bench", aws_secret_access_key="bench",
        )  # fmt: skip
        s3.create_bucket(Bucket=test_team.ARTIFACT_BUCKET)
        with test_team.mlflow_server(project, folder, pg, endpoint) as (uri, admin):
            password = secrets.token_urlsafe(12)
            test_team.rest(uri, "/api/2.0/mlflow/users/create", admin,
                           {"username": "trainer", "password": password})  # fmt: skip
            env = env_for(True) | {
                "MLFLOW_TRACKING_URI": uri,
                "MLFLOW_TRACKING_USERNAME": "trainer",
                "MLFLOW_TRACKING_PASSWORD": password,
            }
            return pipeline_seconds(project, env, repeat)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=3, help="pipeline runs per store")
    args = parser.parse_args()
    print(f"before: {load_average()}", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        project = render(
            Path(tmp) / "project",
            {"dvc_remote": "s3", "dvc_remote_url": "s3://team-data/my-ml-project"},
        )
        timed(["uv", "sync", "--locked", "--group", "tracking-server"], project, env_for(True))
        timed(["uv", "run", "dvc", "repro"], project, env_for(True))  # warm: bytecode, data
        sqlite = pipeline_seconds(project, env_for(True), args.repeat)
        (Path(tmp) / "services").mkdir()
        server = against_server(project, Path(tmp) / "services", args.repeat)
    print(f"after: {load_average()}")
    print(f"\n`dvc repro --force` (whole pipeline), median of {args.repeat}, seconds\n")
    print("| tracking store | median | min | max |")
    print("|---|---:|---:|---:|")
    stores = {
        "sqlite:///mlflow.db (default)": sqlite,
        "mlflow server: PostgreSQL + S3, basic-auth, proxied artifacts": server,
    }
    for name, runs in stores.items():
        print(f"| {name} | {statistics.median(runs):.1f} | {min(runs):.1f} | {max(runs):.1f} |")
    ratio = statistics.median(server) / statistics.median(sqlite)
    print(f"\nserver / SQLite: x{ratio:.2f}")


if __name__ == "__main__":
    main()
