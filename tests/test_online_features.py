"""get_online_features through the FeatureStore: statuses, TTL at read time, bad keys."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from featurehub import FeatureStore
from featurehub.errors import NotFoundError
from featurehub.online.lookup import EntityKeyError
from tests.repos import DRIVER_DEFS, make_repo

NOW = datetime.now(timezone.utc)


def fresh_table() -> pa.Table:
    """Driver 1 updated an hour ago, driver 2 three days ago (TTL is two days)."""
    ts = pa.timestamp("us", tz="UTC")
    events = [NOW - timedelta(hours=3), NOW - timedelta(hours=1), NOW - timedelta(days=3)]
    return pa.table(
        {
            "driver_id": pa.array([1, 1, 2], pa.int64()),
            "event_timestamp": pa.array(events, ts),
            "created": pa.array(events, ts),
            "conv_rate": [0.1, 0.2, None],
            "trips_today": pa.array([3, 4, 5], pa.int64()),
        }
    )


@pytest.fixture(params=["sqlite", "redis"])
def online(request: pytest.FixtureRequest, tmp_path: Path) -> FeatureStore:
    repo = make_repo(tmp_path / "repo", data={"drivers": fresh_table()})
    if request.param == "redis":
        url = request.getfixturevalue("redis_url")
        text = (repo / "featurehub.yaml").read_text()
        project = f"online_{tmp_path.name[-16:]}".replace("-", "_")
        text = text.replace("project: test_project", f"project: {project}")
        (repo / "featurehub.yaml").write_text(text + f"online_store: {url}\n")
    store = FeatureStore(repo)
    store.apply()
    store.materialize(NOW - timedelta(days=10), NOW + timedelta(minutes=1))
    return store


def test_statuses_and_values(online: FeatureStore) -> None:
    response = online.get_online_features(
        ["driver_stats:conv_rate", "driver_stats:trips_today"],
        [{"driver_id": 1}, {"driver_id": 2}, {"driver_id": 3}, {"driver_id": 1}],
    )
    assert response.to_dict() == {
        "driver_id": [1, 2, 3, 1],
        "conv_rate": [0.2, None, None, 0.2],
        "trips_today": [4, None, None, 4],
    }
    assert response.statuses["conv_rate"] == ["present", "expired", "not_found", "present"]
    stamps = response.event_timestamps["trips_today"]
    assert stamps[0] == NOW.replace(microsecond=NOW.microsecond) - timedelta(hours=1)
    assert stamps[2] is None
    frame = response.to_pandas(include_metadata=True)
    assert list(frame.columns[:3]) == ["driver_id", "conv_rate", "trips_today"]
    assert "conv_rate__status" in frame.columns


def test_service_and_full_feature_names(online: FeatureStore) -> None:
    response = online.get_online_features(
        "driver_service", [{"driver_id": 1}], full_feature_names=True
    )
    assert response.to_dict() == {
        "driver_id": [1],
        "driver_stats__conv_rate": [0.2],
        "driver_stats__trips_today": [4],
    }


@pytest.mark.parametrize(
    ("rows", "message"),
    [
        ([{"driver": 1}], "entity row 0 has no 'driver_id'.*'driver'"),
        ([{"driver_id": 1}, {"driver_id": "2"}], "entity row 1: driver_id='2' is a str .*Int64"),
        ([{"driver_id": True}], "is a bool"),
    ],
)
def test_bad_entity_rows(online: FeatureStore, rows: list[dict[str, object]], message: str) -> None:
    with pytest.raises(EntityKeyError, match=message):
        online.get_online_features(["driver_stats:conv_rate"], rows)


@pytest.mark.parametrize(
    "entities",
    [
        {"driver_id": [1, 2, 3]},
        {"driver_id": np.array([1, 2, 3])},
        pd.DataFrame({"driver_id": [1, 2, 3], "label": [0, 1, 0]}),
        [{"driver_id": np.int64(1)}, {"driver_id": np.int32(2)}, {"driver_id": np.uint8(3)}],
    ],
    ids=["columns", "numpy column", "dataframe", "numpy scalars"],
)
def test_columns_dataframes_and_numpy_keys(online: FeatureStore, entities: object) -> None:
    response = online.get_online_features(["driver_stats:trips_today"], entities)  # type: ignore[arg-type]
    assert response.to_dict() == {"driver_id": [1, 2, 3], "trips_today": [4, None, None]}
    assert response.statuses["trips_today"] == ["present", "expired", "not_found"]


@pytest.mark.parametrize(
    ("entities", "message"),
    [
        (None, "entity rows cannot be None: entity rows are a list of dicts"),
        (1, "cannot be an int: .*or a pandas DataFrame"),
        ({"driver_id": 1}, "entity column 'driver_id' is an int, not a list"),
        ([1, 2], "entity row 0 is an int, not a dict of join keys"),
        ([{"driver_id": None}], "driver_id is missing"),
    ],
)
def test_other_entity_inputs_show_the_expected_shape(
    online: FeatureStore, entities: object, message: str
) -> None:
    with pytest.raises(EntityKeyError, match=message):
        online.get_online_features(["driver_stats:conv_rate"], entities)  # type: ignore[arg-type]


def test_online_and_offline_frames_have_the_same_nullable_dtypes(online: FeatureStore) -> None:
    features = ["driver_stats:conv_rate", "driver_stats:trips_today"]
    served = online.get_online_features(features, {"driver_id": [1, 2]}).to_pandas()
    rows = pd.DataFrame({"driver_id": [1, 2], "event_timestamp": [NOW, NOW]})
    trained = online.get_historical_features(rows, features).to_pandas()
    names = ["driver_id", "conv_rate", "trips_today"]
    assert dict(served.dtypes[names]) == dict(trained.dtypes[names])
    assert str(served["trips_today"].dtype) == "Int64"  # not float64: driver 2 is expired
    assert served["trips_today"].tolist() == trained["trips_today"].tolist() == [4, pd.NA]


def test_unknown_feature(online: FeatureStore) -> None:
    with pytest.raises(NotFoundError, match="unknown feature view 'drivers_stats'"):
        online.get_online_features(["drivers_stats:conv_rate"], [{"driver_id": 1}])


def test_deleting_a_view_clears_its_data(online: FeatureStore) -> None:
    (online.repo_path / "defs.py").write_text(DRIVER_DEFS.split("stats = FeatureView")[0])
    plan = online.apply()
    assert plan.reset_views == ["driver_stats"]
    (online.repo_path / "defs.py").write_text(DRIVER_DEFS)
    online.apply()
    response = online.get_online_features(["driver_stats:conv_rate"], [{"driver_id": 1}])
    assert response.statuses["conv_rate"] == ["not_found"]
    assert online.offline_store.relation(online.get_feature_view("driver_stats")) is None
