"""Hyperparameter names LightGBM and XGBoost would ignore, found before anything trains.

Their scikit-learn estimators take any keyword and hand it to the native library, which only
logs that it does not know the name (a log ``verbose: -1`` silences): a misspelt name would
train with the default. Each library is asked itself, on a two-row dataset set up with the
estimator's parameters, so every name and alias it documents passes, and only those.
"""

from __future__ import annotations

import inspect
import re
import threading
import warnings

import numpy as np
from sklearn.base import BaseEstimator

# A two-row table and its labels: the least the libraries set up a dataset from.
ROWS, LABELS = np.zeros((2, 1)), np.array([0.0, 1.0])
LIGHTGBM_UNKNOWN = re.compile(r"Unknown parameter: (\S+)")
XGBOOST_UNUSED = re.compile(r"Parameters: \{(.*?)\} are not used")


def ignored_hyperparameters(kind: str, estimator: BaseEstimator) -> list[str]:
    """The hyperparameters of ``estimator``, a LightGBM or XGBoost one, its library would ignore."""
    if kind == "lightgbm":
        return lightgbm_unknown(estimator)
    return xgboost_unused(estimator)


class _LightGBMLog:
    """LightGBM's logger: prints and warns as the library's own does, and collects the
    messages of a probe meanwhile (``register_logger`` is the library's one way to read them)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.collected: list[str] | None = None

    def info(self, message: str) -> None:
        if self.collected is not None:
            self.collected.append(message)
        else:
            print(message)  # what LightGBM's own logger does

    def warning(self, message: str) -> None:
        if self.collected is not None:
            self.collected.append(message)
        else:
            warnings.warn(message, stacklevel=3)


_LIGHTGBM_LOG = _LightGBMLog()


def lightgbm_unknown(estimator: BaseEstimator) -> list[str]:
    """Keywords of a LightGBM estimator (those outside its signature go to the native library)
    that LightGBM reports as unknown when it reads them."""
    import lightgbm

    own = inspect.signature(type(estimator).__init__).parameters
    extra = {name: value for name, value in estimator.get_params().items() if name not in own}
    if not extra:
        return []
    with _LIGHTGBM_LOG.lock:
        lightgbm.register_logger(_LIGHTGBM_LOG)
        messages: list[str] = []
        _LIGHTGBM_LOG.collected = messages
        try:
            # verbosity 0: the names are read, and the unknown ones reported, before the values
            lightgbm.Dataset(ROWS, LABELS, params={**extra, "verbosity": 0}).construct()
        except lightgbm.basic.LightGBMError:
            pass  # a value it refuses here: training reports it, with the data it concerns
        finally:
            _LIGHTGBM_LOG.collected = None
    return [found for text in messages for found in LIGHTGBM_UNKNOWN.findall(text)]


def xgboost_unused(estimator: BaseEstimator) -> list[str]:
    """Parameters of an XGBoost estimator that XGBoost says it does not use once a booster is
    configured with all of them (whether one is used can depend on another: ``booster``)."""
    import xgboost

    params = estimator.get_xgb_params()
    params.pop("verbosity", None)  # 0 would silence the report
    rows = xgboost.DMatrix(ROWS, label=LABELS)  # held: the booster reads it when configured
    booster = xgboost.Booster(params, [rows])
    with warnings.catch_warnings(record=True) as caught, xgboost.config_context(verbosity=1):
        warnings.simplefilter("always")
        try:
            booster.save_config()  # configures the booster, which checks the names
        except xgboost.core.XGBoostError:
            return []  # a value it refuses before the check: training reports it, with the data
    found = [XGBOOST_UNUSED.search(str(warning.message)) for warning in caught]
    return [name.strip(' "') for match in found if match for name in match[1].split(",")]
