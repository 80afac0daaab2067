"""A scikit-learn model fitted on a DataFrame, given a plain array when that answers the same.

The feature server and batch scoring build the features as one float64 matrix in the
model's `feature_names_in_` order. A model fitted on a DataFrame was then given that matrix
wrapped in a frame, and scikit-learn checks a frame's column names and dtypes on every call:
an imputer + LogisticRegression takes ~1 ms on a one-row frame against ~0.3 ms on the array.
Given the bare array, the same model warns on every call ("X does not have valid feature
names") because its estimators remember the names.

`array_model(model)` is a copy of the model with `feature_names_in_` removed from each of its
estimators (so an array is what it expects, and nothing warns), kept only when it is proven
to answer exactly as the model does on a frame: at load, both predict the same fixed rows
(varied values, then each feature missing in turn and all missing) and must give
bit-identical arrays, without a warning; on rows with nulls, both may fail instead. A model
that uses the names themselves (a ColumnTransformer selecting columns by name, a pipeline with
pandas output whose next step checks names) fails, differs or warns here, and keeps being
given a frame. The check runs once per load (the only `warnings.catch_warnings` is there,
never per predict).
"""

from __future__ import annotations

import copy
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

SAMPLE_ROWS = 32
FEATURE_NAMES = "feature_names_in_"


def array_model(model: Any) -> Any | None:
    """A copy of `model` that predicts on an array exactly as `model` does on a frame of
    `model.feature_names_in_`, or None when that is not proven (give it the frame)."""
    names = [str(name) for name in getattr(model, FEATURE_NAMES)]
    leaves: dict[int, Any] = {}
    _walk(model, [], leaves)
    # Only the estimators and the lists holding them are copied; the fitted arrays and trees
    # (read-only when predicting) are shared, so the copy costs next to no memory.
    stripped = copy.deepcopy(model, memo=leaves)
    for estimator in estimators(stripped):
        vars(estimator).pop(FEATURE_NAMES, None)
    values, with_nulls = sample_rows(len(names))
    with warnings.catch_warnings(record=True) as warned:
        warnings.simplefilter("always")
        same = _same_answers(model, stripped, names, values, nulls_allowed_to_fail=False)
        same = same and _same_answers(model, stripped, names, with_nulls, True)
    return stripped if same and not warned else None


def estimators(value: Any) -> list[Any]:
    """Every estimator reachable from `value` through attributes, lists, tuples and dicts
    (a Pipeline's steps, a ColumnTransformer's fitted transformers_, a search's
    best_estimator_), each once."""
    found: list[Any] = []
    _walk(value, found, {})
    return found


def _walk(value: Any, found: list[Any], leaves: dict[int, Any]) -> None:
    """Sorts what `value` holds into estimators (`found`) and everything else (`leaves`, by
    id: what a copy of the estimators may share)."""
    if isinstance(value, (list, tuple)):
        for item in value:
            _walk(item, found, leaves)
    elif isinstance(value, dict):
        for item in value.values():
            _walk(item, found, leaves)
    elif hasattr(value, "get_params") and not isinstance(value, type):
        if all(value is not seen for seen in found):
            found.append(value)
            for item in vars(value).values():
                _walk(item, found, leaves)
    else:
        leaves[id(value)] = value


def sample_rows(width: int) -> tuple[np.ndarray, np.ndarray]:
    """Fixed rows of `width` features: varied values (small and large, negative, integral
    and not), and rows with each feature missing in turn, then all missing (NaN)."""
    rng = np.random.default_rng(20261201)
    scales = np.array([1.0, 10.0, 1000.0, 1e-3])[np.arange(SAMPLE_ROWS) % 4]
    values = rng.normal(size=(SAMPLE_ROWS, width)) * scales[:, None]
    values[::3] = np.round(values[::3])  # integral values, as counts are
    with_nulls = np.repeat(values[:1], width + 1, axis=0)
    with_nulls[np.arange(width), np.arange(width)] = np.nan
    with_nulls[width] = np.nan
    return values, with_nulls


def _same_answers(
    model: Any, stripped: Any, names: Sequence[str], values: np.ndarray, nulls_allowed_to_fail: bool
) -> bool:
    try:  # the frame `predict_matrix` builds otherwise: over the same C-ordered array
        expected = np.asarray(model.predict(frame_of(values, names)))
    except Exception:
        return nulls_allowed_to_fail and _fails(stripped, values)
    try:
        got = np.asarray(stripped.predict(values))
    except Exception:
        return False
    return identical(expected, got)


def frame_of(values: np.ndarray, names: Sequence[str]) -> pd.DataFrame:
    """The frame a model fitted on names is given otherwise: a view of the matrix (no copy,
    so scikit-learn gets back the same C-ordered array; a copy would be column-major, and
    BLAS may then round a dot product differently in the last bit)."""
    return pd.DataFrame(values, columns=list(names), copy=False)


def _fails(model: Any, values: np.ndarray) -> bool:
    try:
        model.predict(values)
    except Exception:
        return True
    return False


def identical(a: np.ndarray, b: np.ndarray) -> bool:
    """Same dtype, shape and bytes (NaN equals NaN of the same bits), or equal objects."""
    if a.dtype != b.dtype or a.shape != b.shape:
        return False
    if a.dtype.hasobject:
        return bool(a.tolist() == b.tolist())
    return a.tobytes() == b.tobytes()
