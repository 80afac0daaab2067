"""Definitions come from a snapshot refreshed in the background, never from the request path."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from featurehub import FeatureStore
from featurehub.config import load_config
from featurehub.server import create_app
from tests.server.conftest import DEFS, materialize, server_config

NEW_SERVICE = '\nextra = FeatureService(name="extra", features=[zones[["demand"]]])\n'


def test_no_registry_query_per_request(
    served_store: FeatureStore, log_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with TestClient(create_app(served_store, server_config())) as client:
        calls = []
        original = served_store.catalog

        def counted() -> object:
            calls.append(1)
            return original()

        monkeypatch.setattr(served_store, "catalog", counted)
        for _ in range(20):
            answer = client.post(
                "/v1/features",
                json={"features": ["driver_stats:conv_rate"], "entities": {"driver_id": [1]}},
            )
            assert answer.status_code == 200
        client.get("/v1/feature-services")
        assert calls == []


def test_refresh_picks_up_an_apply(tmp_path: Path) -> None:
    config = materialize(tmp_path / "repo")
    app = create_app(FeatureStore(config=config), server_config())
    with TestClient(app) as client:
        body = {"feature_service": "extra", "entities": {"zone": ["a"]}}
        assert client.post("/v1/features", json=body).status_code == 404
        (config.repo_path / "defs.py").write_text(DEFS + NEW_SERVICE)
        with FeatureStore(config=load_config(config.repo_path)) as other:
            other.apply()
        app.state.server.refresher.wake()  # what SIGHUP does
        deadline = time.monotonic() + 5
        while client.post("/v1/features", json=body).status_code != 200:
            assert time.monotonic() < deadline, "the new service never appeared"
            time.sleep(0.05)
        names = [s["name"] for s in client.get("/v1/feature-services").json()["feature_services"]]
        assert "extra" in names
