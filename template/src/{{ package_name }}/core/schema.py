"""The data contract (``data/schema.yaml``) and its enforcement with pandera."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import pandas as pd
import yaml
from pydantic import BaseModel, ConfigDict

from ..config import Task

if TYPE_CHECKING:
    # pandera is imported where data is validated: stages that only read the contract skip it.
    import pandera.pandas as pa

MAX_EXAMPLES = 3
# A class needs two training rows after the test split, for the early-stopping split inside
# HistGradientBoosting (params.yaml); three rows guarantee that at the default test size.
MIN_ROWS_PER_CLASS = 3


class DataValidationError(ValueError):
    """The data breaks the contract; ``problems`` lists one ``column: reason`` per entry."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("data validation failed:\n" + "\n".join(f"  - {p}" for p in problems))


ColumnType = Literal["numeric", "categorical", "datetime", "text"]


class ColumnSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    type: ColumnType
    role: Literal["feature", "ignore"] = "feature"
    nullable: bool = True


class TargetSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    type: Literal["numeric", "categorical"]


class DataSchema(BaseModel):
    """Columns the model may use, and the column it predicts."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    target: TargetSpec
    columns: list[ColumnSpec]

    @property
    def features(self) -> list[ColumnSpec]:
        return [column for column in self.columns if column.role == "feature"]

    @property
    def numeric_features(self) -> list[str]:
        return [column.name for column in self.features if column.type == "numeric"]

    @property
    def categorical_features(self) -> list[str]:
        return [column.name for column in self.features if column.type == "categorical"]

    @property
    def datetime_features(self) -> list[str]:
        return [column.name for column in self.features if column.type == "datetime"]

    @property
    def text_features(self) -> list[str]:
        return [column.name for column in self.features if column.type == "text"]

    @property
    def feature_names(self) -> list[str]:
        return [column.name for column in self.features]

    def for_inputs(self, inputs: Mapping[str, ColumnType]) -> DataSchema:
        """The contract of a model trained on ``inputs`` (each with the type its signature
        gives, text as ``categorical``), in their order; this schema's features it was not
        trained on are left out. A column listed here as a feature keeps its spec; one set to
        ``ignore`` since keeps its written type where the signature agrees (text may be
        categorical, text or dates); any other takes the signature's type."""
        written = {column.name: column for column in self.columns}
        columns = []
        for name, given in inputs.items():
            spec = written.get(name)
            if spec is None or (spec.role != "feature" and not _agrees(spec.type, given)):
                spec = ColumnSpec(name=name, type=given)
            columns.append(spec.model_copy(update={"role": "feature"}))
        return self.model_copy(update={"columns": columns})


def _agrees(written: ColumnType, given: ColumnType) -> bool:
    """Whether a column written as ``written`` can hold what a signature types ``given``."""
    return written == given or (given == "categorical" and written in ("text", "datetime"))


def load_schema(path: Path) -> DataSchema:
    """Read the data contract from YAML."""
    return DataSchema.model_validate(yaml.safe_load(path.read_text(encoding="utf-8")))


def parse_dates(values: pd.Series) -> pd.Series:
    """ISO 8601 dates and times (or datetimes already) as UTC timestamps; others missing."""
    return pd.to_datetime(values, errors="coerce", utc=True, format="ISO8601")


def _dates(series: pd.Series) -> pd.Series:
    return pd.Series(parse_dates(series).notna() | series.isna(), index=series.index)


def _finite(series: pd.Series) -> pd.Series:
    return pd.Series(~np.isinf(series.astype("float64")), index=series.index)


def _column_check(spec: ColumnSpec) -> pa.Column:
    import pandera.pandas as pa

    if spec.type == "numeric":
        return pa.Column(
            "float64",
            nullable=spec.nullable,
            coerce=True,
            checks=pa.Check(_finite, error="values must be finite (no inf)"),
        )
    if spec.type == "datetime":
        return pa.Column(
            nullable=spec.nullable,
            checks=pa.Check(_dates, error="values must be ISO 8601 dates (2024-01-31T08:00)"),
        )
    return pa.Column(nullable=spec.nullable)


def build_schema(schema: DataSchema, task: Task) -> pa.DataFrameSchema:
    """Translate the contract into a pandera schema (feature and target columns)."""
    import pandera.pandas as pa

    columns = {spec.name: _column_check(spec) for spec in schema.columns}
    if task == "regression":
        columns[schema.target.name] = pa.Column(
            "float64",
            nullable=False,
            coerce=True,
            checks=pa.Check(_finite, error="target must be finite (no inf)"),
        )
    else:
        columns[schema.target.name] = pa.Column(nullable=False)
    return pa.DataFrameSchema(columns, strict=True, coerce=False)


def _describe(cases_table: pd.DataFrame) -> list[str]:
    """Turn pandera's failure table into one readable line per (column, check)."""
    problems: list[str] = []
    coerced = set(
        cases_table.loc[cases_table["check"].astype(str).str.startswith("coerce_dtype"), "column"]
    )
    for (column, check), group in cases_table.groupby(
        ["column", "check"], dropna=False, sort=False
    ):
        reason = str(check)
        cases = [str(value) for value in group["failure_case"]]
        if reason == "column_in_schema":
            problems.extend(
                f"column {name!r}: not in data/schema.yaml (add it there, or drop it from the data)"
                for name in cases
            )
        elif reason == "column_in_dataframe":
            problems.extend(f"column {name!r}: missing from the data" for name in cases)
        elif reason.startswith("coerce_dtype"):
            problems.append(
                f"column {column!r}: {len(cases)} value(s) cannot be read as numbers; "
                f"e.g. {', '.join(repr(c) for c in cases[:MAX_EXAMPLES])}"
            )
        elif reason == "not_nullable":
            problems.append(
                f"column {column!r}: {len(cases)} missing value(s) where none are allowed"
            )
        elif column in coerced:
            continue  # dtype and value checks of text: the coercion failure already explains it
        else:
            examples = ", ".join(repr(c) for c in cases[:MAX_EXAMPLES])
            problems.append(f"column {column!r}: {reason}; e.g. {examples}")
    return problems


@dataclass
class Tally:
    """What the checks of the whole table need, summed batch by batch."""

    names: list[str] = field(default_factory=list)
    rows: int = 0
    classes: pd.Series | None = None
    missing: pd.Series | None = None

    def add(self, frame: pd.DataFrame, schema: DataSchema, task: Task) -> None:
        self.names = self.names or [str(name) for name in frame.columns]
        self.rows += len(frame)
        if task == "classification" and schema.target.name in frame.columns:
            self.classes = _sum(self.classes, frame[schema.target.name].value_counts())
        present = [name for name in schema.feature_names if name in frame.columns]
        self.missing = _sum(self.missing, frame[present].isna().sum())


def _sum(total: pd.Series | None, counts: pd.Series) -> pd.Series:
    return counts if total is None else total.add(counts, fill_value=0).astype("int64")


def _dataset_problems(tally: Tally, schema: DataSchema, task: Task, min_rows: int) -> list[str]:
    """Invariants about the whole table that a column schema cannot express."""
    if not tally.names:
        return ["dataset: the file is empty (no header, no rows)"]
    problems = []
    if tally.rows < min_rows:
        problems.append(f"dataset: {tally.rows} rows, fewer than data.min_rows={min_rows}")
    target = schema.target.name
    if tally.classes is not None:
        counts = tally.classes
        if len(counts) < 2:
            problems.append(
                f"column {target!r}: a single class {list(counts.index)}; need two or more"
            )
        rare = counts[counts < MIN_ROWS_PER_CLASS]
        if not rare.empty:
            problems.append(
                f"column {target!r}: classes with fewer than {MIN_ROWS_PER_CLASS} rows cannot "
                f"be split into training, early-stopping and test rows: {list(rare.index)}"
            )
    for spec in schema.features:
        if tally.missing is not None and tally.missing.get(spec.name, -1) == tally.rows > 0:
            problems.append(f"column {spec.name!r}: every value is missing")
    return problems


def check_batch(
    frame: pd.DataFrame, schema: DataSchema, task: Task
) -> tuple[pd.DataFrame, pd.DataFrame | None]:
    """``frame`` with numeric columns coerced, and pandera's failure table (None if clean)."""
    from pandera.errors import SchemaErrors

    try:
        return build_schema(schema, task).validate(frame, lazy=True), None
    except SchemaErrors as errors:
        return frame, errors.failure_cases


@dataclass
class Validation:
    """Validated batches: the failures and whole-table facts seen so far."""

    schema: DataSchema
    task: Task
    tally: Tally = field(default_factory=Tally)
    failures: list[pd.DataFrame] = field(default_factory=list)
    unlabeled: int = 0  # rows dropped before validation for want of a label (by the stage)

    def check(self, frame: pd.DataFrame) -> pd.DataFrame | None:
        """The batch validated (dates as text), or None once any batch broke the contract."""
        if frame.shape[1] == 0:
            return None
        validated, cases = check_batch(frame, self.schema, self.task)
        self.tally.add(validated, self.schema, self.task)
        if cases is not None:
            self.failures.append(cases)
        return None if self.failures else _dates_as_text(validated, self.schema)

    def problems(self, min_rows: int) -> list[str]:
        """Every broken rule of the table, as :class:`DataValidationError` lists them."""
        described = _describe(_merge(self.failures)) if self.failures else []
        return described + _dataset_problems(self.tally, self.schema, self.task, min_rows)


def _merge(failures: list[pd.DataFrame]) -> pd.DataFrame:
    """One failure table for all batches; a missing or extra column is named once."""
    cases = pd.concat(failures, ignore_index=True)
    per_table = cases["check"].astype(str).isin(["column_in_schema", "column_in_dataframe"])
    repeated = per_table & cases.duplicated(["check", "failure_case"])
    return cases[~repeated]


def validate_frame(
    frame: pd.DataFrame, schema: DataSchema, task: Task, min_rows: int
) -> pd.DataFrame:
    """Return ``frame`` with numeric columns coerced, or raise :class:`DataValidationError`."""
    validation = Validation(schema, task)
    validated = validation.check(frame)
    problems = validation.problems(min_rows)
    if problems or validated is None:
        raise DataValidationError(problems)
    return validated


def _dates_as_text(frame: pd.DataFrame, schema: DataSchema) -> pd.DataFrame:
    """Date columns read as timestamps (from Parquet) written as ISO 8601 text, the form
    requests and CSV files carry, so the model's signature asks the service for text."""
    typed = {
        name: frame[name].astype("str").where(frame[name].notna())
        for name in schema.datetime_features
        if name in frame.columns and pd.api.types.is_datetime64_any_dtype(frame[name])
    }
    return frame.assign(**typed) if typed else frame


def drop_unlabeled(frame: pd.DataFrame, target: str, max_share: float) -> tuple[pd.DataFrame, int]:
    """``frame`` without the rows whose ``target`` is missing, and how many there were.

    Such rows cannot teach a supervised model; the contract refuses the table only when their
    share passes ``max_share`` (params.yaml ``data.max_unlabeled_share``), which says the label
    column or its export is broken rather than a few rows unlabelled.
    """
    labeled, count = split_unlabeled(frame, target)
    check_unlabeled(count, len(frame), target, max_share)
    return labeled, count


def split_unlabeled(frame: pd.DataFrame, target: str) -> tuple[pd.DataFrame, int]:
    """``frame`` without the rows whose ``target`` is missing, and how many there were."""
    if target not in frame.columns or frame.empty:
        return frame, 0  # validation names the missing column or the empty table
    unlabeled = frame[target].isna()
    return frame[~unlabeled].reset_index(drop=True), int(unlabeled.sum())


def check_unlabeled(count: int, rows: int, target: str, max_share: float) -> None:
    """Raise :class:`DataValidationError` if ``count`` of ``rows`` unlabelled passes the share."""
    if rows and count / rows > max_share:
        raise DataValidationError(
            [
                f"column {target!r}: {count} of {rows} rows ({count / rows:.1%}) "
                f"have no label, more than data.max_unlabeled_share={max_share}"
            ]
        )


def category_label(value: Any) -> str:
    """A category as text, the same whichever reader typed it: 44 and 44.0 (a column of
    integers beside a gap reads as floats) as '44', 4.5 as '4.5', text as it is."""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def category_text(values: pd.Series) -> pd.Series:
    """Categories a reader took for numbers (it saw only digits), as the text a model that
    learnt them as text knows (:func:`category_label`); missing stays missing."""
    text = values.astype(object).map(category_label, na_action="ignore")
    return text.where(values.notna(), np.nan)


def check_columns(columns: Collection[str], schema: DataSchema) -> None:
    """Raise :class:`DataValidationError` unless ``columns`` (a file's, read before its rows)
    hold every feature: each missing one is named, and a file without columns is empty."""
    if not columns:
        raise DataValidationError(["empty file, no columns"])
    feature_frame(pd.DataFrame(columns=list(columns)), schema)


def feature_frame(
    frame: pd.DataFrame, schema: DataSchema, strings: Collection[str] = ()
) -> pd.DataFrame:
    """The model's input columns from ``frame``, numeric ones coerced; extra columns dropped;
    categorical ones in ``strings`` (the model learnt them as text: ``string_inputs`` of
    ``io/model_loader.py``) as text where a reader took them for numbers.

    Raises :class:`DataValidationError` naming missing columns and values that are not numbers,
    so batch scoring and the API reject bad rows with the same reasons.
    """
    # Names count without surrounding spaces, as ingest reads them (a header "age, city")
    frame = frame.rename(columns=lambda name: str(name).strip())
    missing = [name for name in schema.feature_names if name not in frame.columns]
    if missing:
        raise DataValidationError([f"column {name!r}: missing from the input" for name in missing])
    features = frame[schema.feature_names]
    problems = []
    converted: dict[str, pd.Series] = {
        name: category_text(features[name])
        for name in schema.categorical_features
        if name in strings and features[name].dtype.kind in "iuf"
    }
    for name in schema.numeric_features:
        column = features[name]
        if column.dtype == np.float64:  # parsed as numbers already: nothing to coerce
            values = column
        else:
            values = pd.to_numeric(column, errors="coerce")
            bad = values.isna() & column.notna()
            if bad.any():
                examples = ", ".join(repr(v) for v in column[bad].head(MAX_EXAMPLES))
                problems.append(
                    f"column {name!r}: {int(bad.sum())} value(s) are not numbers; e.g. {examples}"
                )
                continue
            values = converted[name] = values.astype("float64")
        if np.isinf(values.to_numpy()).any():
            problems.append(f"column {name!r}: values must be finite (no inf)")
    for name in schema.datetime_features:
        column = features[name]
        bad = parse_dates(column).isna() & column.notna()
        if bad.any():
            examples = ", ".join(repr(v) for v in column[bad].head(MAX_EXAMPLES))
            problems.append(
                f"column {name!r}: {int(bad.sum())} value(s) are not ISO 8601 dates; "
                f"e.g. {examples}"
            )
    if problems:
        raise DataValidationError(problems)
    return features.assign(**converted) if converted else features
