"""Redis down or slow: 503 within the timeout, /readyz says so, and recovery is automatic.

Uses a redis-server of its own (stopped and restarted here), never the session one.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from featurehub import FeatureStore
from featurehub.server import create_app
from tests.redis_server import RedisServer
from tests.server.conftest import materialize, server_config

TIMEOUT = 0.3
BODY = {"feature_service": "driver_service", "entities": {"driver_id": [1001]}}


@pytest.fixture
def private_redis() -> Iterator[RedisServer]:
    with RedisServer() as server:
        yield server


@pytest.fixture
def store(private_redis: RedisServer, tmp_path: Path) -> Iterator[FeatureStore]:
    config = materialize(tmp_path / "repo", online_url=private_redis.url, project="outage")
    online = config.online_store.model_copy(update={"timeout_seconds": TIMEOUT})
    with FeatureStore(config=config.model_copy(update={"online_store": online})) as store:
        yield store


@pytest.fixture
def client(store: FeatureStore, tmp_path: Path) -> Iterator[TestClient]:
    with TestClient(create_app(store, server_config())) as test_client:
        yield test_client


def timed_post(client: TestClient) -> tuple[int, float]:
    started = time.monotonic()
    answer = client.post("/v1/features", json=BODY)
    return answer.status_code, time.monotonic() - started


def wait_for_200(client: TestClient) -> None:
    deadline = time.monotonic() + 5
    while timed_post(client)[0] != 200:
        assert time.monotonic() < deadline, "the server did not recover"
        time.sleep(0.05)


def test_redis_down_then_back(
    client: TestClient, store: FeatureStore, private_redis: RedisServer
) -> None:
    assert client.post("/v1/features", json=BODY).json()["features"]["conv_rate"]["values"] == [0.5]
    private_redis.stop()
    status, seconds = timed_post(client)
    assert status == 503 and seconds < TIMEOUT + 0.5
    answer = client.post("/v1/features", json=BODY)
    assert answer.status_code == 503
    assert answer.json()["error"] == "online_store_unavailable"
    message = answer.json()["message"]  # the breaker's answer: the store's error, once
    assert message.count("unavailable") == 1 and message.endswith("retry later"), message
    ready = client.get("/readyz")
    assert ready.status_code == 503 and ready.json()["online_store"]["ok"] is False
    assert client.get("/healthz").status_code == 200
    assert "featurehub_online_store_up 0.0" in client.get("/metrics").text
    private_redis.start()  # same port, empty: values are now not_found
    wait_for_200(client)
    statuses = client.post("/v1/features", json=BODY).json()["features"]["conv_rate"]["statuses"]
    assert statuses == ["not_found"]
    # It answers, but lost its data: /readyz and /metrics say so, and name the fix.
    ready = client.get("/readyz")
    assert ready.status_code == 503 and ready.json()["online_store"]["ok"] is True
    lost = ready.json()["online_data"]["lost_views"]
    assert set(lost) == {"driver_stats", "zone_stats"}
    assert "featurehub materialize --online-only" in lost["driver_stats"]
    assert "featurehub_online_views_lost 2.0" in client.get("/metrics").text
    rebuilt = store.rebuild_online()
    assert {r.view: r.online_rows_written for r in rebuilt} == {"driver_stats": 3, "zone_stats": 2}
    assert client.get("/readyz").status_code == 200
    answer = client.post("/v1/features", json=BODY).json()["features"]["conv_rate"]
    assert (answer["statuses"], answer["values"]) == (["present"], [0.5])


def test_redis_slow_fails_fast(client: TestClient, private_redis: RedisServer) -> None:
    assert private_redis._process is not None
    pid = private_redis._process.pid
    os.kill(pid, signal.SIGSTOP)  # answers nothing: every call times out
    try:
        status, seconds = timed_post(client)
        assert status == 503 and seconds < TIMEOUT + 0.5
        # the breaker is open: the next requests do not wait for the timeout
        for _ in range(5):
            status, seconds = timed_post(client)
            assert status == 503 and seconds < TIMEOUT / 2
    finally:
        os.kill(pid, signal.SIGCONT)
    wait_for_200(client)
