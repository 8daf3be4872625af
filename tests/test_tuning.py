"""The ``tune`` stage of a generated project, on: two worker processes share one Optuna study,
each trial is a nested MLflow run under one parent, ``train`` fits with the best trial's values,
and DVC reruns the stage exactly when its inputs change.

One project of its own (the shared default project keeps tuning off, as users get it), and
``dvc repro train`` only: the stages after ``train`` do not depend on how it was tuned.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from .helpers import render, run

BUDGET = {"enabled": True, "n_trials": 8, "workers": 2, "cv_folds": 3}
# Each worker checks the budget after each of its trials (Optuna's MaxTrialsCallback, running
# trials counted), then starts the next: workers that finish at the same moment may each start
# one more, so a study may hold up to workers - 1 trials over the budget (docs/tuning.md).
ON_BUDGET = range(BUDGET["n_trials"], BUDGET["n_trials"] + BUDGET["workers"])

# Run in the project: what MLflow and the study's journal hold, as JSON.
INSPECT = """
import json
import mlflow
import optuna
from optuna.storages import JournalStorage
from optuna.storages.journal import JournalFileBackend

tuned = json.load(open("models/tuned.json"))
mlflow.set_tracking_uri("sqlite:///mlflow.db")
runs = mlflow.search_runs(experiment_names=["my-ml-project"], output_format="list")
nested = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == tuned["mlflow_parent_run_id"]]
trained = [r for r in runs if r.data.tags.get("tuned_by") == tuned["mlflow_parent_run_id"]]
storage = JournalStorage(JournalFileBackend(".optuna/journal.log"))
study = optuna.load_study(study_name=tuned["study"], storage=storage)
print(json.dumps({
    "tuned": tuned,
    "nested_workers": sorted(r.data.tags["optuna_worker"] for r in nested),
    "trained_params": [r.data.params for r in trained],
    "study_workers": sorted(t.user_attrs["worker"] for t in study.trials),
    "studies": [s.study_name for s in optuna.get_all_study_summaries(storage)],
}))
"""


def set_params(project: Path, section: str, **values: Any) -> None:
    path = project / "params.yaml"
    params = yaml.safe_load(path.read_text())
    params[section].update(values)
    path.write_text(yaml.safe_dump(params, sort_keys=False))


@pytest.fixture(scope="module")
def tuned_project(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A default project with tuning on, two workers, run up to ``train``."""
    project = render(tmp_path_factory.mktemp("tune") / "project")
    run(["uv", "sync", "--locked"], project)
    set_params(project, "tune", **BUDGET)
    run(["uv", "run", "dvc", "repro", "train"], project)
    yield project


@pytest.mark.slow
def test_two_workers_share_one_study_of_nested_runs_and_train_uses_the_best(
    tuned_project: Path,
) -> None:
    # when MLflow and the study are read back
    found = json.loads(run(["uv", "run", "python", "-c", INSPECT], tuned_project).stdout)
    tuned = found["tuned"]

    # then one study holds the whole budget, its trials run by both workers
    assert found["studies"] == [tuned["study"]], found["studies"]
    assert tuned["trials"] in ON_BUDGET, tuned
    assert set(found["study_workers"]) == {0, 1}, f"trials by worker: {found['study_workers']}"
    # and each trial is a nested run under the one parent run, tagged with its worker
    assert len(found["nested_workers"]) == tuned["trials"], found["nested_workers"]
    assert set(found["nested_workers"]) == {"0", "1"}, found["nested_workers"]
    # and the train stage's run used the best values, and names the tuning run
    assert len(found["trained_params"]) == 1, found["trained_params"]
    logged = found["trained_params"][0]
    for name, value in tuned["hyperparameters"].items():
        assert logged[f"model.{name}"] == str(value), (name, logged)


@pytest.mark.slow
def test_dvc_reruns_tune_only_when_its_inputs_change(tuned_project: Path) -> None:
    def stale() -> str:
        return run(["uv", "run", "dvc", "status", "tune", "train"], tuned_project).stdout

    # given the pipeline run up to train: nothing is stale, and a repro runs nothing
    assert "up to date" in stale(), stale()
    again = run(["uv", "run", "dvc", "repro", "train"], tuned_project).stdout
    assert "Stage 'tune' didn't change" in again and "Running stage" not in again, again

    # when a parameter that tuning does not read changes, tune and train stay cached
    set_params(tuned_project, "monitor", reference_rows=100)
    assert "up to date" in stale(), stale()

    # when the budget changes, tune (and so train) is stale
    set_params(tuned_project, "tune", n_trials=BUDGET["n_trials"] + 2)
    status = stale()
    assert status.startswith("tune:") and "modified:" in status, status


# Run in the project: the study's trials in the database, by worker, as JSON.
STUDY_IN_DATABASE = """
import json, os, sys
import optuna
tuned = json.load(open("models/tuned.json"))
study = optuna.load_study(study_name=tuned["study"], storage=os.environ["TUNE_STORAGE"])
print(json.dumps({"tuned": tuned, "workers": sorted(t.user_attrs["worker"] for t in study.trials)}))
"""


@pytest.mark.slow
def test_workers_share_a_study_in_postgresql(tuned_project: Path) -> None:
    from .test_team import postgres

    # given the project's PostgreSQL driver (the tracking-server group) and a fresh database
    run(["uv", "sync", "--locked", "--group", "tracking-server"], tuned_project)
    set_params(tuned_project, "tune", **BUDGET)
    with postgres() as pg:
        url = f"postgresql+psycopg://mlflow:{pg.password}@127.0.0.1:{pg.port}/postgres"
        env = {"TUNE_STORAGE": url}
        # when the tune stage runs its two workers against it (forced: where the study is
        # stored is a setting, not an input of the stage)
        repro = ["uv", "run", "--no-sync", "dvc", "repro", "--single-item", "--force", "tune"]
        done = run(repro, tuned_project, env=env)
        found = json.loads(
            run(["uv", "run", "--no-sync", "python", "-c", STUDY_IN_DATABASE], tuned_project,
                env=env).stdout
        )  # fmt: skip
    # then the database holds the whole budget's trials, run by both workers
    assert found["tuned"]["trials"] in ON_BUDGET, found
    assert len(found["workers"]) == found["tuned"]["trials"], found
    assert set(found["workers"]) == {0, 1}, found
    # and the password shows in no output
    assert pg.password not in done.stdout + done.stderr, "the database password was printed"
