"""Replay: logged serving rows through the offline join, against a brute-force comparison
(hypothesis) and on the real path (materialize, serve over HTTP, log, replay) with injected
skews caught under the right cause."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from fastapi.testclient import TestClient

from featurehub import FeatureStore
from featurehub.config import RepoConfig
from featurehub.errors import FeaturehubError
from featurehub.offline.base import offline_schema
from featurehub.server import create_app
from featurehub.skew.replay import ReplayError, replay
from featurehub.skew.replay_result import STALE, TTL_OR_STATUS, VALUE_SKEW
from tests.server.conftest import DEFS, NOW, materialize, server_config, tables

DRIVERS = [1001, 1002, 1003, 1004]  # fresh, fresh, expired (3 days old, TTL 2 days), unknown


def serve(config: RepoConfig, requests: int = 3, drivers: list[int] = DRIVERS) -> None:
    """Serve `requests` requests of driver_service over HTTP; the log is flushed on exit."""
    with FeatureStore(config=config) as store:
        app = create_app(store, server_config(store.config.serving_log_root))
        with TestClient(app) as client:
            for _ in range(requests):
                answer = client.post(
                    "/v1/features",
                    json={"feature_service": "driver_service", "entities": {"driver_id": drivers}},
                )
                assert answer.status_code == 200, answer.text


def window() -> tuple[datetime, datetime]:
    now = datetime.now(timezone.utc)
    return now - timedelta(hours=1), now + timedelta(minutes=1)


def replay_of(config: RepoConfig, **options: Any) -> Any:
    with FeatureStore(config=config) as store:
        return replay(store, "driver_service", *window(), **options)


def test_a_healthy_system_replays_without_mismatch(tmp_path: Path) -> None:
    config = materialize(tmp_path / "repo")
    serve(config)
    result = replay_of(config)
    assert result.rows == 3 * len(DRIVERS)
    assert result.passed
    assert [f.name for f in result.features] == [
        "driver_stats:conv_rate",
        "driver_stats:trips_today",
    ]
    for feature in result.features:
        assert feature.rows_compared == result.rows
        assert feature.mismatches == 0
        assert feature.examples == ()
    assert result.feature("conv_rate").mean_absolute_difference == 0.0
    frame = result.to_pandas()
    assert list(frame["name"]) == ["driver_stats:conv_rate", "driver_stats:trips_today"]
    assert result.to_dict()["passed"] is True


def test_materialization_stopped_is_stale(tmp_path: Path) -> None:
    config = materialize(tmp_path / "repo")
    serve(config)
    # newer rows arrived before serving, but only the offline store got them
    newer = tables()["drivers"]
    ts = pa.timestamp("us", tz="UTC")
    later = pa.table(
        {
            "driver_id": pa.array([1001], pa.int64()),
            "event_timestamp": pa.array([NOW - timedelta(hours=1)], ts),
            "created": pa.array([NOW - timedelta(hours=1)], ts),
            "conv_rate": [0.125],
            "trips_today": pa.array([6], pa.int64()),
        }
    )
    pq.write_table(pa.concat_tables([newer, later]), config.repo_path / "data/drivers.parquet")
    with FeatureStore(config=config) as store:
        store.materialize(NOW - timedelta(days=10), NOW + timedelta(hours=1), online=False)
    result = replay_of(config)
    assert not result.passed  # 1 key in 4 is stale: above the default 1 %
    for feature in result.features:
        assert feature.causes == {STALE: 3, VALUE_SKEW: 0, TTL_OR_STATUS: 0, "unexplained": 0}
        assert feature.value_mismatches == 3
        assert feature.lag is not None
        assert feature.lag.min_seconds == feature.lag.max_seconds == 2 * 3600
        example = feature.examples[0]
        assert example.keys == {"driver_id": 1001}
        assert example.offline_event_timestamp == NOW - timedelta(hours=1)
        assert example.served_event_timestamp == NOW - timedelta(hours=3)
    assert result.feature("conv_rate").examples[0].offline_value == 0.125
    assert result.feature("conv_rate").examples[0].served_value == 0.5
    assert replay_of(config, max_stale_rate=0.25).passed


def test_an_online_value_written_differently_is_value_skew(tmp_path: Path) -> None:
    config = materialize(tmp_path / "repo")
    with FeatureStore(config=config) as store:
        view = store.get_feature_view("driver_stats")
        row = tables()["drivers"].slice(0, 1)  # driver 1001, same timestamps
        wrong = pa.table(
            {
                "driver_id": row["driver_id"],
                "event_timestamp": row["event_timestamp"],
                "created_timestamp": row["created"],
                "conv_rate": [0.9],  # offline holds 0.5
                "trips_today": row["trips_today"],
            }
        )
        store.online_store.write(view, wrong.select(offline_schema(view).names))
    serve(config, requests=2)
    result = replay_of(config)
    assert not result.passed
    conv = result.feature("conv_rate")
    assert conv.causes[VALUE_SKEW] == 2
    assert conv.value_mismatches == 2 and conv.mismatches == 2
    assert conv.mean_absolute_difference == pytest.approx(0.4 * 2 / 4)  # 1001 and 1002, twice
    assert conv.examples[0].served_value == 0.9 and conv.examples[0].offline_value == 0.5
    assert result.feature("trips_today").mismatches == 0


def test_a_changed_ttl_is_a_status_disagreement(tmp_path: Path) -> None:
    config = materialize(tmp_path / "repo")
    serve(config, requests=1)
    shorter = DEFS.replace("ttl=timedelta(days=2)", "ttl=timedelta(hours=1)")
    (config.repo_path / "defs.py").write_text(shorter)
    with FeatureStore(config=config) as store:
        store.apply()
    result = replay_of(config)
    assert not result.passed
    for feature in result.features:
        # 1001 and 1002 (3 hours old) were served; offline they are now expired
        assert feature.offline_missing == 2
        assert feature.causes[TTL_OR_STATUS] == 2
        assert {e.keys["driver_id"] for e in feature.examples} == {1001, 1002}


def test_a_sample_keeps_whole_keys_the_same_in_every_run(tmp_path: Path) -> None:
    config = materialize(tmp_path / "repo")
    serve(config, requests=4, drivers=list(range(1000, 1040)))
    with FeatureStore(config=config) as store:
        first = replay(store, "driver_service", *window(), sample=0.5)
        start, end = first.start, first.end
    with FeatureStore(config=config) as store:  # another store: nothing is cached
        assert replay(store, "driver_service", start, end, sample=0.5) == first
    assert 0 < first.rows < 160 and first.rows % 4 == 0  # whole keys: all 4 rows of each


def test_no_logged_rows_says_what_to_do(tmp_path: Path) -> None:
    config = materialize(tmp_path / "repo")
    with FeatureStore(config=config) as store, pytest.raises(ReplayError, match="widen"):
        replay(store, "driver_service", *window())
    serve(config, requests=1)
    with FeatureStore(config=config) as store:
        with pytest.raises(ReplayError, match="nothing to replay"):
            replay(store, "driver_service", NOW - timedelta(days=3), NOW - timedelta(days=2))
        with pytest.raises(ReplayError, match="no row kept by sample=1e-12"):
            replay(store, "driver_service", *window(), sample=1e-12)
        with pytest.raises(FeaturehubError, match="sample"):
            replay(store, "driver_service", *window(), sample=0)
