"""Bad answers are refused by copier with the validator's message, and nothing is generated."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from .helpers import DATA, TEMPLATE_ROOT, project_env

BAD_ANSWERS = {
    "slug with capitals": (
        {"project_slug": "My-Project"},
        "project_slug must start with a letter and use only lowercase letters",
    ),
    "slug with a leading digit": ({"project_slug": "1-project"}, "project_slug must start"),
    "package that is a keyword": ({"package_name": "class"}, "is a Python keyword"),
    "package that is not an identifier": (
        {"package_name": "my-package"},
        "package_name must be a lowercase Python identifier",
    ),
    "package that shadows a dependency": ({"package_name": "mlflow"}, "would shadow a module"),
    "package name too long": ({"package_name": "p" * 33}, "at most 32 characters"),
    "email without a domain": ({"author_email": "someone"}, "author_email must look like"),
    "dataset that is not a csv": (
        {"dataset_path": "data.xlsx"},
        "must point to a .csv or .parquet file",
    ),
    "dataset without a target": (
        {"dataset_path": str(DATA / "customers.csv"), "target_column": ""},
        "target_column is required when dataset_path is set",
    ),
    "s3 remote with a folder url": (
        {"dvc_remote": "s3", "dvc_remote_url": "/tmp/storage"},
        "dvc_remote_url must start with s3://",
    ),
    "gcs remote with an s3 url": (
        {"dvc_remote": "gcs", "dvc_remote_url": "s3://bucket/x"},
        "dvc_remote_url must start with gs://",
    ),
    "local remote with a url": (
        {"dvc_remote": "local", "dvc_remote_url": "s3://bucket/x"},
        "must be a folder path when dvc_remote is local",
    ),
    "tracking uri that is not one": (
        {"mlflow_tracking_uri": "mlflow.db"},
        "mlflow_tracking_uri must be an MLflow tracking URI",
    ),
    "empty project name": ({"project_name": "   "}, "project_name must not be empty"),
    "author name of control characters only": (
        {"author_name": "\x1b\t"},
        "author_name must hold a visible character",
    ),
    "next-line character YAML cannot keep": (
        {"description": "one\x85two"},
        "description must not contain U+0085",
    ),
    # Issue 14: answers that land in a line-wise config file, or in committed files.
    "carriage return that injects DVC config": (
        {"dvc_remote": "s3", "dvc_remote_url": "s3://bucket/x\r[cache]\r    dir = /tmp/evil"},
        "dvc_remote_url must not contain control characters",
    ),
    "line feed in a local remote": (
        {"dvc_remote_url": "../storage\n[cache]"},
        "dvc_remote_url must not contain control characters",
    ),
    "tab in a remote": (
        {"dvc_remote": "gcs", "dvc_remote_url": "gs://bucket/a\tb"},
        "dvc_remote_url must not contain control characters",
    ),
    "DEL and C1 control characters in a remote": (
        {"dvc_remote": "s3", "dvc_remote_url": "s3://bucket/a\x7f\x9bb"},
        "dvc_remote_url must not contain control characters",
    ),
    "comment sign that cuts the remote short": (
        {"dvc_remote": "s3", "dvc_remote_url": "s3://bucket/x#y"},
        "dvc_remote_url must not contain '\"', '#' or ','",
    ),
    "comma that makes the remote a list": (
        {"dvc_remote": "s3", "dvc_remote_url": "s3://bucket/a,b"},
        "dvc_remote_url must not contain '\"', '#' or ','",
    ),
    "remote with a password": (
        {"dvc_remote": "s3", "dvc_remote_url": "s3://AKIAEXAMPLE:s3cr3t@bucket/x"},
        "dvc_remote_url must not hold credentials",
    ),
    "remote with a bare token": (
        {"dvc_remote": "gcs", "dvc_remote_url": "gs://ya29.token@bucket/x"},
        "dvc_remote_url must not hold credentials",
    ),
    "azure remote with a SAS token": (
        {
            "dvc_remote": "azure",
            "dvc_remote_url": "azure://container/x?sv=2022-11-02&ss=b&sp=rl&sig=abc%3D",
        },
        "dvc_remote_url must not carry a secret in its query",
    ),
    "s3 remote with a presigned signature": (
        {"dvc_remote": "s3", "dvc_remote_url": "s3://bucket/x?X-Amz-Signature=abcdef"},
        "dvc_remote_url must not carry a secret in its query",
    ),
    "credential refused before the scheme, so the message never repeats it": (
        {"dvc_remote": "s3", "dvc_remote_url": "gs://key:s3cr3t@bucket/x"},
        "dvc_remote_url must not hold credentials",
    ),
    "tracking uri with a password": (
        {"mlflow_tracking_uri": "https://alice:Pa55w0rd-x@mlflow.example.com"},
        "mlflow_tracking_uri must not hold credentials",
    ),
    "tracking uri with a bare token": (
        {"mlflow_tracking_uri": "https://dapi0123456789@mlflow.example.com"},
        "mlflow_tracking_uri must not hold credentials",
    ),
    "database tracking uri with a password": (
        {"mlflow_tracking_uri": "postgresql://mlflow:Pa55w0rd-x@db.internal/mlflow"},
        "mlflow_tracking_uri must not hold credentials",
    ),
    "tracking uri with a token in its query": (
        {"mlflow_tracking_uri": "https://mlflow.example.com/?token=abc123"},
        "mlflow_tracking_uri must not carry a secret in its query",
    ),
    "tracking uri with a carriage return": (
        {"mlflow_tracking_uri": "http://mlflow:5000\rX: y"},
        "mlflow_tracking_uri must not contain control characters",
    ),
}

# Messages that must not repeat the secret they refuse.
SECRETS = ("s3cr3t", "Pa55w0rd-x", "abc123", "abc%3D", "abcdef", "ya29.token", "dapi0123456789")


def copier_copy(
    dest: Path, answers: dict[str, str], *extra: str
) -> subprocess.CompletedProcess[str]:
    data = [arg for key, value in answers.items() for arg in ("--data", f"{key}={value}")]
    return subprocess.run(
        [
            sys.executable, "-m", "copier", "copy", "--trust", "--defaults", "--quiet",
            "--vcs-ref", "HEAD", *data, *extra, str(TEMPLATE_ROOT), str(dest),
        ],
        capture_output=True,
        text=True,
        env=project_env(),
        check=False,
    )  # fmt: skip


@pytest.mark.parametrize("case", list(BAD_ANSWERS))
def test_bad_answer_is_refused_with_the_validator_message(case: str, tmp_path: Path) -> None:
    answers, message = BAD_ANSWERS[case]
    dest = tmp_path / "project"

    result = copier_copy(dest, answers)

    assert result.returncode != 0, f"copier accepted {answers}"
    last_line = result.stderr.strip().splitlines()[-1]
    # Copier prints its own traceback for an invalid --data value; the last line is ours.
    assert message in last_line, result.stderr[-2000:]
    leaked = [secret for secret in SECRETS if secret in last_line]
    assert not leaked, f"the message repeats {leaked}"
    assert not dest.exists() or not any(dest.iterdir()), "nothing may be generated"


NUL_ANSWERS = {
    "dvc_remote_url": {"dvc_remote": "s3", "dvc_remote_url": "s3://bucket/x\0y"},
    "mlflow_tracking_uri": {"mlflow_tracking_uri": "http://host:5000\0"},
}


@pytest.mark.parametrize("question", list(NUL_ANSWERS))
def test_nul_in_an_answer_is_refused(question: str, tmp_path: Path) -> None:
    """A NUL cannot travel in a command-line argument: it comes in a data file."""
    data = tmp_path / "answers.yml"
    data.write_text(yaml.safe_dump(NUL_ANSWERS[question]))  # "\0" as a YAML escape
    dest = tmp_path / "project"

    result = copier_copy(dest, {}, "--data-file", str(data))

    assert result.returncode != 0, "copier accepted a NUL"
    message = f"{question} must not contain control characters"
    assert message in result.stderr, result.stderr[-2000:]
    assert not dest.exists() or not any(dest.iterdir()), "nothing may be generated"


# A byte that is not UTF-8 on the command line reaches copier as a lone surrogate (Python
# decodes arguments with surrogateescape): no file can be written with it.
NOT_UTF8 = "\udcff"
SURROGATE_ANSWERS = {
    "project_name": {"project_name": f"My {NOT_UTF8} Project"},
    "description": {"description": f"caf{NOT_UTF8}"},
    "author_name": {"author_name": f"Ren{NOT_UTF8}"},
    "author_email": {"author_email": f"r{NOT_UTF8}@example.com"},
    "dataset_path": {"dataset_path": f"data{NOT_UTF8}.csv"},
    "target_column": {"target_column": f"y{NOT_UTF8}"},
    "dvc_remote_url": {"dvc_remote_url": f"../storage{NOT_UTF8}"},
    "mlflow_tracking_uri": {"mlflow_tracking_uri": f"sqlite:///ml{NOT_UTF8}.db"},
}


@pytest.mark.parametrize("question", list(SURROGATE_ANSWERS))
def test_an_answer_that_is_not_utf8_is_refused(question: str, tmp_path: Path) -> None:
    dest = tmp_path / "project"

    result = copier_copy(dest, SURROGATE_ANSWERS[question])

    assert result.returncode != 0, "copier accepted a lone surrogate"
    last_line = result.stderr.strip().splitlines()[-1]
    assert f"{question} must not contain a lone surrogate" in last_line, result.stderr[-2000:]
    assert not dest.exists() or not any(dest.iterdir()), "nothing may be generated"


def test_dataset_problems_stop_generation_with_the_reason(tmp_path: Path) -> None:
    dest = tmp_path / "project"

    result = copier_copy(
        dest, {"dataset_path": str(DATA / "customers.csv"), "target_column": "not_a_column"}
    )

    assert result.returncode != 0
    assert "target_column 'not_a_column' is not a column of the dataset" in result.stderr
    assert not dest.exists(), "copier removes the half-generated project"


def test_interactive_answer_is_refused_inline_and_asked_again(tmp_path: Path) -> None:
    import pexpect

    child = pexpect.spawn(
        sys.executable,
        ["-m", "copier", "copy", "--trust", "--vcs-ref", "HEAD", str(TEMPLATE_ROOT),
         str(tmp_path / "project")],
        env=project_env({"TERM": "xterm", "COLUMNS": "200", "PROMPT_TOOLKIT_NO_CPR": "1"}),
        encoding="utf-8",
        timeout=60,
        dimensions=(40, 400),  # wide enough that the message is not wrapped
    )  # fmt: skip
    try:
        child.expect("Human-readable project name")
        time.sleep(0.5)  # let the prompt take input before typing
        child.send("\r")  # keep the default
        child.expect("Folder and distribution name")
        time.sleep(0.5)
        child.send("\x15Not A Slug\r")  # Ctrl-U clears the suggested default first
        child.expect("project_slug must start with a letter")
        transcript = child.before or ""
    finally:
        child.sendcontrol("c")
        child.close(force=True)

    assert "Traceback" not in transcript
