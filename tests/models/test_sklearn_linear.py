"""A fitted linear model (behind imputers and scalers) predicts through numpy only when that
is proven at load, and then answers bit-identically to scikit-learn's own predict, raising
ValueError where it raises; anything else keeps scikit-learn's predict."""

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
from sklearn.impute import SimpleImputer
from sklearn.linear_model import (
    BayesianRidge,
    ElasticNet,
    Lasso,
    LinearRegression,
    LogisticRegression,
    Perceptron,
    Ridge,
    RidgeClassifier,
    SGDClassifier,
)
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import PolynomialFeatures, StandardScaler
from sklearn.svm import LinearSVC
from sklearn.tree import DecisionTreeClassifier

from featurehub import FeatureStore
from featurehub.models.flavors import _SklearnPredictor
from featurehub.models.loaded import ModelPredictError
from featurehub.models.sklearn_arrays import frame_of, identical
from featurehub.models.sklearn_linear import linear_predict
from tests.models.conftest import FEATURES, features_of

pytestmark = pytest.mark.filterwarnings(
    "ignore::sklearn.exceptions.ConvergenceWarning",
    "ignore:overflow encountered:RuntimeWarning",  # huge inputs: scikit-learn's too
    "ignore:invalid value encountered:RuntimeWarning",
)

CLASSIFIERS: dict[str, Any] = {
    "logistic": lambda: LogisticRegression(),
    "ridge classifier": lambda: RidgeClassifier(),
    "sgd": lambda: SGDClassifier(max_iter=20, tol=None, random_state=0),
    "perceptron": lambda: Perceptron(max_iter=20, tol=None, random_state=0),
    "linear svc": lambda: LinearSVC(max_iter=200),
    "imputer + logistic": lambda: make_pipeline(SimpleImputer(), LogisticRegression()),
    "median imputer + scaler + svc": lambda: make_pipeline(
        SimpleImputer(strategy="median"), StandardScaler(), LinearSVC(max_iter=200)
    ),
    "scaler without mean + logistic": lambda: make_pipeline(
        StandardScaler(with_mean=False), LogisticRegression()
    ),
    "passthrough + imputer + logistic": lambda: Pipeline(
        [("nothing", "passthrough"), ("impute", SimpleImputer()), ("lr", LogisticRegression())]
    ),
}
REGRESSORS: dict[str, Any] = {
    "linear regression": lambda: LinearRegression(),
    "ridge": lambda: Ridge(alpha=0.5),
    "lasso": lambda: Lasso(alpha=0.01),
    "elastic net without intercept": lambda: ElasticNet(alpha=0.01, fit_intercept=False),
    "imputer + scaler + ridge": lambda: make_pipeline(SimpleImputer(), StandardScaler(), Ridge()),
    "constant imputer + unscaled scaler + elastic net": lambda: make_pipeline(
        SimpleImputer(strategy="constant", fill_value=-1.5),
        StandardScaler(with_std=False),
        ElasticNet(alpha=0.01),
    ),
    "most frequent imputer + linear regression": lambda: make_pipeline(
        SimpleImputer(strategy="most_frequent"), LinearRegression()
    ),
}


def training(seed: int, width: int, classes: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Small random features (some missing, never a whole column) and labels of `classes`
    classes (each present), and a regression target."""
    rng = np.random.default_rng(seed)
    values = rng.normal(size=(40, width)) * rng.choice([0.01, 1.0, 100.0], size=width)
    values[rng.random(values.shape) < 0.1] = np.nan
    values[0] = rng.normal(size=width)  # a value in every column
    weights = rng.normal(size=(width, classes))
    labels = np.nan_to_num(values) @ weights
    labels = labels.argmax(axis=1) if classes > 2 else (labels[:, 0] > 0).astype(int)
    labels[:classes] = np.arange(classes)
    target = np.nan_to_num(values) @ weights[:, 0] + rng.normal()
    return values, labels, target


def fit(kind: str, seed: int, width: int, classes: int) -> Any:
    values, labels, target = training(seed, width, classes)
    pipelined = kind.split(" + ")[0].endswith("imputer") or "passthrough" in kind
    if not pipelined:  # only an imputer takes missing values
        values = np.nan_to_num(values)
    if kind in CLASSIFIERS:
        return CLASSIFIERS[kind]().fit(values, labels)
    return REGRESSORS[kind]().fit(values, target)


cells = st.one_of(
    st.floats(allow_nan=False, allow_infinity=False, min_value=-1e6, max_value=1e6),
    st.floats(allow_nan=False, allow_infinity=False),  # huge and tiny
    st.integers(-1000, 1000).map(float),
    st.sampled_from([np.nan, np.inf, -np.inf, 1e300, -1e300, 5e-324, -0.0]),
)


def inputs(width: int) -> st.SearchStrategy[np.ndarray]:
    return st.integers(1, 12).flatmap(
        lambda rows: arrays(np.float64, (rows, width), elements=cells)
    )


def answer(function: Any, values: np.ndarray) -> np.ndarray | None:
    """The prediction, or None when it raises ValueError."""
    try:
        return np.asarray(function(values))
    except ValueError:
        return None


def assert_same_as_sklearn(model: Any, values: np.ndarray) -> None:
    fast = linear_predict(model)
    assert fast is not None, f"{model} should predict through numpy"
    for rows in [values] + [values[i : i + 1] for i in range(len(values))]:
        expected, got = answer(model.predict, rows), answer(fast, rows)
        if expected is None:
            assert got is None, (rows, got)
        else:
            assert got is not None and identical(expected, got), (rows, expected, got)


@settings(max_examples=40, deadline=None)
@given(
    kind=st.sampled_from(sorted(CLASSIFIERS)),
    seed=st.integers(0, 2**16),
    width=st.integers(1, 5),
    classes=st.sampled_from([2, 2, 3, 4]),
    data=st.data(),
)
def test_classifiers_answer_as_sklearn(
    kind: str, seed: int, width: int, classes: int, data: st.DataObject
) -> None:
    model = fit(kind, seed, width, classes)
    assert_same_as_sklearn(model, data.draw(inputs(width)))


@settings(max_examples=30, deadline=None)
@given(
    kind=st.sampled_from(sorted(REGRESSORS)),
    seed=st.integers(0, 2**16),
    width=st.integers(1, 5),
    data=st.data(),
)
def test_regressors_answer_as_sklearn(
    kind: str, seed: int, width: int, data: st.DataObject
) -> None:
    model = fit(kind, seed, width, 2)
    assert_same_as_sklearn(model, data.draw(inputs(width)))


def test_string_classes_and_a_large_matrix() -> None:
    """Labels of any dtype come back as they are; a batch as large as batch scoring's gives
    the same bytes (BLAS' kernels for many rows)."""
    values, labels, _ = training(3, 8, 3)
    named = np.array(["low", "mid", "high"])[labels]
    model = make_pipeline(SimpleImputer(), StandardScaler(), LogisticRegression()).fit(
        values, named
    )
    rng = np.random.default_rng(1)
    big = rng.normal(size=(200_000, 8)) * 10
    big[rng.random(big.shape) < 0.05] = np.nan
    fast = linear_predict(model)
    assert fast is not None
    expected = model.predict(big)
    assert expected.dtype.kind == "U" and identical(expected, fast(big))


def test_the_errors_name_the_estimator() -> None:
    values, labels, _ = training(5, 3, 2)
    plain = linear_predict(LogisticRegression().fit(np.nan_to_num(values), labels))
    imputed = linear_predict(
        make_pipeline(SimpleImputer(), LogisticRegression()).fit(values, labels)
    )
    assert plain is not None and imputed is not None
    with pytest.raises(ValueError, match="NaN. LogisticRegression does not accept missing"):
        plain(np.array([[1.0, np.nan, 2.0]]))
    with pytest.raises(ValueError, match="infinity.*LogisticRegression does not accept inf"):
        plain(np.array([[1.0, np.inf, 2.0]]))
    with pytest.raises(ValueError, match="infinity.*SimpleImputer does not accept infinite"):
        imputed(np.array([[np.nan, -np.inf, 2.0]]))
    assert imputed(np.array([[np.nan, np.nan, np.nan]])).shape == (1,)


def test_other_inputs_go_to_sklearn() -> None:
    """Not the float64 C-ordered matrix of the model's width that was proven: scikit-learn's
    predict answers (or raises) as before."""
    values, labels, _ = training(9, 3, 2)
    model = LogisticRegression().fit(np.nan_to_num(values), labels)
    fast = linear_predict(model)
    assert fast is not None
    rows = np.nan_to_num(values[:5])
    for other in (np.asfortranarray(rows), rows.astype(np.float32), rows.tolist()):
        assert identical(np.asarray(model.predict(other)), fast(other))
    for wrong in (rows[:, :2], rows[:0]):
        with pytest.raises(ValueError):
            model.predict(wrong)
        with pytest.raises(ValueError):
            fast(wrong)


def unsupported(kind: str) -> Any:
    values, labels, target = training(11, 3, 2)
    finite = np.nan_to_num(values)
    multilabel = np.stack([labels, 1 - labels], axis=1)
    with_empty_column = np.column_stack([values, np.full(len(values), np.nan)])
    lr = LogisticRegression
    models = {
        "tree": lambda: DecisionTreeClassifier(max_depth=3).fit(finite, labels),
        "column transformer": lambda: make_pipeline(
            make_column_transformer((SimpleImputer(), [0, 2])), lr()
        ).fit(values, labels),
        "polynomial features": lambda: make_pipeline(
            SimpleImputer(), PolynomialFeatures(), lr()
        ).fit(values, labels),
        "imputer with indicator": lambda: make_pipeline(
            SimpleImputer(add_indicator=True), lr()
        ).fit(values, labels),
        "imputer writing in place": lambda: make_pipeline(SimpleImputer(copy=False), lr()).fit(
            values, labels
        ),
        "imputer dropping a column": lambda: make_pipeline(SimpleImputer(), lr()).fit(
            with_empty_column, labels
        ),
        "pandas output": lambda: (
            make_pipeline(SimpleImputer(), lr()).set_output(transform="pandas").fit(values, labels)
        ),
        "sparse coef": lambda: lr().fit(finite, labels).sparsify(),
        "bayesian ridge": lambda: BayesianRidge().fit(finite, target),
        "multilabel ridge classifier": lambda: RidgeClassifier().fit(finite, multilabel),
        "nested pipeline": lambda: make_pipeline(make_pipeline(SimpleImputer()), lr()).fit(
            values, labels
        ),
    }
    return models[kind]()


@pytest.mark.filterwarnings("ignore:Skipping features without any observed values")
@pytest.mark.parametrize(
    "kind",
    [
        "tree",
        "column transformer",
        "polynomial features",
        "imputer with indicator",
        "imputer writing in place",
        "imputer dropping a column",
        "pandas output",
        "sparse coef",
        "bayesian ridge",
        "multilabel ridge classifier",
        "nested pipeline",
    ],
)
def test_unsupported_models_keep_their_own_predict(kind: str) -> None:
    model = unsupported(kind)
    assert linear_predict(model) is None
    predictor = _SklearnPredictor(model)
    assert predictor.linear is None
    width = model.n_features_in_
    rows = np.linspace(-2.0, 2.0, 4 * width).reshape(4, width)
    assert identical(np.asarray(model.predict(rows)), np.asarray(predictor.predict_matrix(rows)))


def test_a_model_the_proof_refutes_keeps_its_own_predict() -> None:
    values, labels, target = training(13, 3, 2)
    ridge = Ridge().fit(np.nan_to_num(values), target)
    ridge.predict = lambda X: Ridge.predict(ridge, X) + 1e-12  # type: ignore[method-assign]
    assert linear_predict(ridge) is None
    pipeline = make_pipeline(SimpleImputer(), LogisticRegression()).fit(values, labels)
    final = pipeline.steps[-1][1]
    final.predict = lambda X: LogisticRegression.predict(final, X)[::-1].copy()
    assert linear_predict(pipeline) is None
    assert _SklearnPredictor(pipeline).linear is None


def test_the_proof_leaks_no_warning() -> None:
    values, labels, _ = training(17, 4, 2)
    model = make_pipeline(SimpleImputer(), StandardScaler(), LogisticRegression())
    model.fit(values, labels)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert linear_predict(model) is not None


def test_a_registered_pipeline_predicts_through_numpy(local_store: FeatureStore) -> None:
    """The demo's kind of model, fitted on the service's frame, registered and loaded: its
    matrix goes through numpy and answers as scikit-learn on the frame."""
    frame = features_of(local_store)
    features = frame[FEATURES].astype("float64")
    model = make_pipeline(SimpleImputer(), LogisticRegression())
    model.fit(features, (features["conv_rate"] > 0.5).astype(int))
    local_store.models.register(
        "driver_model", model, feature_service="driver_service", training_dataset="train"
    )
    loaded = local_store.models.load("driver_model:1")
    predictor = loaded.predictor
    assert isinstance(predictor, _SklearnPredictor) and predictor.linear is not None
    values = np.ascontiguousarray(features.to_numpy())
    values[::4, 0] = np.nan
    expected = model.predict(frame_of(values, FEATURES))
    assert identical(expected, np.asarray(predictor.predict_matrix(values)))
    for row in range(3):
        one = values[row : row + 1]
        assert identical(model.predict(frame_of(one, FEATURES)), predictor.predict_matrix(one))
    with pytest.raises(ValueError, match="SimpleImputer does not accept infinite"):
        predictor.predict_matrix(np.array([[np.inf, 1.0]]))
    table = local_store.get_dataset("train").to_arrow()
    assert identical(model.predict(features), loaded.predict_table(table))
    assert identical(model.predict(features), loaded.predict(pd.DataFrame(features)))


def test_a_missing_feature_is_the_model_error_it_was(local_store: FeatureStore) -> None:
    """A plain LogisticRegression takes no NaN: through numpy, as through scikit-learn, a
    row with a missing feature is a ModelPredictError (the server's 500 model_error) that
    names the estimator and counts the rows."""
    frame = features_of(local_store)
    features = frame[FEATURES].astype("float64")
    model = LogisticRegression().fit(features, (features["conv_rate"] > 0.5).astype(int))
    local_store.models.register(
        "driver_model", model, feature_service="driver_service", training_dataset="train"
    )
    loaded = local_store.models.load("driver_model:1")
    assert loaded.predictor.linear is not None  # type: ignore[attr-defined]
    table = local_store.get_dataset("train").to_arrow().slice(0, 3)
    conv_rate = table.column_names.index("conv_rate")
    holed = table.set_column(conv_rate, "conv_rate", pa.array([0.5, None, None], pa.float64()))
    with pytest.raises(ModelPredictError) as failed:
        loaded.predict_table(holed)
    message = str(failed.value)
    assert "model driver_model version 1 failed to predict (2 of 3 rows have a missing" in message
    assert "LogisticRegression does not accept missing values" in message
