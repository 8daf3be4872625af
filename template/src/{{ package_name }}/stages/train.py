"""Stage ``train``: fit the pipeline, log the run and the model to MLflow, export the model."""

from __future__ import annotations

import importlib
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..config import Params, Settings
from ..core.schema import DataSchema, category_text, load_schema
from ..engine import exit_now
from ..io.data import file_md5, output_folder, read_json, read_table, write_json
from ._runner import StageError, run_stage

if TYPE_CHECKING:
    import pandas as pd
    from sklearn.pipeline import Pipeline

INPUT_EXAMPLE_ROWS = 5


def hyperparameters(params: Params, tuned: dict[str, Any] | None = None) -> dict[str, Any]:
    """``train.hyperparameters`` of the model, with the tune stage's best values on top."""
    kind = params.train.model
    chosen = dict(params.train.hyperparameters.get(kind, {}))
    if tuned and tuned.get("model") == kind:
        chosen.update(tuned["hyperparameters"])
    return chosen


def build_model(
    schema: DataSchema, params: Params, tuned: dict[str, Any] | None = None
) -> Pipeline:
    """Preprocessing + estimator as ``params.yaml`` (and the tune stage) set them, unfitted."""
    from ..core.models import build_pipeline

    return build_pipeline(
        schema, params.task, params.train.model, hyperparameters(params, tuned), params.seed
    )


def fit_model(
    train: pd.DataFrame, schema: DataSchema, params: Params, tuned: dict[str, Any] | None = None
) -> Pipeline:
    """Fit preprocessing + estimator on the training table."""
    model = build_model(schema, params, tuned)
    model.fit(train[schema.feature_names], train[schema.target.name])
    return model


def input_example(train: pd.DataFrame, schema: DataSchema) -> pd.DataFrame:
    """The first training rows, category codes a reader typed as numbers as text: the logged
    signature then asks requests and batch files for them as text, as the model learnt them."""
    example = train[schema.feature_names].head(INPUT_EXAMPLE_ROWS)
    codes = [name for name in schema.categorical_features if example[name].dtype.kind in "iuf"]
    return example.assign(**{name: category_text(example[name]) for name in codes})


def prepare_run(settings: Settings, data: Path) -> tuple[str, str]:
    """What the run records besides the model: MLflow imported and pointed at its store (which
    it creates on first use), skops imported for MLflow to save the model with, then
    ``data``'s MD5 and the git commit."""
    from ..io import tracking

    tracking.configure(settings)
    importlib.import_module("skops.io")  # else imported by log_model, after the fit
    return file_md5(data), tracking.git_commit()


def in_background(function: Callable[..., Any], *args: Any) -> Future[Any]:
    """``function(*args)`` on a daemon thread. A stage that fails meanwhile exits at once: the
    process does not wait for the thread, which may be stuck in MLflow's retries against a
    tracking server that is down (an executor's threads are joined at exit)."""
    future: Future[Any] = Future()

    def run() -> None:
        future.set_running_or_notify_cancel()
        try:
            future.set_result(function(*args))
        except BaseException as error:  # handed to whoever asks for the result
            future.set_exception(error)

    threading.Thread(target=run, name=function.__name__, daemon=True).start()
    return future


def run_params(params: Params, tuned: dict[str, Any] | None = None) -> dict[str, Any]:
    """The parameters that define this model, flattened for MLflow."""
    kind = params.train.model
    return {
        "task": params.task,
        "seed": params.seed,
        "model": kind,
        "split.test_size": params.split.test_size,
        **{f"model.{name}": value for name, value in hyperparameters(params, tuned).items()},
    }


def copy_logged_model(model_uri: str, destination: Path) -> None:
    """Copy the logged model's folder to ``destination``, which may only be a previous model
    folder (it holds an ``MLmodel`` file), an empty folder, or absent."""
    import mlflow.artifacts

    from ..io.model_loader import MLMODEL

    try:
        with output_folder(destination, MLMODEL) as partial:
            mlflow.artifacts.download_artifacts(artifact_uri=model_uri, dst_path=str(partial))
    except FileExistsError as error:
        raise StageError(f"{error} (params.yaml paths.model)") from None


def log_model(model: Pipeline, example: pd.DataFrame) -> str:
    """Log ``model`` to the active MLflow run, serialised once; returns its model URI.

    MLflow saves the skops file and loads it back trusting only the model loader's
    ``TRUSTED_TYPES``, so a pipeline holding another type fails here, at training, without a
    second serialisation to list its types first (done only then, to name them).
    """
    import mlflow.sklearn
    from mlflow.exceptions import MlflowException
    from mlflow.models import infer_signature

    from ..io import tracking
    from ..io.model_loader import TRUSTED_TYPES

    try:
        logged = mlflow.sklearn.log_model(
            model,
            name="model",
            # Inferred from the few example rows: over the training table it costs a pass.
            signature=infer_signature(example, model.predict(example)),
            input_example=example,
            pip_requirements=tracking.pip_requirements(),
            serialization_format="skops",  # MLflow would pick cloudpickle for Databricks
            skops_trusted_types=sorted(TRUSTED_TYPES),
        )
    except MlflowException:
        tracking.skops_trusted_types(model)  # raises UnsafeModelError naming the types
        raise
    return str(logged.model_uri)


def main() -> None:
    def body(params: Params, settings: Settings) -> None:
        schema = load_schema(params.paths.schema_file)
        # Absent when train runs alone (`<package> train`) before the tune stage ever ran.
        tuned = read_json(params.paths.tuned) if params.paths.tuned.exists() else None
        with ThreadPoolExecutor(max_workers=1) as pool:
            # Arrow decodes the table outside Python's lock, so this thread imports scikit-learn
            # meanwhile (build_model), before the second thread below starts importing MLflow.
            reading = pool.submit(read_table, params.paths.train)
            model = build_model(schema, params, tuned)
            train = reading.result()
        # The fit runs on this thread (on one core unless OMP_NUM_THREADS is exported) while a
        # second one does what needs no model: importing MLflow, opening its store, hashing the
        # data (docs: "Large data", train).
        prepared = in_background(prepare_run, settings, params.paths.validated)
        model.fit(train[schema.feature_names], train[schema.target.name])
        data_md5, commit = prepared.result()
        example = input_example(train, schema)

        import mlflow

        with mlflow.start_run() as run:
            mlflow.log_params(run_params(params, tuned))
            mlflow.set_tags(
                {
                    "git_commit": commit,
                    "data_md5": data_md5,
                    "data_source": params.data.source,
                    "train_rows": len(train),
                    "tuned_by": (tuned or {}).get("mlflow_parent_run_id", "none"),
                }
            )
            model_uri = log_model(model, example)

        # The local copy feeds the evaluate stage and can be baked into a serving image. It is
        # the logged model's own files (saved once, copied back), so both are the same model.
        copy_logged_model(model_uri, params.paths.model)
        write_json(
            {"run_id": run.info.run_id, "model_uri": model_uri, "data_md5": data_md5},
            params.paths.run,
        )
        print(f"trained {params.train.model} on {len(train)} rows; MLflow run {run.info.run_id}")

    run_stage("train", body)


if __name__ == "__main__":
    main()
    exit_now()
