"""Stage ``tune``: search the estimator's hyperparameters with Optuna; ``train`` uses the best.

Off (``tune.enabled: false``) it writes an empty result at once and imports neither Optuna,
scikit-learn nor pandas. On, one MLflow parent run holds a nested run per trial;
``tune.workers`` processes (and any ``tune-worker`` started elsewhere) share one study through
``TUNE_STORAGE``.
"""

from __future__ import annotations

import subprocess
import sys
from typing import TYPE_CHECKING, Any

from ..config import Params, Settings
from ..engine import exit_now
from ..io.data import file_md5, read_table, write_json
from ._runner import StageError, run_stage

if TYPE_CHECKING:
    import optuna
    import pandas as pd

    from ..core.schema import DataSchema

# The study's attribute naming the MLflow run that every worker's trials nest under.
PARENT_RUN = "mlflow_parent_run_id"
# Trials that use up the budget: a running one counts, so parallel workers stop on time.
BUDGET_STATES = ("COMPLETE", "PRUNED", "RUNNING")


def open_study(params: Params, settings: Settings, worker: int) -> optuna.Study:
    """Create or resume the study of this training data and search space.

    Each worker seeds its sampler with ``seed + worker``: equal seeds would propose the same
    first trials in every worker. On a study that holds trials already, the seed also depends on
    their number: seeded as before, the sampler would propose the trials it ran before again
    (TPE draws its first ten at random), so a resumed study would repeat them.
    """
    import numpy as np
    import optuna

    from ..core import tuning
    from ..core.models import build_estimator
    from ..core.schema import load_schema

    kind = params.train.model
    fixed = params.train.hyperparameters.get(kind, {})
    space = params.tune.search_space.get(kind)
    if not space:
        raise StageError(f"tune.search_space has no entry for train.model {kind!r}")
    try:  # every name a trial sets, checked before the study is stored
        build_estimator(params.task, kind, {**fixed, **tuning.example(space)}, params.seed)
    except ValueError as error:
        raise StageError(
            f"tune.search_space.{kind} over train.hyperparameters.{kind}: {error}"
        ) from None
    metric = params.evaluate.primary_metric
    name = tuning.study_name(
        kind,
        file_md5(params.paths.train),
        space,
        task=params.task,
        seed=params.seed,
        folds=params.tune.cv_folds,
        metric=metric,
        fixed=fixed,
        # The features (data/schema.yaml) and the code that makes and scores them: DVC reruns
        # the stage on either, and the training file alone stays the same.
        schema=load_schema(params.paths.schema_file).model_dump(mode="json"),
        code=tuning.code_digest(),
    )
    study = optuna.create_study(
        storage=study_storage(settings),
        study_name=name,
        direction=tuning.direction(metric),
        pruner=optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=1),
        load_if_exists=True,
    )
    held = len(study.get_trials(deepcopy=False))
    seed = params.seed + worker
    if held:
        seed = int(np.random.SeedSequence([params.seed, worker, held]).generate_state(1)[0])
    study.sampler = optuna.samplers.TPESampler(seed=seed)
    return study


def study_storage(settings: Settings) -> str | optuna.storages.BaseStorage:
    """A database URL as it is, else a journal file (created with its folder)."""
    from pathlib import Path

    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend, JournalFileOpenLock

    if "://" in settings.tune_storage:
        return settings.tune_storage
    path = Path(settings.tune_storage)
    path.parent.mkdir(parents=True, exist_ok=True)
    # The open lock works on every OS; the default symlink lock needs rights Windows rarely gives.
    return JournalStorage(JournalFileBackend(str(path), JournalFileOpenLock(str(path))))


def run_trials(
    study: optuna.Study, params: Params, schema: DataSchema, train: pd.DataFrame, worker: int
) -> None:
    """Run trials until the study holds ``tune.n_trials`` or this worker's time is up."""
    import mlflow
    import optuna

    from ..core.models import build_pipeline
    from ..core.tuning import cross_validated_score, suggest

    kind, metric = params.train.model, params.evaluate.primary_metric
    space = params.tune.search_space[kind]
    fixed = params.train.hyperparameters.get(kind, {})
    parent = study.user_attrs[PARENT_RUN]
    X, y = train[schema.feature_names], train[schema.target.name]

    def objective(trial: optuna.Trial) -> float:
        with mlflow.start_run(run_name=f"trial {trial.number}", nested=True, parent_run_id=parent):
            values = suggest(trial, space)
            mlflow.log_params(values)
            mlflow.set_tags({"optuna_study": study.study_name, "optuna_worker": worker})
            trial.set_user_attr("worker", worker)

            def build() -> Any:
                hyperparameters = {**fixed, **values}
                return build_pipeline(schema, params.task, kind, hyperparameters, params.seed)

            try:
                score = cross_validated_score(
                    trial, build, X, y, params.task, metric, params.tune.cv_folds, params.seed
                )
            except optuna.TrialPruned:
                mlflow.set_tag("optuna_state", "pruned")
                raise
            mlflow.log_metric(f"cv_{metric}", score)
            return score

    states = tuple(optuna.trial.TrialState[state] for state in BUDGET_STATES)
    left = params.tune.n_trials - len(study.get_trials(deepcopy=False, states=states))
    if left > 0:
        study.optimize(
            objective,
            n_trials=left,
            timeout=params.tune.timeout_seconds,
            callbacks=[optuna.study.MaxTrialsCallback(params.tune.n_trials, states=states)],
        )


def join(params: Params, settings: Settings, worker: int) -> None:
    """Add trials to the running study (``tune-worker``); its parent run must exist."""
    from ..core.schema import load_schema
    from ..io import tracking

    if not params.tune.enabled:  # before the study: a refused worker leaves no storage behind
        raise StageError("tune is off (params.yaml tune.enabled): there is no study to join")
    study = open_study(params, settings, worker)
    if PARENT_RUN not in study.user_attrs:
        raise StageError(f"study {study.study_name} has no parent run: start `dvc repro tune`")
    tracking.configure(settings)
    schema, train = load_schema(params.paths.schema_file), read_table(params.paths.train)
    run_trials(study, params, schema, train, worker)


def run_workers(count: int) -> None:
    """``count`` worker processes of this project, numbered from 0, until all have ended."""
    package = __package__.rpartition(".")[0]
    command = [sys.executable, "-m", package, "tune-worker", "--worker"]
    # The project's own interpreter and CLI with a number: no outside input reaches the command.
    workers = [subprocess.Popen([*command, str(index)]) for index in range(count)]  # noqa: S603
    failed = [worker.args for worker in workers if worker.wait() != 0]
    if failed:
        raise StageError(f"{len(failed)} tune worker(s) failed (see their output above)")


def tune(params: Params, settings: Settings) -> dict[str, Any]:
    """Run the study under one MLflow parent run; return the best trial's summary."""
    import mlflow

    from ..io import tracking

    study = open_study(params, settings, worker=0)
    tracking.configure(settings)
    with mlflow.start_run(run_name=f"tune {study.study_name}") as parent:
        mlflow.set_tags({"optuna_study": study.study_name, "git_commit": tracking.git_commit()})
        budget = params.tune.model_dump(exclude={"enabled", "search_space"})
        mlflow.log_params({"model": params.train.model, **budget})
        study.set_user_attr(PARENT_RUN, parent.info.run_id)
        # Several workers all start as processes alike, so each gets its share of the trials.
        if params.tune.workers > 1:
            run_workers(params.tune.workers)
        else:
            join(params, settings, worker=0)
        try:
            best = study.best_trial
        except ValueError:
            raise StageError("no trial completed: raise tune.timeout_seconds or n_trials") from None
        mlflow.log_params({f"best.{name}": value for name, value in best.params.items()})
        mlflow.log_metric(f"best_cv_{params.evaluate.primary_metric}", float(best.value or 0))
    return {
        "enabled": True,
        "model": params.train.model,
        "hyperparameters": best.params,
        "study": study.study_name,
        "metric": params.evaluate.primary_metric,
        "best_value": best.value,
        "best_trial": best.number,
        "trials": len(study.trials),
        "mlflow_parent_run_id": parent.info.run_id,
    }


def main() -> None:
    def body(params: Params, settings: Settings) -> None:
        if not params.tune.enabled:
            result: dict[str, Any] = {"enabled": False, "model": params.train.model}
            result["hyperparameters"] = {}
            print("tune is off (params.yaml tune.enabled): train uses train.hyperparameters")
        else:
            result = tune(params, settings)
            print(
                f"tuned {result['model']}: best {result['metric']} {result['best_value']:.4f} "
                f"(trial {result['best_trial']} of {result['trials']}) {result['hyperparameters']}"
            )
        write_json(result, params.paths.tuned)

    run_stage("tune", body)


if __name__ == "__main__":
    main()
    exit_now()
