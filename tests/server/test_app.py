"""The feature server's API: answers, metadata, probes, metrics, and 4xx for bad input."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

import orjson
import pytest
from fastapi.testclient import TestClient

from featurehub import FeatureStore
from featurehub.server import create_app
from tests.server.conftest import server_config


def test_feature_service_answer_is_columnar(client: TestClient) -> None:
    answer = client.post(
        "/v1/features",
        json={
            "feature_service": "dispatch",
            "entities": {"driver_id": [1001, 1003, 7], "zone": ["a", "b", "zz"]},
        },
        headers={"x-request-id": "abc-1"},
    )
    assert answer.status_code == 200, answer.text
    data = answer.json()
    assert data["request_id"] == "abc-1" == answer.headers["x-request-id"]
    assert data["feature_service"] == "dispatch"
    assert data["keys"] == {"driver_id": [1001, 1003, 7], "zone": ["a", "b", "zz"]}
    assert list(data["features"]) == ["conv_rate", "demand", "label"]
    conv = data["features"]["conv_rate"]
    assert conv["values"] == [0.5, None, None]
    assert conv["statuses"] == ["present", "expired", "not_found"]
    assert conv["event_timestamps"][2] is None
    assert datetime.fromisoformat(conv["event_timestamps"][0].replace("Z", "+00:00")).tzinfo
    assert data["features"]["label"]["values"] == ["north", "south", None]


def test_feature_list_and_full_names(client: TestClient) -> None:
    answer = client.post(
        "/v1/features",
        json={
            "features": ["driver_stats:*", "zone_stats:demand"],
            "entities": {"driver_id": [1002], "zone": ["b"], "unused": [1.5]},
            "full_feature_names": True,
        },
    )
    assert answer.status_code == 200, answer.text
    data = answer.json()
    assert data["feature_service"] is None
    assert set(data["features"]) == {
        "driver_stats__conv_rate",
        "driver_stats__trips_today",
        "zone_stats__demand",
    }
    assert data["features"]["driver_stats__trips_today"]["values"] == [2]


def test_metrics_export_each_views_freshness(client: TestClient) -> None:
    """Computed at scrape time from the refresher's registry figures: driver_stats' newest
    event is 3 hours old (tests/server/conftest.py), zone_stats' 5 minutes; neither has a
    schedule or freshness, so neither has a bound."""
    text = client.get("/metrics").text
    values = {
        line.split(" ")[0]: float(line.split(" ")[1])
        for line in text.splitlines()
        if line.startswith("featurehub_view_")
    }
    assert values['featurehub_view_staleness_seconds{view="driver_stats"}'] >= 3 * 3600
    assert values['featurehub_view_staleness_seconds{view="zone_stats"}'] >= 5 * 60
    assert values['featurehub_view_last_success_timestamp_seconds{view="zone_stats"}'] > 0
    assert not any(name.startswith("featurehub_view_freshness_seconds") for name in values)


def test_metadata_and_probes(client: TestClient) -> None:
    services = client.get("/v1/feature-services").json()["feature_services"]
    assert [s["name"] for s in services] == ["dispatch", "driver_service"]
    assert services[0]["features"] == [
        "driver_stats:conv_rate",
        "zone_stats:demand",
        "zone_stats:label",
    ]
    assert services[0]["join_keys"] == ["driver_id", "zone"]
    views = {v["name"]: v for v in client.get("/v1/feature-views").json()["feature_views"]}
    assert views["driver_stats"]["ttl_seconds"] == 2 * 86400
    assert views["zone_stats"]["features"][1] == {
        "name": "label",
        "dtype": "String",
        "description": "",
    }
    assert client.get("/healthz").json() == {"status": "ok"}
    ready = client.get("/readyz")
    assert ready.status_code == 200 and ready.json()["status"] == "ok"


def test_metrics(client: TestClient) -> None:
    client.post(
        "/v1/features",
        json={"feature_service": "driver_service", "entities": {"driver_id": [1001, 1003, 9]}},
    )
    client.post("/v1/features", json={"feature_service": "nope", "entities": {"driver_id": [1]}})
    text = client.get("/metrics").text
    labels = 'code="200",endpoint="/v1/features",feature_service="driver_service"'
    assert f"featurehub_requests_total{{{labels}}} 1.0" in text
    assert (
        'featurehub_request_seconds_bucket{endpoint="/v1/features",feature_service="driver_service"'
        in text
    )
    assert "featurehub_online_store_seconds_count 1.0" in text
    assert 'featurehub_errors_total{kind="not_found"} 1.0' in text
    assert 'featurehub_feature_values_total{status="not_found"} 2.0' in text  # 2 features x 1 row
    assert 'featurehub_feature_values_total{status="expired"} 2.0' in text
    assert "featurehub_serving_log_dropped_records_total 0.0" in text
    assert 'feature_service="nope"' not in text  # user input never becomes a label


def svc(entities: Any, name: Any = "driver_service", **extra: Any) -> dict[str, Any]:
    return {"feature_service": name, "entities": entities, **extra}


def feats(features: Any, entities: Any, **extra: Any) -> dict[str, Any]:
    return {"features": features, "entities": entities, **extra}


D1 = {"driver_id": [1]}
BAD: list[tuple[str, bytes | Any, int, str]] = [
    ("malformed json", b'{"features": [', 400, "not valid JSON"),
    ("not an object", [1, 2], 422, "JSON object"),
    ("unknown field", svc(D1, "dispatch", x=1), 422, "unknown field"),
    ("neither", {"entities": D1}, 422, "exactly one"),
    ("both", feats(["driver_stats:conv_rate"], D1, feature_service="dispatch"), 422, "exactly one"),
    ("unknown service", svc(D1, "dispach"), 404, "'dispach'"),
    ("service not a string", svc(D1, 3), 422, "feature_service"),
    ("unknown view", feats(["drivers:conv_rate"], D1), 404, "'drivers'"),
    ("unknown feature", feats(["driver_stats:conv"], D1), 422, "'conv'"),
    ("empty features", feats([], D1), 422, "non-empty"),
    ("feature not a string", feats([1], D1), 422, "view:feature"),
    ("no feature after colon", feats(["driver_stats:"], D1), 422, "no feature"),
    ("missing join key", svc(D1, "dispatch"), 422, "'zone'"),
    ("wrong key type", svc({"driver_id": ["1001"]}), 422, "driver_id"),
    ("string key given int", feats(["zone_stats:demand"], {"zone": [5]}), 422, "zone"),
    ("bool key", svc({"driver_id": [True]}), 422, "driver_id"),
    ("null key", svc({"driver_id": [None]}), 422, "driver_id"),
    ("float key", svc({"driver_id": [1.0]}), 422, "driver_id"),
    ("key beyond int64", svc({"driver_id": [2**63]}), 422, "64-bit"),
    ("not columnar", svc([{"driver_id": 1}]), 422, "columnar"),
    ("column not a list", svc({"driver_id": 1}), 422, "columnar"),
    ("lengths differ", svc({"driver_id": [1, 2], "zone": ["a"]}, "dispatch"), 422, "differ in"),
    ("no rows", svc({"driver_id": []}), 422, "no entity rows"),
    ("empty entities", svc({}), 422, "entities"),
    ("full names not bool", svc(D1, full_feature_names="yes"), 422, "full_feature_names"),
    (
        "service in a list",
        feats(["driver_stats:conv_rate", "dispatch"], {**D1, "zone": ["a"]}),
        200,
        "",
    ),
]


@pytest.mark.parametrize(("case", "body", "status", "words"), BAD, ids=[c[0] for c in BAD])
def test_bad_input_is_4xx_naming_the_problem(
    client: TestClient, case: str, body: Any, status: int, words: str
) -> None:
    content = body if isinstance(body, bytes) else orjson.dumps(body)
    answer = client.post("/v1/features", content=content)
    assert answer.status_code == status, answer.text
    if status != 200:
        data = answer.json()
        assert words in data["message"]
        assert data["error"] and data["request_id"]


def test_limits_answer_413(served_store: FeatureStore, log_root: Path) -> None:
    app = create_app(served_store, server_config(max_body_bytes=200, max_entities=3))
    with TestClient(app) as client:
        many = {"feature_service": "driver_service", "entities": {"driver_id": [1, 2, 3, 4]}}
        answer = client.post("/v1/features", json=many)
        assert answer.status_code == 413 and "at most 3" in answer.json()["message"]
        large = orjson.dumps(
            {"feature_service": "driver_service", "entities": {"driver_id": list(range(100))}}
        )
        answer = client.post("/v1/features", content=large)
        assert answer.status_code == 413 and "max_body_bytes" in answer.json()["message"]

        def chunks() -> Any:  # no Content-Length: counted while streaming
            yield large[:150]
            yield large[150:]

        answer = client.post("/v1/features", content=chunks())
        assert answer.status_code == 413, answer.text


def test_registry_not_readable_answers_503(
    served_store: FeatureStore, log_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken() -> None:
        raise RuntimeError("registry down")

    monkeypatch.setattr(served_store, "catalog", broken)
    with TestClient(create_app(served_store, server_config())) as client:
        answer = client.post(
            "/v1/features",
            json={"feature_service": "driver_service", "entities": {"driver_id": [1]}},
        )
        assert answer.status_code == 503 and "registry" in answer.json()["message"]
        assert client.get("/v1/feature-views").status_code == 503
        ready = client.get("/readyz")
        assert ready.status_code == 503 and ready.json()["registry"]["ok"] is False
        assert client.get("/healthz").status_code == 200


def test_a_bug_answers_json_500(
    client: TestClient, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    import featurehub.server.app as server_app

    def broken(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("a bug")

    monkeypatch.setattr(server_app, "lookup", broken)
    answer = client.post("/v1/features", json=svc(D1))
    assert answer.status_code == 500
    assert answer.json()["error"] == "internal"
    assert "a bug" in caplog.text
    assert 'featurehub_errors_total{kind="internal"} 1.0' in client.get("/metrics").text
