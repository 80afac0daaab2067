"""Artifacts: checked against their sha256 before every load; skops refuses untrusted types;
a pyfunc's source is part of what was registered; writes leave nothing half-written."""

from __future__ import annotations

from pathlib import Path

import pytest
import skops.io
from sklearn.linear_model import LogisticRegression

from featurehub import FeatureStore
from featurehub.models import ArtifactError
from tests.models.conftest import FEATURES, build_model_repo, features_of, train

UNTRUSTED = f"{__name__}.Thresholded"


class Thresholded(LogisticRegression):
    """A class skops has never heard of: loading it would run its code."""


def _register(store: FeatureStore, model: object) -> object:
    return store.models.register(
        "driver_model", model, feature_service="driver_service", training_dataset="train"
    )


def _artifact(store: FeatureStore, reference: str) -> Path:
    version = store.models.get(reference)
    return store.config.model_artifact_root / version.artifact_path


def test_a_tampered_artifact_is_never_loaded(local_store: FeatureStore) -> None:
    _register(local_store, train(local_store))
    path = _artifact(local_store, "driver_model:1")
    original = path.read_bytes()
    path.write_bytes(original[:-1] + bytes([original[-1] ^ 1]))
    with pytest.raises(ArtifactError, match="does not match|the file was changed, so it is not"):
        local_store.models.load("driver_model:1")
    path.unlink()
    with pytest.raises(ArtifactError, match="is missing"):
        local_store.models.load("driver_model:1")
    path.write_bytes(original)
    assert local_store.models.load("driver_model:1").version.version == 1


def test_skops_refuses_an_untrusted_type(local_store: FeatureStore, local_repo: Path) -> None:
    frame = features_of(local_store)
    model = Thresholded().fit(frame[FEATURES].astype(float), (frame["conv_rate"] > 0.5).astype(int))
    with pytest.raises(ArtifactError, match=f"types skops does not trust.*{UNTRUSTED}"):
        _register(local_store, model)
    skops.io.dump(model, local_repo / "custom.skops")
    with pytest.raises(ArtifactError, match="models.trusted_types"):
        _register(local_store, local_repo / "custom.skops")
    assert local_store.models.list() == []
    (local_repo / "junk.skops").write_bytes(b"not a zip")
    with pytest.raises(ArtifactError, match="is not a skops file"):
        _register(local_store, local_repo / "junk.skops")


def test_trusted_types_let_a_listed_type_in(tmp_path: Path) -> None:
    repo = build_model_repo(
        tmp_path / "repo",
        "sqlite:///data/registry.db",
        f"models:\n  trusted_types: [{UNTRUSTED}]\n",
    )
    with FeatureStore(repo) as store:
        frame = features_of(store)
        labels = (frame["conv_rate"] > 0.5).astype(int)
        model = Thresholded().fit(frame[FEATURES].astype(float), labels)
        _register(store, model)
        loaded = store.models.load("driver_model:1")
        assert type(loaded.predictor.model).__name__ == "Thresholded"  # type: ignore[attr-defined]
        assert list(loaded.predict(frame)) == list(model.predict(frame[FEATURES].astype(float)))


def test_a_changed_pyfunc_source_is_refused(local_store: FeatureStore, local_repo: Path) -> None:
    source = local_repo / "rules.py"
    source.write_text(
        "class Rule:\n    def predict(self, features):\n        return features['trips_today']\n"
    )
    _register(local_store, "rules:Rule")
    source.write_text(source.read_text() + "# edited\n")
    with pytest.raises(ArtifactError, match="rules.py changed since this version was registered"):
        local_store.models.load("driver_model:1")


def test_artifacts_are_content_addressed_and_written_whole(local_store: FeatureStore) -> None:
    _register(local_store, train(local_store))
    path = _artifact(local_store, "driver_model:1")
    version = local_store.models.get("driver_model:1")
    assert path.name == f"{version.artifact_sha256}.skops"
    assert path.parent.name == version.artifact_sha256[:2]
    root = local_store.config.model_artifact_root
    assert [p.name for p in root.rglob("*") if p.is_file()] == [path.name]  # no temp file left


def test_the_artifact_root_is_configurable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    repo = build_model_repo(tmp_path / "repo", "sqlite:///data/registry.db")
    monkeypatch.setenv("FEATUREHUB_MODEL_ARTIFACT_ROOT", str(tmp_path / "artifacts"))
    with FeatureStore(repo) as store:
        _register(store, train(store))
        assert _artifact(store, "driver_model:1").is_relative_to(tmp_path / "artifacts")
