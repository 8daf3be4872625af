"""Batch scoring on Spark, for data that outgrows one machine: ``predict --engine spark``.

Every executor loads the model through the project's own loader (``io/model_loader.py``: skops
and the project's trusted types) and checks its rows with the same ``feature_frame`` as
``predict``; the project's package travels with the job, so the team's transformers import
there too. Spark is an optional install (``uv sync --extra spark``); the master, memory and
extra jars come from Spark's own configuration (``PYSPARK_SUBMIT_ARGS``, ``spark-defaults.conf``).
"""

from __future__ import annotations

import functools
import os
import shutil
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from .config import PREDICTION, get_settings
from .core.models import nonfinite_rows
from .core.schema import DataSchema, DataValidationError, feature_frame
from .io.data import replaceable
from .io.model_loader import ModelFolder, check_model, read_pipeline

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession
    from pyspark.sql.types import DataType, StructType

CSV = ".csv"
# Spark's CSV options for input and output; FAILFAST refuses a malformed record, as
# ``predict`` does, where Spark's default would score it as nulls.
CSV_OPTIONS = {"header": "true", "mode": "FAILFAST"}
# The file a Spark job writes into its output folder once every part is in place.
SUCCESS_MARKER = "_SUCCESS"


def output_refusal(source: str, output: str, overwrite: bool) -> str | None:
    """Why the job may not write ``output`` (``None`` when it may). Spark's overwrite empties
    the folder first, so it may replace only a local folder a Spark job wrote; an existing
    remote output is left to Spark's own refusal."""
    local = "://" not in output
    if output.rstrip("/") == source.rstrip("/"):
        return f"{output}: the output would replace the input; choose another"
    if overwrite and not (local and replaceable(Path(output), SUCCESS_MARKER)):
        return (
            f"{output}: --overwrite replaces only a local folder Spark wrote "
            f"(with {SUCCESS_MARKER} in it)"
        )
    if not overwrite and local and (Path(output).exists() or Path(output).is_symlink()):
        return f"{output} exists: choose another, or pass --overwrite to replace it"
    return None


def start_session() -> SparkSession:
    """The Spark session of this process, configured by Spark's own settings; Python
    workers run this interpreter unless ``PYSPARK_PYTHON`` names another."""
    from pyspark.sql import SparkSession

    # PySpark starts its Python workers with PYSPARK_PYTHON, else `python3` from PATH, which
    # need not be this environment (a console script runs without an activated venv).
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    builder = SparkSession.builder.appName(f"{__package__} predict")
    if get_settings().model_allow_pickle:
        # Executors read their own environment, not the driver's.
        builder = builder.config("spark.executorEnv.MODEL_ALLOW_PICKLE", "true")
    return builder.getOrCreate()


def ship_package(spark: SparkSession, folder: Path) -> None:
    """This package, zipped into ``folder``, on every executor's import path: the scoring
    function below and the team's transformers in the model import from it. Spark refuses a
    second file of the same name, so the name is the folder's."""
    package = Path(__file__).parent
    archive = shutil.make_archive(str(folder / folder.name), "zip", package.parent, package.name)
    spark.sparkContext.addPyFile(archive)


def ship_model(spark: SparkSession, model: ModelFolder, folder: Path) -> str:
    """Send a copy of the model's folder to every executor; its name there. An unsafe model
    is refused here, before any executor starts."""
    if not get_settings().model_allow_pickle:
        check_model(model)
    copy = shutil.copytree(model.path, folder / f"model-{folder.name}")
    spark.sparkContext.addFile(str(copy), recursive=True)
    return copy.name


def read_input(spark: SparkSession, source: str) -> DataFrame:
    """A CSV file (by its name) or Parquet, typed as ``predict`` reads it: types inferred
    from the values, dates and times kept as text."""
    from pyspark.sql.types import DateType, StringType, StructType, TimestampNTZType, TimestampType

    if not source.lower().endswith(CSV):
        return spark.read.parquet(source)
    inferred = spark.read.options(inferSchema="true", **CSV_OPTIONS).csv(source).schema
    temporal = (DateType, TimestampType, TimestampNTZType)
    for field in inferred.fields:
        if isinstance(field.dataType, temporal):
            field.dataType = StringType()
    return spark.read.schema(StructType(inferred.fields)).options(**CSV_OPTIONS).csv(source)


@functools.cache
def executor_pipeline(name: str, uri: str) -> Any:
    """The model shipped as ``name``, loaded once per Python worker by the project's loader."""
    from pyspark import SparkFiles

    return read_pipeline(ModelFolder(Path(SparkFiles.get(name)), uri, None))


def score_frames(
    frames: Iterator[pd.DataFrame], name: str, uri: str, schema: DataSchema
) -> Iterator[pd.DataFrame]:
    """Each batch with its predictions; an input's own prediction column is replaced. A NaN
    or infinite prediction fails the job, as it stops ``predict`` and is refused by the API."""
    model = executor_pipeline(name, uri)
    for frame in frames:
        values = model.predict(feature_frame(frame, schema))
        if len(bad := nonfinite_rows(values)):
            raise DataValidationError(
                [
                    f"{len(bad)} prediction(s) are NaN or infinite, the first for record "
                    f"{bad[0] + 1} of a batch of {len(frame)} rows"
                ]
            )
        yield frame.assign(**{PREDICTION: values})


def prediction_type(model: ModelFolder) -> DataType:
    """The Spark type of the model's predictions, from the signature MLflow logged with it
    (text when there is none)."""
    import pyarrow as pa
    from mlflow.models import Model
    from pyspark.sql.pandas.types import from_arrow_type
    from pyspark.sql.types import StringType

    signature = Model.load(str(model.path)).signature
    if signature is None or signature.outputs is None:
        return StringType()
    dtype = signature.outputs.numpy_types()[0]
    return StringType() if dtype.kind in "OUS" else from_arrow_type(pa.from_numpy_dtype(dtype))


def output_schema(frame: DataFrame, model: ModelFolder) -> StructType:
    """The input's columns and the predictions, which replace an input column of that name."""
    from pyspark.sql.types import StructField, StructType

    added = StructField(PREDICTION, prediction_type(model))
    fields = [added if field.name == PREDICTION else field for field in frame.schema.fields]
    return StructType(fields if PREDICTION in frame.columns else [*fields, added])


def score(
    spark: SparkSession,
    source: str,
    output: str,
    model: ModelFolder,
    schema: DataSchema,
    overwrite: bool = False,
) -> int:
    """Score ``source`` into the folder ``output`` (CSV by its name, otherwise Parquet; refused
    if it exists, unless ``overwrite``); the number of rows scored."""
    from pyspark.errors import PythonException

    if (refused := output_refusal(source, output, overwrite)) is not None:
        raise FileExistsError(refused)
    with tempfile.TemporaryDirectory(prefix="spark-") as temporary:
        folder = Path(temporary)
        frame = read_input(spark, source)
        feature_frame(pd.DataFrame(columns=frame.columns), schema)  # names the missing columns
        written = output_schema(frame, model)
        # Refusals come before the files are added: a file added but fetched by no job (this
        # folder gone) would fail the session's next job, as a notebook or a test runs it.
        name = ship_model(spark, model, folder)
        ship_package(spark, folder)
        rows = spark.sparkContext.accumulator(0)

        def scored(frames: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
            for batch in score_frames(frames, name, model.uri, schema):
                rows.add(len(batch))
                yield batch

        writer = frame.mapInPandas(scored, written).write.mode(
            "overwrite" if overwrite else "errorifexists"
        )
        try:
            if output.lower().endswith(CSV):
                writer.options(**CSV_OPTIONS).csv(output)
            else:
                writer.parquet(output)
        except PythonException as error:
            if "://" not in output:  # Spark's failed job leaves its empty folder behind
                shutil.rmtree(output, ignore_errors=True)
            raise executor_error(error) from None
        return int(rows.value)


def executor_error(error: Exception) -> Exception:
    """An executor's :class:`DataValidationError` again, with its reasons; other errors as
    they are. Spark passes the executor's error on as text."""
    text = str(error)
    marker = f"{DataValidationError.__name__}: "
    if marker not in text:
        return error
    lines = [line.strip() for line in text.rpartition(marker)[2].splitlines()[1:]]
    return DataValidationError([line[2:] for line in lines if line.startswith("- ")])
