"""API keys: required everywhere but the probes when configured, never logged."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from featurehub import FeatureStore
from featurehub.config import load_config
from featurehub.errors import ConfigError
from featurehub.server import create_app
from tests.server.conftest import server_config

KEY = "s3cret-key-value"
BODY = {"feature_service": "driver_service", "entities": {"driver_id": [1001]}}


def test_api_keys(
    served_store: FeatureStore, log_root: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    app = create_app(served_store, server_config(api_keys=["other", KEY, ""]))
    with TestClient(app) as client:
        assert client.get("/healthz").status_code == 200
        assert client.get("/readyz").status_code == 200
        for path in ("/v1/feature-views", "/v1/feature-services", "/metrics", "/openapi.json"):
            assert client.get(path).status_code == 401
        refused = client.post("/v1/features", json=BODY, headers={"authorization": "Bearer nope"})
        assert refused.status_code == 401 and "API key" in refused.json()["message"]
        assert KEY not in refused.text
        assert client.post("/v1/features", json=BODY).status_code == 401
        ok = client.post("/v1/features", json=BODY, headers={"authorization": f"Bearer {KEY}"})
        assert ok.status_code == 200
        assert client.post("/v1/features", json=BODY, headers={"x-api-key": KEY}).status_code == 200
        schema = client.get("/openapi.json", headers={"x-api-key": KEY}).json()
        assert "bearer" in schema["components"]["securitySchemes"]
        assert "security" in schema["paths"]["/v1/features"]["post"]
        assert "security" not in schema["paths"]["/healthz"]["get"]
    assert KEY not in caplog.text


def test_no_keys_means_open(client: TestClient) -> None:
    assert client.get("/v1/feature-views").status_code == 200
    assert "securitySchemes" not in client.get("/openapi.json").json().get("components", {})


def write_repo(root: Path, server_section: str) -> Path:
    (root / "featurehub.yaml").write_text(
        "project: p\nserver:\n" + server_section + "serving_log:\n  sample_rates: {svc: 0.5}\n"
    )
    return root


def test_keys_from_the_environment(tmp_path: Path) -> None:
    repo = write_repo(tmp_path, "  api_keys: ['${FEATUREHUB_API_KEY:-}']\n")
    config = load_config(repo, env={"FEATUREHUB_API_KEY": KEY})
    assert config.server.accepted_keys() == [KEY]
    rates = config.serving_log
    assert rates.sample_rate_of("svc") == 0.5 and rates.sample_rate_of(None) == 1.0
    assert config.serving_log_root == tmp_path.resolve() / "data" / "serving_logs"


def test_only_empty_keys_refuse_to_start(served_store: FeatureStore, log_root: Path) -> None:
    # `api_keys: ["${FEATUREHUB_API_KEY:-}"]` with the variable unset: auth was meant
    repo = write_repo(log_root.parent, "  api_keys: ['${FEATUREHUB_API_KEY:-}', '']\n")
    server = load_config(repo, env={}).server
    with pytest.raises(ConfigError, match=r"server.api_keys lists 2 key\(s\), all empty"):
        server.accepted_keys()
    with pytest.raises(ConfigError, match="set the variable, or write `auth: none`"):
        create_app(served_store, server)


def test_auth_none_serves_without_keys(served_store: FeatureStore, log_root: Path) -> None:
    repo = write_repo(log_root.parent, "  auth: none\n  api_keys: ['${FEATUREHUB_API_KEY:-}']\n")
    server = load_config(repo, env={}).server
    assert server.accepted_keys() == []
    app = create_app(served_store, server)
    with TestClient(app) as client:
        assert client.post("/v1/features", json=BODY).status_code == 200
    # auth: none with a real key is a contradiction, refused when the file is read
    with pytest.raises(ConfigError, match="featurehub.yaml: server: .*auth is none but api_keys"):
        load_config(repo, env={"FEATUREHUB_API_KEY": KEY})
