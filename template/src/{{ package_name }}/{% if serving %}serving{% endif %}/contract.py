"""The request contract, built from the model's signature: one typed field per feature.

Validation runs in pydantic-core (JSON parsing included), so a bad request is rejected with
the field and the reason before any pandas work is done for it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Annotated, Any, Literal

import pandas as pd
from pydantic import (
    ConfigDict,
    Field,
    StrictBool,
    TypeAdapter,
    with_config,
)
from typing_extensions import TypedDict

from ..engine import Limits, PlainNumbers, Row, Rows, ShapeCheck, numeric_block

Kind = Literal["number", "string", "boolean"]
# MLflow column types -> JSON kinds. Integers are accepted as numbers (the pipeline scales them).
KINDS: dict[str, Kind] = {
    "double": "number",
    "float": "number",
    "long": "number",
    "integer": "number",
    "string": "string",
    "boolean": "boolean",
}
Number = Annotated[float, Field(strict=True, allow_inf_nan=False)]
# The longest text value a request may hold, unless SERVING_MAX_FIELD_BYTES says otherwise.
MAX_FIELD_BYTES = 10_000
# Request types are made at start-up from the signature, which static typing cannot follow.
make_typed_dict: Any = TypedDict  # typing_extensions' version: pydantic needs it on 3.11
forbid_extra = with_config(ConfigDict(extra="forbid"))


class ContractError(ValueError):
    """The model's signature cannot be turned into a request contract."""


@dataclass(frozen=True)
class FeatureSpec:
    name: str
    kind: Kind


def features_from_signature(signature: Any) -> list[FeatureSpec]:
    """The input columns of an MLflow ``ModelSignature``, in order."""
    if signature is None or signature.inputs is None:
        raise ContractError("the model has no input signature; retrain it with the pipeline")
    if not signature.inputs.has_input_names():
        raise ContractError("the model's signature has no column names")
    specs = []
    for column in signature.inputs.inputs:
        type_name = getattr(column.type, "name", str(column.type))
        if type_name not in KINDS:
            raise ContractError(f"column {column.name!r}: unsupported type {type_name!r}")
        specs.append(FeatureSpec(column.name, KINDS[type_name]))
    return specs


class Contract:
    """Validators for the request bodies, and the conversion of valid rows to a DataFrame."""

    def __init__(
        self,
        features: list[FeatureSpec],
        *,
        max_batch_size: int,
        allow_missing: bool,
        max_field_bytes: int = MAX_FIELD_BYTES,
    ) -> None:
        if not features:
            raise ContractError("the model's signature lists no input columns")
        self.limits = Limits(len(features), max_batch_size, max_field_bytes)
        self.shape = ShapeCheck(self.limits)
        self.features = features
        self.names = [spec.name for spec in features]
        self.numeric = [spec.name for spec in features if spec.kind == "number"]
        self.strings = [spec.name for spec in features if spec.kind == "string"]
        self.booleans = [spec.name for spec in features if spec.kind == "boolean"]
        self.other = self.strings + self.booleans
        # Characters, which pydantic counts as it reads: a limit on memory, not on encodings.
        text = Annotated[str, Field(strict=True, max_length=max_field_bytes)]
        python_types: dict[Kind, Any] = {"number": Number, "string": text, "boolean": StrictBool}
        fields: dict[str, Any] = {}
        for spec in features:
            value_type = python_types[spec.kind]
            if allow_missing:
                value_type = value_type | None
            # Every key is required, even where MLflow marks a column optional: a misspelt
            # feature must fail loudly, not be scored as missing. A missing value is null.
            fields[spec.name] = value_type
        # A TypedDict, not a model: feature names may hold spaces, and rows stay plain dicts.
        row_type = forbid_extra(make_typed_dict("Features", fields))
        rows_type: Any = list[row_type]  # type: ignore[valid-type]
        batch: Any = Annotated[rows_type, Field(min_length=1, max_length=max_batch_size)]
        request_type = forbid_extra(make_typed_dict("PredictRequest", {"instances": batch}))
        self._rows: TypeAdapter[list[Row]] = TypeAdapter(batch)
        self._request: TypeAdapter[dict[str, list[Row]]] = TypeAdapter(request_type)
        self.plain = (
            None
            if self.other
            else PlainNumbers.for_names(
                self.numeric, max_batch_size=max_batch_size, allow_missing=allow_missing
            )
        )

    def parse_predict(self, body: bytes) -> Sequence[Row]:
        """Rows of a ``{"instances": [...]}`` JSON body; raises ``ValidationError``, or
        ``ProtocolError`` for a body far out of the limits. A body of plain numbers is read by
        the engine's shortcut (``PlainNumbers``), which words no error of its own."""
        parsed = self.plain.parse(body) if self.plain is not None else None
        if parsed is not None:
            return parsed
        self.shape.check(body, "predict")
        return Rows(self._request.validate_json(body)["instances"])

    def parse_plain_records(self, body: bytes) -> Sequence[Row] | None:
        """The rows of an MLflow ``dataframe_records`` or ``instances`` body (a list of row
        objects), when the engine's shortcut can vouch for the body."""
        if self.plain is None:
            return None
        return self.plain.parse(body, "dataframe_records") or self.plain.parse(body, "instances")

    def validate_rows(self, records: Any) -> Sequence[Row]:
        """Rows from already-parsed JSON records; raises ``ValidationError``."""
        return Rows(self._rows.validate_python(records))

    def frame(self, rows: Sequence[Row]) -> pd.DataFrame:
        """The model's input frame: numeric columns as one float64 block, ``None`` as NaN."""
        frame = pd.DataFrame(numeric_block(rows, self.numeric), columns=self.numeric)
        for name in self.strings:
            # pandas' string dtype, as read_csv gives the batch CLI: null becomes NaN, which the
            # imputer recognises (it would not recognise None in an object column).
            frame[name] = pd.Series([row.get(name) for row in rows], dtype="str")
        for name in self.booleans:
            frame[name] = pd.Series([row.get(name) for row in rows], dtype=object)
        return frame if not self.other else frame[self.names]

    def request_schema(self) -> dict[str, Any]:
        """JSON schema of the ``/predict`` body (``$defs`` inline, for OpenAPI)."""
        return self._request.json_schema(ref_template="#/components/schemas/{model}")

    def rows_schema(self) -> dict[str, Any]:
        """JSON schema of a list of rows."""
        return self._rows.json_schema(ref_template="#/components/schemas/{model}")
