"""Batch scoring on Spark, for data that outgrows one machine: ``predict --engine spark``.

Every executor loads the model through the project's own loader (``io/model_loader.py``: skops
and the project's trusted types) and checks its rows with the same ``feature_frame`` as
``predict``; the project's package travels with the job, so the team's transformers import
there too. Spark is an optional install (``uv sync --inexact --extra spark``); the master,
memory and extra jars come from Spark's own configuration (``PYSPARK_SUBMIT_ARGS``,
``spark-defaults.conf``).
"""

from __future__ import annotations

import atexit
import functools
import hashlib
import os
import shutil
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from .config import get_settings, prediction_column
from .core.models import nonfinite_rows
from .core.schema import DataSchema, DataValidationError, check_columns, feature_frame
from .io.data import replaceable
from .io.model_loader import (
    ModelFolder,
    check_model,
    input_schema,
    prediction_type,
    read_pipeline,
)
from .predict import spelt_as_pandas

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession
    from pyspark.sql.types import StructType

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


def ship_package(spark: SparkSession) -> None:
    """This package on every executor's import path: the scoring function below and the
    team's transformers in the model import from it."""
    package = Path(__file__).parent
    ship(spark, package.parent, package.name, spark.sparkContext.addPyFile)


def ship_model(spark: SparkSession, model: ModelFolder) -> str:
    """The model's folder unpacked on every executor; its name there (for ``SparkFiles``). An
    unsafe model is refused here, before any executor starts."""
    if not get_settings().model_allow_pickle:
        check_model(model)
    return ship(spark, model.path, None, spark.sparkContext.addArchive)


def ship(spark: SparkSession, root: Path, folder: str | None, add: Callable[[str], None]) -> str:
    """``root`` (or its subfolder ``folder``, kept as a folder) zipped under a name of its
    content and given to ``add`` (``addArchive``, ``addPyFile``) once per Spark application;
    the zip's name.

    A zip, not a folder: Spark adds a local folder only with a local master. Kept until this
    process ends: an executor fetches every file added so far when it starts a task, and the
    driver serves each from its path, so a file gone would fail the session's later jobs.
    Named by content: Spark refuses another file of an added name, and the same model scored
    again is not shipped again."""
    source = root / folder if folder else root
    base = ship_folder() / f"{source.name}-{content_digest(source)}"
    archive = base.with_name(f"{base.name}.zip")
    shipped = (spark.sparkContext.applicationId, archive.name)
    if shipped not in SHIPPED:
        if not archive.exists():
            shutil.make_archive(str(base), "zip", root, folder)
        add(str(archive))
        SHIPPED.add(shipped)
    return archive.name


# (Spark application, zip) pairs already added: a file is added to an application once.
SHIPPED: set[tuple[str, str]] = set()


@functools.cache
def ship_folder() -> Path:
    """This process's folder of zips for Spark jobs, removed when the process exits."""
    folder = Path(tempfile.mkdtemp(prefix="spark-ship-"))
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    return folder


def content_digest(folder: Path) -> str:
    """A digest of the files under ``folder`` (their paths and bytes; not ``__pycache__``)."""
    digest = hashlib.sha256()
    for path in sorted(folder.rglob("*")):
        if path.is_file() and "__pycache__" not in path.relative_to(folder).parts:
            digest.update(f"{path.relative_to(folder).as_posix()}\0".encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def read_input(spark: SparkSession, source: str) -> DataFrame:
    """A CSV file (by its name) or Parquet, typed as ``predict`` reads it: types inferred
    from the values, dates and times kept as text; an empty local file as no columns."""
    from pyspark.sql.types import DateType, StringType, StructType, TimestampNTZType, TimestampType

    if Path(source).is_file() and not Path(source).stat().st_size:
        return spark.createDataFrame([], StructType())  # Spark fails to read empty Parquet
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
        yield frame.assign(**{prediction_column(schema.feature_names): values})


def output_schema(frame: DataFrame, model: ModelFolder, schema: DataSchema) -> StructType:
    """The input's columns and the predictions (``config.prediction_column``), which replace
    an input column of that name."""
    from pyspark.sql.pandas.types import from_arrow_type
    from pyspark.sql.types import StructField, StructType

    name = prediction_column(schema.feature_names)
    added = StructField(name, from_arrow_type(prediction_type(model)))
    fields = [added if field.name == name else field for field in frame.schema.fields]
    return StructType(fields if name in frame.columns else [*fields, added])


def booleans_as_text(schema: StructType) -> tuple[StructType, list[str]]:
    """``schema`` with its boolean columns as text, and their names: a CSV output spells them
    as the local engine does (:func:`spell_booleans`)."""
    from pyspark.sql.types import BooleanType, StringType, StructField, StructType

    names = [field.name for field in schema.fields if isinstance(field.dataType, BooleanType)]
    fields = [
        StructField(field.name, StringType(), field.nullable) if field.name in names else field
        for field in schema.fields
    ]
    return StructType(fields), names


def spell_booleans(frame: pd.DataFrame, names: list[str]) -> pd.DataFrame:
    """``frame`` with its boolean columns ``names`` spelt ``True`` and ``False``, as pandas
    writes them and ``predict`` does (``predict.spelt_as_pandas``); Spark's CSV writer has
    ``true``. A missing value stays missing."""
    import pyarrow as pa

    spelt = {
        name: spelt_as_pandas(pa.array(frame[name], from_pandas=True)).to_numpy(
            zero_copy_only=False
        )
        for name in names
    }
    return frame.assign(**spelt)


def score(
    spark: SparkSession,
    source: str,
    output: str,
    model: ModelFolder,
    schema: DataSchema,
    overwrite: bool = False,
) -> int:
    """Score ``source`` into the folder ``output`` (CSV by its name, otherwise Parquet; refused
    if it exists, unless ``overwrite``) on the columns the model was trained on
    (``io.model_loader.input_schema``); the number of rows scored."""
    from pyspark.errors import PythonException

    if (refused := output_refusal(source, output, overwrite)) is not None:
        raise FileExistsError(refused)
    frame = read_input(spark, source)
    schema = input_schema(model, schema)
    check_columns(frame.columns, schema)
    written = output_schema(frame, model, schema)
    booleans: list[str] = []
    csv = output.lower().endswith(CSV)
    if csv:  # a CSV file spells booleans as the local engine does
        written, booleans = booleans_as_text(written)
    name = ship_model(spark, model)
    ship_package(spark)
    rows = spark.sparkContext.accumulator(0)

    def scored(frames: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        for batch in score_frames(frames, name, model.uri, schema):
            rows.add(len(batch))
            yield spell_booleans(batch, booleans) if booleans else batch

    writer = frame.mapInPandas(scored, written).write.mode(
        "overwrite" if overwrite else "errorifexists"
    )
    try:
        if csv:
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
