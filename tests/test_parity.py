"""Training/serving consistency: after materialization, an online read now equals the offline
point-in-time join at now, value for value, on both online stores and both engines."""

from __future__ import annotations

import math
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from featurehub import FeatureStore
from featurehub.config import load_config
from tests.example_repo import copy_example_repo

NOW = datetime.now(timezone.utc).replace(minute=0, second=0, microsecond=0)
SERVICE = "trip_completion_v1"


@pytest.fixture(scope="module")
def example(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return copy_example_repo(tmp_path_factory.mktemp("parity") / "repo", rows=5_000, end=NOW)


@pytest.fixture(params=["local-sqlite", "local-redis", "spark-sqlite", "spark-redis"])
def materialized(
    request: pytest.FixtureRequest, example: Path, tmp_path: Path
) -> Iterator[FeatureStore]:
    engine, online = request.param.split("-")
    if engine == "spark":
        request.getfixturevalue("spark_session")
    online_url = (
        f"sqlite:///{tmp_path / 'online.db'}"
        if online == "sqlite"
        else request.getfixturevalue("redis_url")
    )
    env = {
        "FEATUREHUB_REGISTRY_URL": f"sqlite:///{tmp_path / 'registry.db'}",
        "FEATUREHUB_OFFLINE_ROOT": str(tmp_path / "offline"),
        "FEATUREHUB_ONLINE_STORE_URL": online_url,
    }
    config = load_config(example, env=env)
    # Each test its own project, so tests sharing one Redis never see each other's keys.
    config = config.model_copy(
        update={"project": f"parity_{tmp_path.name[-20:]}".replace("-", "_")}
    )
    store = FeatureStore(config=config)
    store.apply()
    results = store.materialize(NOW - timedelta(days=40), NOW + timedelta(hours=1), engine=engine)
    assert all(r.online_rows_written > 0 for r in results)
    yield store
    store.close()


def entity_rows(example: Path, count: int = 300) -> pd.DataFrame:
    """Trips' entities (some unknown to the stores) with the timestamp set to now."""
    trips = pd.read_parquet(example / "data" / "trips.parquet").head(count)
    trips = trips[["driver_id", "customer_id", "pickup_zone", "dropoff_zone"]]
    unknown = pd.DataFrame(
        {
            "driver_id": [1],
            "customer_id": [10**9],
            "pickup_zone": ["nowhere"],
            "dropoff_zone": ["x"],
        }
    )
    return pd.concat([trips, unknown], ignore_index=True)


def same(online: Any, offline: Any) -> bool:
    if online is None or (isinstance(online, float) and math.isnan(online)):
        return offline is None or (isinstance(offline, float) and math.isnan(offline))
    return bool(online == offline) and type(online) is type(offline)


def test_online_now_equals_offline_at_now(materialized: FeatureStore, example: Path) -> None:
    rows = entity_rows(example)
    online = materialized.get_online_features(SERVICE, rows.to_dict("records"))
    offline_rows = rows.assign(event_timestamp=pd.Timestamp(datetime.now(timezone.utc)))
    offline = materialized.get_historical_features(offline_rows, SERVICE).to_arrow()
    features = [name for name in online.values]
    assert features == offline.column_names[len(offline_rows.columns) :]
    compared = present = 0
    for name in features:
        expected = offline[name].to_pylist()
        for index, (got, want) in enumerate(zip(online.values[name], expected, strict=True)):
            assert same(got, want), (name, index, got, want)
            compared += 1
            present += online.statuses[name][index] == "present"
    assert compared == len(rows) * len(features)
    assert present > compared / 2  # most values are fresh, so the comparison means something
    assert set(online.statuses["conv_rate"]) >= {"present", "not_found"}
