"""XGBoost's classifier for any labels: it trains only on labels 0..n-1, so they are encoded."""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.preprocessing import LabelEncoder
from xgboost import XGBClassifier


class XGBLabelClassifier(XGBClassifier):  # type: ignore[misc]
    """``XGBClassifier`` that encodes the labels it is fitted on and predicts them back, so
    ``classes_`` and ``predict`` speak the data's labels as the other classifiers do."""

    def fit(self, X: Any, y: Any, **options: Any) -> XGBLabelClassifier:
        encoder = LabelEncoder().fit(y)
        # XGBoost checks the encoded labels against classes_, so it must read 0..n-1 meanwhile.
        self.__dict__.pop("labels_", None)
        super().fit(X, encoder.transform(y), **options)
        self.labels_ = encoder
        return self

    def predict(self, X: Any, **options: Any) -> np.ndarray[Any, Any]:
        encoded = np.asarray(super().predict(X, **options), dtype=int)
        return np.asarray(self.labels_.inverse_transform(encoded))

    @property
    def classes_(self) -> np.ndarray[Any, Any]:
        labels = self.__dict__.get("labels_")
        return np.asarray(super().classes_ if labels is None else labels.classes_)
