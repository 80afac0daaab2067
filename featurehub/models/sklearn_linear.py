"""A fitted scikit-learn linear model predicting through a few numpy operations, when that is
proven at load to answer exactly as its own predict.

Why: the predict endpoint serves a small logistic regression over a service's features. On
this machine scikit-learn's `LogisticRegression.predict` costs 126-212 us for ONE row (input
validation, frame detection, array-API dispatch; the dot product itself is ~2 us), and the
demo's `make_pipeline(SimpleImputer(), LogisticRegression())` 305-546 us, more than half of a
whole feature request (~300 us of server CPU). The same arithmetic in numpy, with the checks
that matter for a float64 matrix (a missing or infinite value raises ValueError where
scikit-learn raises it), measured through `_SklearnPredictor.predict_matrix` on one row
(median of 7 x 2000 calls): the demo pipeline 208 -> 7 us, a LogisticRegression over 8
features 78 -> 4 us. The proof costs ~13 ms once per load; batch scoring of 1M rows gives the
same bytes in about the same time (the work there is the matrix product either way).

What is supported, and nothing else (read in scikit-learn 1.9's source):
- a final estimator whose `predict` and decision function are those of
  `LinearClassifierMixin` (LogisticRegression, RidgeClassifier, SGDClassifier, Perceptron,
  LinearSVC ...: `X @ coef_.T + intercept_`, raveled for one column, then `scores > 0` or
  argmax, `classes_.take`) or of `LinearModel` (LinearRegression, Ridge, Lasso, ElasticNet
  ...: `X @ coef_(.T) + intercept_`), with a dense coef_; a class overriding either (Bayesian
  ridge's `return_std`, LDA, a multilabel RidgeClassifier, a user subclass) is refused;
- behind a plain `Pipeline` whose earlier steps are `SimpleImputer`s (NaN as the missing
  value, a numeric strategy, no indicator, no feature dropped) or dense `StandardScaler`s
  ("passthrough"/None steps skipped), with scikit-learn's default output and copy=True.

`linear_predict(model)` builds the function and proves it: on fixed rows (varied values, each
feature missing in turn, all missing, each feature +inf and -inf, extreme magnitudes), as a
batch and one row at a time (BLAS may take another kernel for one row), it must give
bit-identical arrays (dtype, shape, bytes) to `model.predict`, or both raise ValueError.
Anything not supported, not proven, or failing to build is None: the model's own predict is
used, as before. The function itself hands any input but a non-empty C-contiguous float64
matrix of the model's width to `model.predict`, so only what was proven runs in numpy.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
import scipy.sparse
import sklearn
from sklearn.impute import SimpleImputer
from sklearn.linear_model import ElasticNet, Ridge, RidgeCV
from sklearn.linear_model._base import (
    LinearClassifierMixin,
    LinearModel,
    MultiOutputLinearModel,
)
from sklearn.linear_model._ridge import _RidgeClassifierMixin
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils._set_output import _get_output_config

from featurehub.models.sklearn_arrays import identical, sample_rows

Step = Callable[[np.ndarray], np.ndarray]

# The methods whose source was read: each either is the arithmetic below or only calls
# `super()` towards it (ElasticNet's `_decision_function` for a dense X).
_CLASSIFIER_PREDICTS = (LinearClassifierMixin.predict, _RidgeClassifierMixin.predict)
_CLASSIFIER_DECISIONS = (LinearClassifierMixin.decision_function,)
_REGRESSOR_PREDICTS = (
    LinearModel.predict,
    MultiOutputLinearModel.predict,
    Ridge.predict,
    RidgeCV.predict,
)
_REGRESSOR_DECISIONS = (LinearModel._decision_function, ElasticNet._decision_function)
_IMPUTER_STRATEGIES = ("mean", "median", "most_frequent", "constant")
# Beyond `sample_rows`: magnitudes where rounding and overflow show.
_EXTREMES = (1e300, -1e300, 1e-300, -5e-324, 0.0, -0.0, 2.0**53 + 1)


def linear_predict(model: Any) -> Callable[[np.ndarray], np.ndarray] | None:
    """A function computing exactly `model.predict(X)` for a C-contiguous float64 matrix,
    with numpy; None when the model is not of a supported kind or the proof fails."""
    try:
        built = _build(model)
        if built is None:
            return None
        function, width = built
        with warnings.catch_warnings():  # the proof's rows overflow on purpose
            warnings.simplefilter("ignore")
            return function if _proven(model, function, width) else None
    except Exception:
        return None


def _build(model: Any) -> tuple[Step, int] | None:
    """The function and the width it takes (the final estimator's: every step before keeps
    the width), or None."""
    if sklearn.get_config()["assume_finite"]:
        return None  # scikit-learn then skips the checks a missing value raises in
    if type(model) is Pipeline:
        if _get_output_config("transform", model)["dense"] != "default":
            return None
        *earlier, (_, last) = model.steps
    else:
        last, earlier = model, []
    coef = getattr(last, "coef_", None)
    if not isinstance(coef, np.ndarray) or coef.ndim not in (1, 2):
        return None  # a sparse coef_ too
    width = coef.shape[-1]
    steps = [_transform(step, width) for _, step in earlier if _present(step)]
    final = _final(last, width)
    if final is None or any(step is None for step in steps):
        return None
    chain: list[Step] = [step for step in steps if step is not None]

    def predict(values: np.ndarray) -> np.ndarray:
        if not (
            type(values) is np.ndarray
            and values.dtype == np.float64
            and values.ndim == 2
            and values.shape[0] > 0
            and values.shape[1] == width
            and values.flags.c_contiguous
        ):
            return np.asarray(model.predict(values))  # not what was proven: scikit-learn
        for step in chain:
            values = step(values)
        return final(values)

    return predict, width


def _present(step: Any) -> bool:
    return step is not None and not (isinstance(step, str) and step == "passthrough")


def _transform(step: Any, width: int) -> Step | None:
    """An imputer's or a scaler's transform of a float64 matrix, elementwise."""
    if type(step) not in (SimpleImputer, StandardScaler):
        return None
    if _get_output_config("transform", step)["dense"] != "default" or step.copy is not True:
        return None  # pandas output; or copy=False, which writes into the caller's matrix
    if type(step) is SimpleImputer:
        return _imputer(step, width)
    return _scaler(step, width)


def _imputer(imputer: SimpleImputer, width: int) -> Step | None:
    """`SimpleImputer.transform`: inf raises (NaN is what it fills), then every NaN is the
    column's statistic cast to the fitted dtype (`X[missing] = statistics`, on a copy)."""
    missing = imputer.missing_values
    statistics = getattr(imputer, "statistics_", None)
    if not (
        isinstance(missing, float)
        and math.isnan(missing)
        and imputer.strategy in _IMPUTER_STRATEGIES
        and not imputer.add_indicator
        and imputer._fit_dtype.kind != "O"
        and np.dtype(imputer._fill_dtype).kind == "f"
        and isinstance(statistics, np.ndarray)
        and statistics.dtype.kind in "iufO"  # object: a constant's, cast as transform does
        and statistics.shape == (width,)
    ):
        return None
    fill = statistics.astype(imputer._fill_dtype)
    if np.isnan(fill).any():  # a statistic of nothing drops its column
        return None

    def impute(values: np.ndarray) -> np.ndarray:
        _check_finite(values, "SimpleImputer", allow_nan=True)
        return np.where(np.isnan(values), fill, values)

    return impute


def _scaler(scaler: StandardScaler, width: int) -> Step | None:
    """`StandardScaler.transform` of a dense matrix: NaN passes, inf raises, then
    `X -= mean_` and `X /= scale_` as each is asked for (on a copy)."""
    mean = scaler.mean_ if scaler.with_mean else None
    scale = scaler.scale_ if scaler.with_std else None
    for fitted in (mean, scale):
        if fitted is not None and not (isinstance(fitted, np.ndarray) and fitted.shape == (width,)):
            return None
    mean = None if mean is None else mean.astype(np.float64)
    scale = None if scale is None else scale.astype(np.float64)

    def standardize(values: np.ndarray) -> np.ndarray:
        _check_finite(values, "StandardScaler", allow_nan=True)
        if mean is not None:
            values = values - mean
        if scale is not None:
            values = values / scale
        return values

    return standardize


def _final(estimator: Any, width: int) -> Step | None:
    """A dense linear classifier's or regressor's predict, or None."""
    kind = type(estimator)
    coef = getattr(estimator, "coef_", None)
    if (
        scipy.sparse.issparse(coef)
        or not isinstance(coef, np.ndarray)
        or coef.dtype.kind != "f"
        or coef.ndim not in (1, 2)
        or coef.shape[-1] != width
    ):
        return None
    intercept = estimator.intercept_
    name = kind.__name__
    if isinstance(estimator, LinearClassifierMixin):
        if kind.predict not in _CLASSIFIER_PREDICTS or (
            kind.decision_function not in _CLASSIFIER_DECISIONS
        ):
            return None
        binarizer = getattr(estimator, "_label_binarizer", None)
        if binarizer is not None and binarizer.y_type_.startswith("multilabel"):
            return None  # RidgeClassifier's other predict
        return _classifier(coef, intercept, np.asarray(estimator.classes_), name)
    if isinstance(estimator, LinearModel):
        if kind.predict not in _REGRESSOR_PREDICTS or (
            kind._decision_function not in _REGRESSOR_DECISIONS
        ):
            return None
        return _regressor(coef, intercept, name)
    return None


def _classifier(coef: np.ndarray, intercept: Any, classes: np.ndarray, name: str) -> Step:
    """`LinearClassifierMixin.predict`: the decision function, then the class it picks."""
    coef_t = coef.T if coef.ndim == 2 else coef

    def classify(values: np.ndarray) -> np.ndarray:
        _check_finite(values, name, allow_nan=False)
        scores = values @ coef_t + intercept
        if scores.ndim > 1 and scores.shape[1] == 1:
            scores = scores.reshape(-1)
        binary = scores.ndim == 1
        indices = (scores > 0).astype(np.intp) if binary else scores.argmax(axis=1)
        return classes.take(indices, axis=0)

    return classify


def _regressor(coef: np.ndarray, intercept: Any, name: str) -> Step:
    """`LinearModel._decision_function` of a dense X."""
    coef_t = coef if coef.ndim == 1 else coef.T

    def regress(values: np.ndarray) -> np.ndarray:
        _check_finite(values, name, allow_nan=False)
        return values @ coef_t + intercept

    return regress


def _check_finite(values: np.ndarray, name: str, allow_nan: bool) -> None:
    """The ValueError scikit-learn's input validation raises for `name` (a NaN first, where
    it is not allowed; then an infinity)."""
    if np.isfinite(values).all():
        return
    if not allow_nan and np.isnan(values).any():
        raise ValueError(
            f"Input X contains NaN. {name} does not accept missing values encoded as NaN; "
            "impute them first (for instance with a SimpleImputer in a pipeline)"
        )
    if np.isinf(values).any():
        raise ValueError(
            f"Input X contains infinity or a value too large for dtype('float64'). {name} "
            "does not accept infinite values"
        )


def _proven(model: Any, function: Step, width: int) -> bool:
    """Whether `function` answers as `model.predict` on the proof's rows, batch and alone."""
    for rows in _proof_rows(width):
        if not _same(model, function, rows):
            return False
        if not all(_same(model, function, rows[i : i + 1]) for i in range(len(rows))):
            return False
    return True


def _proof_rows(width: int) -> list[np.ndarray]:
    """`sample_rows`, then each feature +inf and -inf in turn (and next to a NaN), then
    rows of one extreme magnitude each."""
    values, with_nulls = sample_rows(width)
    infinite = np.repeat(values[:1], 2 * width + 1, axis=0)
    infinite[np.arange(width), np.arange(width)] = np.inf
    infinite[width + np.arange(width), np.arange(width)] = -np.inf
    infinite[2 * width] = np.nan
    infinite[2 * width, 0] = np.inf
    extremes = np.repeat(np.array(_EXTREMES)[:, None], width, axis=1)
    mixed = values[:2] * np.array(_EXTREMES[:2])[:, None]
    return [values, with_nulls, infinite, np.ascontiguousarray(np.vstack([extremes, mixed]))]


def _same(model: Any, function: Step, rows: np.ndarray) -> bool:
    try:
        expected = np.asarray(model.predict(rows))
    except ValueError:
        return _raises_value_error(function, rows)
    except Exception:
        return False
    try:
        got = np.asarray(function(rows))
    except Exception:
        return False
    return identical(expected, got)


def _raises_value_error(function: Step, rows: np.ndarray) -> bool:
    try:
        function(rows)
    except ValueError:
        return True
    except Exception:
        return False
    return False
