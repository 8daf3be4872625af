"""Feature preprocessing: imputation, scaling and one-hot encoding."""

from __future__ import annotations

from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from .schema import DataSchema


def build_preprocessor(schema: DataSchema) -> ColumnTransformer:
    """Impute and scale numeric columns; impute and one-hot encode categorical ones.

    Unknown categories at prediction time are encoded as all zeros instead of failing, and
    rare categories (under 1% of rows) share one column, so a new value never breaks serving.
    """
    numeric = Pipeline(
        [
            ("impute", SimpleImputer(strategy="median", keep_empty_features=True)),
            ("scale", StandardScaler()),
        ]
    )
    categorical = Pipeline(
        [
            (
                "impute",
                SimpleImputer(
                    strategy="constant", fill_value="__missing__", keep_empty_features=True
                ),
            ),
            (
                "encode",
                OneHotEncoder(
                    handle_unknown="infrequent_if_exist",
                    min_frequency=0.01,
                    sparse_output=False,
                ),
            ),
        ]
    )
    return ColumnTransformer(
        [
            ("numeric", numeric, schema.numeric_features),
            ("categorical", categorical, schema.categorical_features),
        ],
        remainder="drop",
        verbose_feature_names_out=False,
    )
