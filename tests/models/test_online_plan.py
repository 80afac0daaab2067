"""`LoadedModel.predict_online` keeps a matrix plan per look-up (its projections object, as
the server passes its snapshot's): the same matrix as building it from the declared types
each time, whatever look-ups and predictors follow."""

from __future__ import annotations

import dataclasses
from datetime import datetime, timezone
from typing import Any

import numpy as np
import pandas as pd
import pytest

from featurehub import Field
from featurehub import types as t
from featurehub.definitions import FeatureView, FeatureViewProjection
from featurehub.models.flavors import values_matrix
from featurehub.models.loaded import MAX_PLANS, LoadedModel
from featurehub.online.lookup import OnlineResponse
from featurehub.registry.models import ModelError, ModelVersion, Signature, SignatureInput
from tests.online import make_view

VIEW = make_view(schema=[Field("a", t.Int64), Field("b", t.Float32), Field("c", t.Float64)])


class MatrixModel:
    """Takes a matrix and answers its first column; remembers what it was given."""

    def __init__(self, dtype: Any = np.float64) -> None:
        self.matrix_dtype = dtype
        self.seen: list[np.ndarray] = []

    def predict_matrix(self, values: np.ndarray) -> np.ndarray:
        self.seen.append(values)
        return values[:, 0]

    def predict(self, features: pd.DataFrame) -> np.ndarray:
        return features.to_numpy()[:, 0]


def loaded(predictor: Any, names: list[str]) -> LoadedModel:
    signature = Signature([SignatureInput(name, "Float64") for name in names], "float64")
    version = ModelVersion(
        name="m", version=1, flavor="pyfunc", artifact_sha256="0" * 64, artifact_path="x",
        feature_service="s", feature_service_version=1, training_dataset="d",
        training_dataset_fingerprint="f", signature=signature, created_by="t",
        created_at=datetime.now(timezone.utc),
    )  # fmt: skip
    return LoadedModel(version, predictor)


def response(
    view: FeatureView,
    columns: dict[str, list[Any]],
    names: list[str],
    projections: list[FeatureViewProjection] | None = None,
) -> OnlineResponse:
    """A look-up's answer; `projections` (the same object for the same look-up, as a
    snapshot's) defaults to a new one (another look-up)."""
    rows = len(next(iter(columns.values())))
    if projections is None:
        projections = [FeatureViewProjection(view, list(columns))]
    full = names != list(columns)
    answer = OnlineResponse(
        keys={"driver_id": list(range(rows))}, projections=projections, full_feature_names=full
    )
    answer.values.update(zip(names, columns.values(), strict=True))
    answer.sources.append((view, list(columns), names))
    return answer


def expected(answer: OnlineResponse, names: list[str], dtype: Any) -> np.ndarray:
    types = answer.declared_types()
    matrix = values_matrix([answer.values[n] for n in names], [types[n] for n in names], dtype)
    assert matrix is not None
    return matrix


def test_the_plan_gives_the_declared_types_matrix_for_each_shape() -> None:
    predictor = MatrixModel()
    model = loaded(predictor, ["c", "b", "a"])
    columns = {"a": [1, None, 3], "b": [0.1, 0.2, None], "c": [1e300, 2.5, 3.0]}
    looked_up = [FeatureViewProjection(VIEW, list(columns))]
    for _ in range(3):  # the same look-up: the cached plan
        first = response(VIEW, columns, ["a", "b", "c"], looked_up)
        model.predict_online(first)
        np.testing.assert_array_equal(predictor.seen[-1], expected(first, ["c", "b", "a"], float))
    assert len(model._plans) == 1
    # the same names from a view where b is a Float64 now (a new registry snapshot): no Float32
    # rounding of b, a plan of its own
    wider = dataclasses.replace(VIEW, schema=[Field("a", t.Int64), Field("b", t.Float64),
                                              Field("c", t.Float64)])  # fmt: skip
    second = response(wider, columns, ["a", "b", "c"])
    model.predict_online(second, [2, 0])
    np.testing.assert_array_equal(
        predictor.seen[-1], expected(second, ["c", "b", "a"], float)[[2, 0]]
    )
    assert predictor.seen[-1][1, 1] == 0.1 != predictor.seen[0][0, 1]
    # full feature names: other names of the same view; the model's are missing, as before
    full = response(VIEW, columns, ["stats__a", "stats__b", "stats__c"], looked_up)
    for _ in range(2):
        with pytest.raises(ModelError, match="the features c, b, a are missing"):
            model.predict_online(full)
    assert len(predictor.seen) == 4 and len(model._plans) == 3


def test_a_new_predictor_gets_its_own_plan_and_the_cache_is_bounded() -> None:
    model = loaded(MatrixModel(), ["a"])
    columns = {"a": [1, 2]}
    answer = response(VIEW, columns, ["a"])
    model.predict_online(answer)
    assert len(model._plans) == 1
    replaced = model.predictor = MatrixModel(np.float32)
    model.predict_online(answer)
    assert replaced.seen[-1].dtype == np.float32
    for index in range(MAX_PLANS + 5):
        model.predict_online(response(make_view(name=f"v{index}", schema=[Field("a", t.Int64)]),
                                      columns, ["a"]))  # fmt: skip
    assert len(model._plans) <= MAX_PLANS


def test_a_response_built_without_projections_is_not_cached() -> None:
    """Built by hand, it names no look-up: its plan is worked out each time."""
    predictor = MatrixModel()
    model = loaded(predictor, ["a"])
    for view in (VIEW, dataclasses.replace(VIEW, schema=[Field("a", t.Float32)])):
        answer = OnlineResponse(keys={"driver_id": [1]})
        answer.values["a"] = [0.1]
        answer.sources.append((view, ["a"], ["a"]))
        model.predict_online(answer)
    assert predictor.seen[0][0, 0] == 0.1 != predictor.seen[1][0, 0]  # Float32 rounding
    assert not model._plans
