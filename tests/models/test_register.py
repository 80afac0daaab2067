"""Registering versions in all three flavors, and the bad inputs that change nothing."""

from __future__ import annotations

import textwrap
from pathlib import Path

import numpy as np
import pytest
import skops.io
from skl2onnx import to_onnx

from featurehub import FeatureStore
from featurehub.errors import FeaturehubError, NotFoundError
from featurehub.models import ModelError
from tests.models.conftest import FEATURES, expected_predictions, features_of, train

PYFUNC = """
import pandas as pd


class HighConversion:
    \"\"\"A hand-written rule: is the conversion rate above one half?\"\"\"

    def predict(self, features: pd.DataFrame):
        return (features["conv_rate"] > 0.5).astype("int64").to_numpy()
"""


def _register(store: FeatureStore, model: object, **extra: object) -> object:
    options: dict[str, object] = {
        "feature_service": "driver_service",
        "training_dataset": "train",
        **extra,
    }
    return store.models.register("driver_model", model, **options)  # type: ignore[arg-type]


def test_versions_are_numbered_and_recorded(model_store: FeatureStore) -> None:
    """On both registries: numbers from 1, every field recorded, the latest is NAME."""
    model = train(model_store)
    first = _register(
        model_store, model, metrics={"accuracy": 0.91}, params={"C": 1.0}, description="first"
    )
    second = _register(model_store, train(model_store, c=0.1))
    assert (first.version, second.version) == (1, 2)  # type: ignore[attr-defined]
    got = model_store.models.get("driver_model:1")
    assert got == first
    assert got.flavor == "sklearn"
    assert got.metrics == {"accuracy": 0.91} and got.params == {"C": "1.0"}
    assert got.description == "first" and got.created_by
    assert got.feature_service == "driver_service" and got.feature_service_version == 1
    dataset = model_store.get_dataset("train")
    assert got.training_dataset == "train"
    assert got.training_dataset_fingerprint == dataset.fingerprint
    assert got.signature.to_dict() == {
        "inputs": [
            {"name": "conv_rate", "type": "Float64"},
            {"name": "trips_today", "type": "Int64"},
        ],
        "output": "int64",
    }
    assert model_store.models.get("driver_model").version == 2
    assert model_store.models.get("models:/driver_model/2") == second
    assert [v.version for v in model_store.models.list()] == [2]
    assert [v.version for v in model_store.models.versions("driver_model")] == [1, 2]
    # The same bytes are stored once.
    assert (model_store.config.model_artifact_root / got.artifact_path).is_file()


def test_three_flavors_predict_the_same(local_store: FeatureStore, local_repo: Path) -> None:
    model = train(local_store)
    frame = features_of(local_store)
    expected = expected_predictions(model, frame)

    skops_path = local_repo / "model.skops"
    skops.io.dump(model, skops_path)
    onnx_model = to_onnx(model, frame[FEATURES].to_numpy(dtype=np.float32)[:1])
    onnx_path = local_repo / "model.onnx"
    onnx_path.write_bytes(onnx_model.SerializeToString())
    (local_repo / "rules.py").write_text(textwrap.dedent(PYFUNC))

    registered = [
        _register(local_store, model),
        _register(local_store, skops_path),
        _register(local_store, onnx_model),
        _register(local_store, str(onnx_path)),
        _register(local_store, "rules:HighConversion"),
    ]
    flavors = [v.flavor for v in registered]  # type: ignore[attr-defined]
    assert flavors == ["sklearn", "sklearn", "onnx", "onnx", "pyfunc"]
    # The same bytes registered again are stored once (content-addressed).
    again = _register(local_store, skops_path)
    assert again.artifact_path == registered[1].artifact_path  # type: ignore[attr-defined]
    for version in range(1, 7):
        loaded = local_store.models.load(f"driver_model:{version}")
        predictions = loaded.predict(frame)  # extra columns (keys, times) are ignored
        assert list(predictions) == list(expected), version
        assert loaded.version.version == version


def _nothing_registered(store: FeatureStore) -> None:
    assert store.models.list() == []
    root = store.config.model_artifact_root
    assert not root.exists() or not any(p.is_file() for p in root.rglob("*"))


def test_bad_input_is_a_clear_error_that_changes_nothing(
    local_store: FeatureStore, local_repo: Path
) -> None:
    model = train(local_store)
    entities = str(local_repo / "data" / "entities.parquet")
    local_store.datasets.save("by_features", entities, ["driver_stats:conv_rate"])
    (local_repo / "model.pkl").write_bytes(b"\x80\x04K\x01.")
    narrow = train(local_store)
    narrow.fit(features_of(local_store)[["conv_rate"]], [0, 1] * 29)

    cases: list[tuple[dict[str, object], type[FeaturehubError], str]] = [
        ({"feature_service": "nope"}, NotFoundError, "unknown feature service 'nope'"),
        ({"training_dataset": "nope"}, NotFoundError, "no dataset named 'nope'"),
        ({"training_dataset": "by_features"}, ModelError, "not of a feature service"),
        ({"metrics": {"accuracy": "high"}}, ModelError, "a metric is a finite number"),
        ({"metrics": {"bad name": 1}}, ModelError, "metric name 'bad name' is invalid"),
        ({"flavor": "pickle"}, ModelError, "unknown flavor 'pickle'"),
    ]
    for options, error, message in cases:
        with pytest.raises(error, match=message):
            _register(local_store, model, **options)
    with pytest.raises(ModelError, match="featurehub loads no pickle"):
        _register(local_store, local_repo / "model.pkl")
    with pytest.raises(ModelError, match="signature does not match"):
        _register(local_store, narrow)
    with pytest.raises(ModelError, match="does not exist"):
        _register(local_store, local_repo / "missing.skops")
    with pytest.raises(ModelError, match="not a file of the feature repo"):
        _register(local_store, "nowhere:Model")
    for bad in ("../escape", "a;b", "x/y"):
        with pytest.raises(ModelError, match="model name"):
            local_store.models.register(
                bad, model, feature_service="driver_service", training_dataset="train"
            )
    _nothing_registered(local_store)


def test_a_model_that_cannot_predict_on_the_service_is_refused(
    local_store: FeatureStore, local_repo: Path
) -> None:
    (local_repo / "broken.py").write_text(
        "class WantsOtherFeatures:\n"
        "    def predict(self, features):\n"
        "        return features['acc_rate']\n"
    )
    with pytest.raises(ModelError, match="cannot predict on the features of 'driver_service'"):
        _register(local_store, "broken:WantsOtherFeatures")
    _nothing_registered(local_store)


def test_unknown_references(local_store: FeatureStore) -> None:
    _register(local_store, train(local_store))
    with pytest.raises(NotFoundError, match="no model named 'driver_modl'.*Did you mean"):
        local_store.models.get("driver_modl")
    with pytest.raises(NotFoundError, match="has no version 7; its versions are 1"):
        local_store.models.get("driver_model:7")
    with pytest.raises(NotFoundError, match="has no alias 'production'.*models promote"):
        local_store.models.load("models:/driver_model@production")
