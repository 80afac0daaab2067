"""A scikit-learn model fitted on a DataFrame is given a plain array only when that answers
bit-identically to the frame it was given before; the online look-up's values become the
same matrix the Arrow path builds."""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from sklearn.compose import make_column_transformer
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.tree import DecisionTreeClassifier

from featurehub.models.flavors import _SklearnPredictor, arrow_matrix, values_matrix
from featurehub.models.sklearn_arrays import frame_of, identical

NAMES = ["conv_rate", "trips_today", "avg_rating"]


def training() -> tuple[pd.DataFrame, np.ndarray]:
    rng = np.random.default_rng(7)
    frame = pd.DataFrame(rng.normal(size=(300, 3)) * [1.0, 20.0, 2.0], columns=NAMES)
    return frame, (frame["conv_rate"] + 0.1 * frame["avg_rating"] > 0).to_numpy(dtype=int)


def fitted(kind: str) -> Any:
    frame, labels = training()
    models: dict[str, Any] = {
        "imputer + LR": make_pipeline(SimpleImputer(), LogisticRegression()),
        "imputer + scaler + ridge": make_pipeline(SimpleImputer(), StandardScaler(), Ridge()),
        "LR": LogisticRegression(),  # fails on a missing value, on a frame or not
        "tree": DecisionTreeClassifier(max_depth=4, random_state=0),
        "gradient boosting": HistGradientBoostingClassifier(max_iter=5, random_state=0),
        "grid search": GridSearchCV(
            make_pipeline(SimpleImputer(), LogisticRegression()),
            {"logisticregression__C": [0.1, 1.0]},
            cv=2,
        ),
        "columns by position": make_pipeline(
            make_column_transformer((SimpleImputer(), [0, 2]), remainder="drop"),
            LogisticRegression(),
        ),
    }
    target = frame["trips_today"].to_numpy() if kind.endswith("ridge") else labels
    return models[kind].fit(frame, target)


ARRAY_MODELS = [
    "imputer + LR",
    "imputer + scaler + ridge",
    "LR",
    "tree",
    "gradient boosting",
    "grid search",
    "columns by position",
]
PREDICTORS = {kind: _SklearnPredictor(fitted(kind)) for kind in ARRAY_MODELS}

# Rows as the server builds them: finite values of any scale, or missing (NaN).
cells = st.one_of(
    st.floats(allow_nan=False, allow_infinity=False, min_value=-1e12, max_value=1e12),
    st.integers(-1000, 1000).map(float),
    st.just(np.nan),
)
matrices = st.integers(1, 40).flatmap(
    lambda rows: arrays(np.float64, (rows, len(NAMES)), elements=cells)
)


@pytest.mark.parametrize("kind", ARRAY_MODELS)
@settings(max_examples=60, deadline=None)
@given(values=matrices)
def test_the_array_answers_bit_identically_to_the_frame(kind: str, values: np.ndarray) -> None:
    predictor = PREDICTORS[kind]
    assert predictor.array_model is not None, f"{kind} should be given arrays"
    try:
        expected: np.ndarray | None = np.asarray(predictor.model.predict(frame_of(values, NAMES)))
    except ValueError:  # LR on a missing value: the array path fails too
        expected = None
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no "X does not have valid feature names"
        if expected is None:
            with pytest.raises(ValueError):
                predictor.predict_matrix(values)
            return
        got = np.asarray(predictor.predict_matrix(values))
    assert identical(expected, got), (expected, got)


def test_a_model_selecting_columns_by_name_keeps_its_frame() -> None:
    frame, labels = training()
    model = make_pipeline(
        make_column_transformer((SimpleImputer(), ["conv_rate", "avg_rating"])),
        LogisticRegression(),
    ).fit(frame, labels)
    predictor = _SklearnPredictor(model)
    assert predictor.array_model is None
    values = np.array([[0.3, np.nan, 1.0], [np.nan, 2.0, -1.0]])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        got = predictor.predict_matrix(values)
    assert identical(np.asarray(got), model.predict(frame_of(values, NAMES)))


def test_a_pipeline_with_pandas_output_keeps_its_frame() -> None:
    """Its later steps check the names the first step outputs: an array would warn."""
    frame, labels = training()
    model = make_pipeline(SimpleImputer(), LogisticRegression()).set_output(transform="pandas")
    predictor = _SklearnPredictor(model.fit(frame, labels))
    assert predictor.array_model is None


def test_the_model_itself_is_untouched_and_its_arrays_shared() -> None:
    """The array copy drops the names; the model keeps them (register checks them, the SDK's
    `predict(frame)` uses them). The fitted arrays are shared, not copied."""
    predictor = PREDICTORS["imputer + LR"]
    assert list(predictor.model.feature_names_in_) == NAMES
    assert not hasattr(predictor.array_model, "feature_names_in_")
    model, copied = predictor.model.steps[-1][1], predictor.array_model.steps[-1][1]
    assert copied is not model and copied.coef_ is model.coef_
    tree = PREDICTORS["tree"]
    assert tree.array_model.tree_ is tree.model.tree_


def test_a_model_fitted_on_an_array_is_its_own_array_model() -> None:
    frame, labels = training()
    model = LogisticRegression().fit(frame.to_numpy(), labels)
    assert _SklearnPredictor(model).array_model is model


# -- the online look-up's values as a matrix ---------------------------------------------------

INT_LIMIT = 2**53  # beyond, Arrow refuses to cast an int64 to float64 (it would round)
COLUMN_KINDS = {
    "int64": (pa.int64(), st.integers(-INT_LIMIT, INT_LIMIT)),
    "int32": (pa.int32(), st.integers(-(2**31), 2**31 - 1)),
    "float64": (pa.float64(), st.floats(allow_nan=False, width=64)),
    "float32": (pa.float32(), st.floats(allow_nan=False, width=32)),
    "bool": (pa.bool_(), st.booleans()),
}


@st.composite
def online_columns(draw: st.DrawFn) -> tuple[list[list[Any]], list[pa.DataType]]:
    rows = draw(st.integers(0, 20))
    kinds = draw(st.lists(st.sampled_from(sorted(COLUMN_KINDS)), min_size=1, max_size=5))
    columns, types = [], []
    for kind in kinds:
        arrow_type, values = COLUMN_KINDS[kind]
        columns.append(draw(st.lists(st.none() | values, min_size=rows, max_size=rows)))
        types.append(arrow_type)
    return columns, types


@pytest.mark.filterwarnings("ignore:overflow encountered in cast:RuntimeWarning")  # both: inf
@settings(max_examples=300, deadline=None)
@given(columns=online_columns(), dtype=st.sampled_from([np.float64, np.float32]))
def test_values_matrix_is_the_arrow_matrix(
    columns: tuple[list[list[Any]], list[pa.DataType]], dtype: Any
) -> None:
    """The oracle: the Arrow table of the same values and types, through `arrow_matrix`."""
    values, types = columns
    table = pa.table(
        {
            f"f{i}": pa.array(column, kind)
            for i, (column, kind) in enumerate(zip(values, types, strict=True))
        }
    )
    expected = arrow_matrix(table, dtype)
    got = values_matrix(values, types, dtype)
    assert expected is not None and got is not None
    assert identical(expected, got), (expected, got)
    assert got.flags.c_contiguous  # what sklearn_arrays proved the array model on


def test_values_matrix_refuses_other_types() -> None:
    assert values_matrix([["x"]], [pa.string()], np.float64) is None
    assert values_matrix([[1]], [pa.int64()], np.int64) is None
