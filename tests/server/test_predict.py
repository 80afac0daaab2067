"""POST /v1/models/{name}/predict: predictions equal the loaded model's on the same online
features; traffic policies (canary, shadow, A/B) split by a key hash that a brute-force
oracle recomputes; a policy change is picked up without a restart; a failing canary's rows are
answered by production and the canary rolled back by the server; unused versions are unloaded
and a missing one remembered until the next registry read; bad input is a 4xx and a failing
model a 500 named model_error."""

from __future__ import annotations

import hashlib
import json
import textwrap
import threading
import time
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline

from featurehub import FeatureStore
from featurehub.models import ModelError
from featurehub.models.traffic import BUCKETS, assign, bucket, shadow_version
from featurehub.monitoring import read_serving_log
from featurehub.registry.traffic import Route, TrafficPolicy
from featurehub.server import create_app
from tests.models.conftest import FEATURES, build_model_repo
from tests.repos import BASE
from tests.server.conftest import server_config, with_serving_log

TIMESTAMP = pa.timestamp("us", tz="UTC")

MODEL = "driver_model"
KNOWN = [1000, 1001, 1002]

# Version 3: a pyfunc that fails on rows whose features are missing (unknown drivers).
FRAGILE = """
import pandas as pd


class FailsOnMissing:
    def predict(self, features: pd.DataFrame):
        if features["conv_rate"].isna().any():
            raise ValueError("conv_rate is missing")
        return (features["conv_rate"] > 0.25).astype("int64").to_numpy()
"""


def fit(store: FeatureStore, c: float) -> Any:
    """A LogisticRegression behind an imputer (unknown drivers have no features)."""
    frame = store.get_dataset("train").to_pandas()
    features = frame[FEATURES].astype("float64")
    labels = (features["conv_rate"] > 0.5).astype(int)
    return make_pipeline(SimpleImputer(), LogisticRegression(C=c)).fit(features, labels)


def build(root: Path, models_yaml: str = "") -> Path:
    """Versions 1 (production) and 2 (sklearn), 3 (the fragile pyfunc)."""
    repo = build_model_repo(root, "sqlite:///data/registry.db", models_yaml)
    (repo / "fragile.py").write_text(textwrap.dedent(FRAGILE))
    options = {"feature_service": "driver_service", "training_dataset": "train"}
    now = datetime.now(timezone.utc)
    source = repo / "data" / "drivers.parquet"
    fresh = pa.table(
        {
            "driver_id": pa.array(KNOWN, pa.int64()),
            "event_timestamp": pa.array([now - timedelta(hours=1)] * 3, TIMESTAMP),
            "created": pa.array([now - timedelta(hours=1)] * 3, TIMESTAMP),
            "conv_rate": [0.2, 0.6, 0.9],
            "trips_today": pa.array([3, 7, 11], pa.int64()),
            "city": ["x"] * 3,
        }
    )
    pq.write_table(pa.concat_tables([pq.read_table(source), fresh]), source)
    with FeatureStore(repo) as store:
        store.materialize(BASE, now + timedelta(minutes=1))  # KNOWN have fresh values online
        store.models.register(MODEL, fit(store, 1.0), **options)
        store.models.register(MODEL, fit(store, 0.001), **options)
        store.models.register(MODEL, "fragile:FailsOnMissing", flavor="pyfunc", **options)
        store.models.promote(MODEL, 1, "production")
    return repo


@pytest.fixture(scope="module")
def model_repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build(tmp_path_factory.mktemp("predict") / "repo")


@pytest.fixture
def store(model_repo: Path) -> Iterator[FeatureStore]:
    with FeatureStore(model_repo) as opened:
        opened.models.traffic(MODEL, production_only=True)
        yield opened


@pytest.fixture
def client(store: FeatureStore) -> Iterator[TestClient]:
    with TestClient(create_app(store, server_config())) as test_client:
        yield test_client


def refresh(client: TestClient) -> None:
    """What the background thread does every registry.refresh_seconds (or on SIGHUP)."""
    client.app.state.server.refresher.refresh()  # type: ignore[attr-defined]


def predict(client: TestClient, keys: list[int], **extra: Any) -> Any:
    body = {"entities": {"driver_id": keys}, **extra}
    return client.post(f"/v1/models/{MODEL}/predict", json=body)


def expected(store: FeatureStore, version: int, keys: list[int]) -> list[Any]:
    """The loaded model's predictions on the online features of `keys` (the SDK's path)."""
    online = store.get_online_features("driver_service", {"driver_id": keys}, log=False)
    return store.models.load(f"{MODEL}:{version}").predict(online.to_pandas()).tolist()


def oracle_bucket(salt: str, key: list[Any]) -> int:
    """The documented bucket, computed another way: hex digits instead of bytes."""
    text = json.dumps(key, separators=(",", ":"), ensure_ascii=False)
    digest = hashlib.sha256(f"{salt}\0{text}".encode()).hexdigest()
    return int(digest[:16], 16) % 10_000


# -- the endpoint ------------------------------------------------------------------------------


def test_predictions_equal_the_loaded_models(client: TestClient, store: FeatureStore) -> None:
    keys = [*KNOWN, 424242]  # the last has no features: the imputer fills them
    answer = predict(client, keys, include_features=True)
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["model"] == MODEL and body["version"] == 1 and body["arm"] == "production"
    assert body["request_id"] == answer.headers["x-request-id"]
    assert body["predictions"] == expected(store, 1, keys)
    assert body["versions"] == [1] * 4 and body["arms"] == ["production"] * 4
    online = store.get_online_features("driver_service", {"driver_id": keys}, log=False)
    assert body["features"] == {name: online.values[name] for name in FEATURES}
    assert body["features"]["conv_rate"] == [0.2, 0.6, 0.9, None]
    assert "features" not in predict(client, keys).json()

    pinned = predict(client, keys, version=2).json()
    assert (pinned["version"], pinned["arm"]) == (2, "pinned")
    assert pinned["predictions"] == expected(store, 2, keys)


@pytest.mark.parametrize(
    ("body", "status", "kind"),
    [
        (b"{not json", 400, "malformed_json"),
        (b"[1, 2]", 422, "bad_request"),
        (b'{"entities": {"driver_id": [1]}, "extra": 1}', 422, "bad_request"),
        (b'{"entities": {"driver_id": [1]}, "version": "2"}', 422, "bad_request"),
        (b'{"entities": {"driver_id": [1]}, "version": 0}', 422, "bad_request"),
        (b'{"entities": {"driver_id": [1]}, "version": true}', 422, "bad_request"),
        (b'{"entities": {"driver_id": [1]}, "version": 18446744073709551616}', 422, "bad_request"),
        (b'{"entities": {"driver_id": [1]}, "version": 2147483648}', 422, "bad_request"),
        (b'{"entities": {"driver_id": [1]}, "include_features": 1}', 422, "bad_request"),
        (b"{}", 422, "invalid_entities"),
        (b'{"entities": {"zone": ["a"]}}', 422, "invalid_entities"),
        (b'{"entities": {"driver_id": ["x"]}}', 422, "invalid_entities"),
        (b'{"entities": {"driver_id": []}}', 422, "invalid_entities"),
        (b'{"entities": {"driver_id": [1]}, "version": 99}', 404, "not_found"),
    ],
)
def test_bad_requests_are_4xx(client: TestClient, body: bytes, status: int, kind: str) -> None:
    answer = client.post(
        f"/v1/models/{MODEL}/predict", content=body, headers={"content-type": "application/json"}
    )
    assert answer.status_code == status, answer.text
    assert answer.json()["error"] == kind
    assert answer.json()["message"]


BODIES = st.fixed_dictionaries(
    {},
    optional={
        "entities": st.one_of(
            st.dictionaries(
                st.sampled_from(["driver_id", "zone"]),
                st.lists(
                    st.one_of(st.integers(-(2**64), 2**64), st.text(max_size=3), st.none()),
                    max_size=4,
                ),
                max_size=2,
            ),
            st.lists(st.integers(), max_size=2),
            st.none(),
        ),
        "version": st.one_of(st.sampled_from([1, 2, 99, 0, -1]), st.text(max_size=2)),
        "include_features": st.one_of(st.booleans(), st.integers()),
        "other": st.integers(),
    },
)


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(body=BODIES)
def test_no_body_gets_a_5xx(client: TestClient, body: dict[str, Any]) -> None:
    """Versions 1 and 2 impute missing features: nothing a client sends is a server error."""
    answer = client.post(f"/v1/models/{MODEL}/predict", json=body)
    assert answer.status_code < 500, answer.text
    if answer.status_code != 200:
        assert set(answer.json()) == {"error", "message", "request_id"}


def test_unknown_model_is_404(client: TestClient) -> None:
    answer = client.post("/v1/models/no_such/predict", json={"entities": {"driver_id": [1]}})
    assert answer.status_code == 404
    assert answer.json()["error"] == "model_not_found"
    assert "featurehub models promote no_such" in answer.json()["message"]
    assert client.post("/v1/models/a/b/predict", json={}).status_code == 404  # not a name
    invalid = client.post("/v1/models/0/predict", json={"entities": {"driver_id": [1]}})
    assert invalid.status_code == 404 and "model name '0' is invalid" in invalid.text


def test_a_failing_model_is_a_500_model_error(client: TestClient) -> None:
    assert predict(client, KNOWN, version=3).status_code == 200
    answer = predict(client, [1000, 424242], version=3)
    assert answer.status_code == 500
    assert answer.json()["error"] == "model_error"
    assert "model driver_model version 3 failed to predict" in answer.json()["message"]
    assert "conv_rate is missing" in answer.json()["message"]


# -- traffic -----------------------------------------------------------------------------------


@settings(max_examples=300, deadline=None)
@given(
    salt=st.text(min_size=1, max_size=20),
    key=st.lists(st.one_of(st.integers(-(2**63), 2**63 - 1), st.text(max_size=10)), max_size=3),
)
def test_bucket_is_the_documented_hash(salt: str, key: list[Any]) -> None:
    assert bucket(salt, key) == oracle_bucket(salt, key)
    assert 0 <= bucket(salt, key) < BUCKETS


def test_canary_splits_by_key(client: TestClient, store: FeatureStore) -> None:
    store.models.traffic(MODEL, canary="2:20", reason="try C=0.001")
    refresh(client)
    keys = list(range(5_000))
    arms: list[str] = []
    for first in range(0, len(keys), 500):
        batch = keys[first : first + 500]
        body = predict(client, batch).json()
        arms += body["arms"]
        by_version = {1: [], 2: []}  # type: dict[int, list[int]]
        for key, version in zip(batch, body["versions"], strict=True):
            by_version[version].append(key)
        for version, chosen in by_version.items():
            got = [p for p, v in zip(body["predictions"], body["versions"], strict=True)]
            assert [g for g, v in zip(got, body["versions"], strict=True) if v == version] == (
                expected(store, version, chosen) if chosen else []
            )
    oracle = ["canary" if oracle_bucket(MODEL, [k]) < 2_000 else "production" for k in keys]
    assert arms == oracle
    share = arms.count("canary") / len(arms)
    assert 0.18 < share < 0.22
    again = predict(client, keys[:500]).json()["arms"]
    assert again == arms[:500]  # a key stays in its arm
    events = store.models.traffic_history(MODEL)
    assert events[-1].policy.to_dict() == {"policy": "canary", "version": 2, "percent": 20.0}
    assert events[-1].reason == "try C=0.001"


def test_ab_and_shadow(client: TestClient, store: FeatureStore) -> None:
    store.models.traffic(MODEL, ab="2:50")
    refresh(client)
    keys = list(range(2_000))
    body = predict(client, keys[:1000]).json()
    assert set(body["arms"]) == {"a", "b"} and body["arm"] == "mixed"
    assert body["version"] is None
    assert body["arms"] == ["b" if oracle_bucket(MODEL, [k]) < 5_000 else "a" for k in keys[:1000]]

    store.models.traffic(MODEL, shadow=2)
    refresh(client)
    body = predict(client, KNOWN).json()
    assert (body["version"], body["arm"]) == (1, "production")
    assert body["predictions"] == expected(store, 1, KNOWN)
    metrics = client.get("/metrics").text
    assert (
        'featurehub_model_requests_total{arm="shadow",code="200",model="driver_model",version="2"}'
        in metrics
    )


def test_a_promoted_canary_is_production() -> None:
    """Until someone sets --production-only, a canary promoted to production splits nothing."""
    for policy in (TrafficPolicy("canary", 2, 50.0), TrafficPolicy("ab", 2, 50.0)):
        versions, arms = assign(MODEL, Route(2, policy, 7), [[k] for k in range(100)])
        assert set(versions) == {2} and set(arms) == {"production"}
    assert shadow_version(Route(2, TrafficPolicy("shadow", 2), 7)) is None


def test_policy_checks(store: FeatureStore) -> None:
    with pytest.raises(ModelError, match="production version"):
        store.models.traffic(MODEL, canary="1:5")
    with pytest.raises(ModelError, match="VERSION:PERCENT"):
        store.models.traffic(MODEL, canary="2")
    with pytest.raises(ModelError, match="strictly between 0 and 100"):
        store.models.traffic(MODEL, ab="2:100")
    with pytest.raises(ModelError, match="exactly one"):
        store.models.traffic(MODEL, canary="2:5", shadow=2)
    with pytest.raises(ModelError, match="no version 9"):
        store.models.traffic(MODEL, shadow=9)


def test_predict_metrics(client: TestClient) -> None:
    predict(client, KNOWN)
    predict(client, [424242], version=3)
    text = client.get("/metrics").text
    labels = 'arm="production",code="200",model="driver_model",version="1"'
    assert f"featurehub_model_requests_total{{{labels}}}" in text
    assert 'featurehub_model_requests_total{arm="pinned",code="500"' in text
    assert 'featurehub_model_request_seconds_bucket{arm="production"' in text
    # the model's own predict, once per request that it answered
    assert 'featurehub_model_predict_seconds_count{model="driver_model",version="1"} 1.0' in text
    assert (
        'featurehub_model_predictions_count{arm="production",model="driver_model",version="1"} 3.0'
        in text
    )


# -- automatic rollback ------------------------------------------------------------------------


def test_a_failing_canary_is_answered_by_production_and_rolled_back(tmp_path: Path) -> None:
    yaml = "models:\n  canary: {max_error_rate: 0.2, window: 10}\n"
    repo = build(tmp_path / "repo", yaml)
    canary_keys = [k for k in range(100_000, 101_000) if bucket(MODEL, [k]) < 5_000][:20]
    stay = [k for k in range(100_000, 101_000) if bucket(MODEL, [k]) >= 5_000][:2]
    log_root = tmp_path / "logs"
    with FeatureStore(repo) as plain:
        config = with_serving_log(plain.config, log_root)
    store = FeatureStore(config=config)
    with store, TestClient(create_app(store, server_config())) as client:
        store.models.traffic(MODEL, canary="3:50")
        refresh(client)
        answers = [predict(client, [key, *stay]) for key in canary_keys[:10]]
        # each canary key has no features: the canary fails, production answers its row
        assert [a.status_code for a in answers] == [200] * 10
        for key, answer in zip(canary_keys, answers, strict=False):
            body = answer.json()
            assert (body["version"], body["arm"]) == (1, "production")
            assert body["versions"] == [1] * 3 and body["arms"] == ["production"] * 3
            assert body["predictions"] == expected(store, 1, [key, *stay])
        metrics = client.get("/metrics").text
        canary = 'model="driver_model",version="3"'
        assert (
            f'featurehub_model_requests_total{{arm="canary",code="500",{canary}}} 10.0' in metrics
        )
        assert f"featurehub_model_canary_fallbacks_total{{{canary}}} 10.0" in metrics
        assert 'featurehub_model_requests_total{arm="production",code="200"' in metrics
        after = predict(client, canary_keys[10:])
        assert after.status_code == 200
        assert set(after.json()["arms"]) == {"production"}
        deadline = time.monotonic() + 10
        while store.models.traffic_policy(MODEL).policy != "production":
            assert time.monotonic() < deadline, "the rollback was not recorded"
            time.sleep(0.05)
        last = store.models.traffic_history(MODEL)[-1]
        assert last.actor == "featurehub-server"
        assert "canary version 3 of driver_model rolled back automatically" in last.reason
        assert "error rate 1 over the last 10 canary requests" in last.reason
        metrics = client.get("/metrics").text
        assert (
            'featurehub_model_canary_rollbacks_total{model="driver_model",version="3"} 1.0'
            in metrics
        )
    logged = read_serving_log(log_root).order("request_id, row").to_arrow_table().to_pylist()
    first = [row for row in logged if row["request_id"] == answers[0].json()["request_id"]]
    assert [(r["arm"], r["model_version"]) for r in first] == [("production", "1")] * 3


def test_an_unloadable_canary_or_shadow_does_not_fail_the_request(tmp_path: Path) -> None:
    """Version 3's class changed after registration: it cannot be loaded (500
    model_unavailable when pinned); as a canary production answers its rows, as a shadow it
    is counted as failed."""
    repo = build(tmp_path / "repo")
    fragile = repo / "fragile.py"
    fragile.write_text(fragile.read_text() + "\n# changed\n")
    keys = [k for k in range(1000) if bucket(MODEL, [k]) < 5_000][:3]
    with FeatureStore(repo) as store, TestClient(create_app(store, server_config())) as client:
        pinned = predict(client, keys, version=3)
        assert pinned.status_code == 500 and pinned.json()["error"] == "model_unavailable"
        store.models.traffic(MODEL, canary="3:50")
        refresh(client)
        answer = predict(client, keys)
        assert answer.status_code == 200, answer.text
        assert answer.json()["arms"] == ["production"] * 3
        assert answer.json()["predictions"] == expected(store, 1, keys)
        store.models.traffic(MODEL, shadow=3)
        refresh(client)
        shadowed = predict(client, keys)
        assert shadowed.status_code == 200 and shadowed.json()["arms"] == ["production"] * 3
        metrics = client.get("/metrics").text
        version_3 = 'model="driver_model",version="3"'
        assert f'featurehub_model_requests_total{{arm="canary",code="500",{version_3}}}' in metrics
        assert f'featurehub_model_requests_total{{arm="shadow",code="500",{version_3}}}' in metrics


def test_a_failing_shadow_or_b_arm(client: TestClient, store: FeatureStore) -> None:
    """A shadow failing on the rows never touches the answer; an A/B arm b failing is the
    request's 500 model_error (the experiment's arm does not silently become a)."""
    unknown = [k for k in range(100_000, 101_000) if bucket(MODEL, [k]) < 5_000][:2]
    store.models.traffic(MODEL, shadow=3)
    refresh(client)
    answer = predict(client, unknown)
    assert answer.status_code == 200
    assert answer.json()["predictions"] == expected(store, 1, unknown)
    store.models.traffic(MODEL, ab="3:50")
    refresh(client)
    failed = predict(client, unknown)
    assert failed.status_code == 500 and failed.json()["error"] == "model_error"
    assert predict(client, KNOWN).status_code == 200  # b answers rows with features


# -- loaded versions and missing ones ----------------------------------------------------------


def test_unused_versions_are_unloaded_and_loaded_again_checked(tmp_path: Path) -> None:
    repo = build(tmp_path / "repo", "models:\n  keep_unused_seconds: 0.01\n")
    with FeatureStore(repo) as store, TestClient(create_app(store, server_config())) as client:
        models = client.app.state.server.models  # type: ignore[attr-defined]
        assert predict(client, KNOWN).status_code == 200  # version 1, production
        old = models.cached(MODEL, 2)
        assert old is None and predict(client, KNOWN, version=2).status_code == 200
        old = models.cached(MODEL, 2)
        assert old is not None
        store.models.promote(MODEL, 3, "production")  # 1 archived; 2 pinned, then unused
        refresh(client)
        assert predict(client, KNOWN).json()["versions"] == [3] * 3
        time.sleep(0.05)  # longer than keep_unused_seconds
        refresh(client)
        assert models.cached(MODEL, 1) is None and models.cached(MODEL, 2) is None
        assert models.cached(MODEL, 3) is not None  # production: never unloaded

        artifact = store.models.artifacts.root / store.models.get(f"{MODEL}:2").artifact_path
        good = artifact.read_bytes()
        artifact.write_bytes(good[:-1] + bytes([good[-1] ^ 1]))
        try:  # loaded again on demand, its sha256 checked again
            changed = predict(client, KNOWN, version=2)
            assert changed.status_code == 500 and changed.json()["error"] == "model_unavailable"
        finally:
            artifact.write_bytes(good)
        again = predict(client, KNOWN, version=2)
        assert again.status_code == 200 and again.json()["predictions"] == expected(store, 2, KNOWN)
        assert models.cached(MODEL, 2) is not old


# Version 4 of the in-flight test: once `hold` exists, predict waits until `release` does.
HELD = """
import time
from pathlib import Path

import pandas as pd


class Held:
    def predict(self, features: pd.DataFrame):
        if Path({hold!r}).exists():
            Path({entered!r}).touch()
            while not Path({release!r}).exists():
                time.sleep(0.01)
        return features["trips_today"].fillna(0).to_numpy()
"""


def test_an_unload_never_breaks_a_request_in_flight(tmp_path: Path) -> None:
    repo = build(tmp_path / "repo", "models:\n  keep_unused_seconds: 0.01\n")
    hold, entered, release = (tmp_path / name for name in ("hold", "entered", "release"))
    (repo / "held.py").write_text(
        textwrap.dedent(HELD.format(hold=str(hold), entered=str(entered), release=str(release)))
    )
    options = {"feature_service": "driver_service", "training_dataset": "train"}
    with FeatureStore(repo) as store, TestClient(create_app(store, server_config())) as client:
        store.models.register(MODEL, "held:Held", flavor="pyfunc", **options)  # version 4
        models = client.app.state.server.models  # type: ignore[attr-defined]
        assert predict(client, KNOWN, version=4).status_code == 200
        hold.touch()
        answers: list[Any] = []
        request = threading.Thread(target=lambda: answers.append(predict(client, KNOWN, version=4)))
        request.start()
        try:
            deadline = time.monotonic() + 30
            while not entered.exists():
                assert time.monotonic() < deadline, "the request did not reach the model"
                time.sleep(0.01)
            time.sleep(0.05)  # longer than keep_unused_seconds
            refresh(client)
            assert models.cached(MODEL, 4) is None  # unloaded while the request predicts
        finally:
            release.touch()
            request.join(30)
        assert answers[0].status_code == 200, answers[0].text
        assert answers[0].json()["predictions"] == [3, 7, 11]


def test_a_missing_version_is_remembered_until_the_next_registry_read(
    client: TestClient, store: FeatureStore
) -> None:
    version = len(store.models.versions(MODEL)) + 1
    first = predict(client, KNOWN, version=version)
    assert first.status_code == 404 and first.json()["error"] == "not_found"
    message = first.json()["message"]
    assert f"has no version {version}" in message and "last registry read" in message
    store.models.register(
        MODEL, fit(store, 0.5), feature_service="driver_service", training_dataset="train"
    )
    cached = predict(client, KNOWN, version=version)  # no registry query: still missing
    assert cached.status_code == 404 and cached.json()["message"] == message
    refresh(client)  # as every registry.refresh_seconds, or on SIGHUP
    found = predict(client, KNOWN, version=version)
    assert found.status_code == 200, found.text
    assert found.json()["predictions"] == expected(store, version, KNOWN)


def test_numpy_predictions_are_json(client: TestClient) -> None:
    body = predict(client, KNOWN).json()
    assert all(isinstance(p, int) for p in body["predictions"])
    assert np.array(body["predictions"]).dtype.kind == "i"


# -- the serving log ---------------------------------------------------------------------------


def test_the_log_records_model_version_and_arm(model_repo: Path, tmp_path: Path) -> None:
    log_root = tmp_path / "logs"
    with FeatureStore(model_repo) as plain:
        config = with_serving_log(plain.config, log_root)
    store = FeatureStore(config=config)
    with store, TestClient(create_app(store, server_config())) as client:
        store.models.traffic(MODEL, shadow=2)
        refresh(client)
        shadowed = predict(client, KNOWN).json()
        store.models.traffic(MODEL, canary="3:50")
        refresh(client)
        keys = [k for k in range(1000, 1003) if bucket(MODEL, [k]) >= 5_000]
        split = predict(client, keys).json()
        feature_answer = client.post(
            "/v1/features",
            json={"feature_service": "driver_service", "entities": {"driver_id": [1000]}},
        )
        assert feature_answer.status_code == 200
    rows = read_serving_log(log_root).order("request_id, arm, row").to_arrow_table().to_pylist()
    by_request: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        by_request.setdefault(row["request_id"], []).append(row)
    first = by_request[shadowed["request_id"]]
    assert [(r["arm"], r["model_version"], r["row"]) for r in first] == [
        ("production", "1", 0), ("production", "1", 1), ("production", "1", 2),
        ("shadow", "2", 0), ("shadow", "2", 1), ("shadow", "2", 2),
    ]  # fmt: skip
    assert [r["prediction"] for r in first[:3]] == shadowed["predictions"]
    assert [r["prediction"] for r in first[3:]] == expected(store, 2, KNOWN)
    assert {r["model"] for r in first} == {MODEL}
    assert [r["value.conv_rate"] for r in first[:3]] == [0.2, 0.6, 0.9]
    second = by_request[split["request_id"]]
    assert [r["arm"] for r in second] == split["arms"]
    features_only = by_request[feature_answer.json()["request_id"]]
    assert [(r["model"], r["arm"], r["prediction"]) for r in features_only] == [(None, None, None)]
