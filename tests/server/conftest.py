"""Feature-server fixtures: the driver repo with fresh data, materialized, and its app."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from fastapi.testclient import TestClient

from featurehub import FeatureStore
from featurehub.config import RepoConfig, ServerConfig, load_config
from featurehub.server import create_app
from tests.repos import make_repo

NOW = datetime.now(timezone.utc).replace(microsecond=0)

DEFS = """
from datetime import timedelta
from featurehub import Entity, FeatureService, FeatureView, Field, ParquetSource
from featurehub.types import Float64, Int64, String

driver = Entity(name="driver", join_keys=["driver_id"])
zone = Entity(name="zone", join_keys=["zone"])
stats = FeatureView(
    name="driver_stats",
    entities=[driver],
    source=ParquetSource(path="data/drivers.parquet", created_timestamp_field="created"),
    schema=[Field("conv_rate", Float64), Field("trips_today", Int64)],
    ttl=timedelta(days=2),
)
zones = FeatureView(
    name="zone_stats",
    entities=[zone],
    source=ParquetSource(path="data/zones.parquet", created_timestamp_field="created"),
    schema=[Field("demand", Float64), Field("label", String)],
    ttl=timedelta(hours=1),
)
service = FeatureService(name="driver_service", features=[stats])
both = FeatureService(name="dispatch", features=[stats[["conv_rate"]], zones])
"""


def tables() -> dict[str, pa.Table]:
    ts = pa.timestamp("us", tz="UTC")
    recent = NOW - timedelta(hours=3)
    drivers = pa.table(
        {
            # 1003 is 3 days old: expired under the 2-day TTL
            "driver_id": pa.array([1001, 1002, 1003], pa.int64()),
            "event_timestamp": pa.array([recent, recent, NOW - timedelta(days=3)], ts),
            "created": pa.array([recent, recent, NOW - timedelta(days=3)], ts),
            "conv_rate": [0.5, 0.25, 0.75],
            "trips_today": pa.array([5, 2, 9], pa.int64()),
        }
    )
    zones = pa.table(
        {
            "zone": ["a", "b"],
            "event_timestamp": pa.array([NOW - timedelta(minutes=5)] * 2, ts),
            "created": pa.array([NOW - timedelta(minutes=5)] * 2, ts),
            "demand": [1.5, 2.5],
            "label": ["north", "south"],
        }
    )
    return {"drivers": drivers, "zones": zones}


def materialize(
    root: Path, online_url: str | None = None, project: str = "server_test", **env: str
) -> RepoConfig:
    """The config of a new driver/zone repo under `root`, applied and materialized."""
    repo = make_repo(root, files={"defs.py": DEFS}, data=tables(), project=project)
    if online_url:
        env["FEATUREHUB_ONLINE_STORE_URL"] = online_url
    config = load_config(repo, env=env)
    with FeatureStore(config=config) as store:
        store.apply()
        store.materialize(NOW - timedelta(days=10), NOW + timedelta(hours=1))
    return config


@pytest.fixture(scope="session")
def served_config(tmp_path_factory: pytest.TempPathFactory) -> RepoConfig:
    """One materialized repo (SQLite online store) for the tests that only read it."""
    return materialize(tmp_path_factory.mktemp("server") / "repo")


@pytest.fixture
def log_root(tmp_path: Path) -> Path:
    return tmp_path / "serving_logs"


def with_serving_log(config: RepoConfig, log_root: Path, **settings: Any) -> RepoConfig:
    """`config` with its serving log under `log_root`, flushed every 0.2 s, and `settings`."""
    values: dict[str, Any] = {"root": str(log_root), "flush_seconds": 0.2, **settings}
    return config.model_copy(update={"serving_log": config.serving_log.model_copy(update=values)})


@pytest.fixture
def served_store(served_config: RepoConfig, log_root: Path) -> Iterator[FeatureStore]:
    with FeatureStore(config=with_serving_log(served_config, log_root)) as store:
        yield store


def server_config(**overrides: Any) -> ServerConfig:
    return ServerConfig(**overrides)


@pytest.fixture
def client(served_store: FeatureStore) -> Iterator[TestClient]:
    app = create_app(served_store, server_config())
    with TestClient(app) as test_client:
        yield test_client
