"""The example repo tells the truth about time: its labels follow the values a point-in-time
join gives (so a model can learn from them), and its daily view stamps each aggregate with
the time of the last update it includes, never a time still to come."""

from __future__ import annotations

import importlib.util
import math
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from types import ModuleType

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from featurehub import FeatureStore
from featurehub.config import load_config
from featurehub.offline.connection import duckdb_connection
from featurehub.offline.source_reader import view_relation_sql
from featurehub.repo.loader import load_repo
from tests.example_repo import EXAMPLE, copy_example_repo
from tests.offline.oracle import OracleView, winner

NOW = datetime.now(timezone.utc).replace(minute=0, second=0, microsecond=0)
BASE = datetime(2026, 1, 1, tzinfo=timezone.utc)
DAILY = "driver_daily_activity"
DAILY_FEATURES = ["max_conv_rate_1d", "trips_1d", "updates_1d"]


def load_generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("generate_data", EXAMPLE / "generate_data.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


generator = load_generator()

row_strategy = st.tuples(
    st.integers(0, 2),  # key
    st.integers(0, 30),  # event time (seconds after BASE)
    st.one_of(st.integers(0, 3), st.integers(10, 40)),  # created - event: prompt or late
    st.integers(0, 2),  # first feature: small, so ties reach the last tie-break
)


@settings(max_examples=300, deadline=None)
@given(
    rows=st.lists(row_strategy, max_size=25),
    queries=st.lists(st.tuples(st.integers(0, 3), st.integers(-5, 75)), min_size=1, max_size=8),
    ttl=st.one_of(st.none(), st.integers(1, 20)),
)
def test_the_generator_joins_as_the_point_in_time_oracle(
    rows: list[tuple[int, int, int, int]], queries: list[tuple[int, int]], ttl: int | None
) -> None:
    """The label's inputs are found with featurehub's rules (tests/offline/oracle.py)."""
    keys, event, delay, first = np.array(rows, dtype=np.int64).reshape(-1, 4).T
    created = event + delay
    at_keys = np.array([q[0] for q in queries], dtype=np.int64)
    at = np.array([q[1] for q in queries], dtype=np.int64)
    found = generator.known_at(keys, event, created, first.astype(float), ttl, at_keys, at)

    def moment(seconds: int) -> datetime:
        return BASE + timedelta(seconds=int(seconds))

    view = OracleView(
        "v",
        ("k",),
        ("f",),
        [
            {"k": int(k), "event_timestamp": moment(e), "created_timestamp": moment(c), "f": int(f)}
            for k, e, c, f in zip(keys, event, created, first, strict=True)
        ],
        None if ttl is None else timedelta(seconds=ttl),
    )
    for index, (key, t) in enumerate(queries):
        best = winner({"k": key, "event_timestamp": moment(t)}, view, "event_timestamp", True)
        got = found[index]
        if best is None:
            assert got == -1, (key, t)
        else:
            assert got >= 0, (key, t)
            chosen = (moment(event[got]), moment(created[got]), int(first[got]))
            assert chosen == (best["event_timestamp"], best["created_timestamp"], best["f"])


def store_on(repo: Path, tmp: Path) -> FeatureStore:
    env = {
        "FEATUREHUB_REGISTRY_URL": f"sqlite:///{tmp / 'registry.db'}",
        "FEATUREHUB_OFFLINE_ROOT": str(tmp / "offline"),
        "FEATUREHUB_ONLINE_STORE_URL": f"sqlite:///{tmp / 'online.db'}",
    }
    store = FeatureStore(config=load_config(repo, env=env))
    store.apply()
    return store


@pytest.fixture(scope="module")
def example(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, FeatureStore]]:
    """The example repo with data ending now, materialized up to tomorrow as `make demo`
    does: what the views compute, not the run's END, decides how far their rows reach."""
    tmp = tmp_path_factory.mktemp("example")
    repo = copy_example_repo(tmp / "repo", rows=5_000, end=NOW)
    store = store_on(repo, tmp)
    store.materialize(NOW - timedelta(days=40), NOW + timedelta(days=1))
    yield repo, store
    store.close()


def test_labels_depend_on_the_values_the_point_in_time_join_gives(
    example: tuple[Path, FeatureStore],
) -> None:
    repo, store = example
    trips = pq.read_table(repo / "data" / "trips.parquet")
    names = list(generator.COMPLETION_WEIGHTS)
    joined = store.get_historical_features(trips.to_pandas(), "trip_completion_v1").to_pandas()
    known: dict[str, np.ndarray] = {}
    for view in generator.SOURCE_VIEWS:
        source = pq.read_table(repo / "data" / f"{view.source}.parquet")
        known |= generator.known_features(source, view, trips)
    for name in names:
        expected = joined[name].astype("float64").to_numpy()
        same = (known[name] == expected) | (np.isnan(known[name]) & np.isnan(expected))
        assert same.all(), name
    # ... and they carry signal: the label's own log-odds rank completed trips first.
    completed = joined["completed"].to_numpy()
    logit = generator.completion_logit(known)
    assert logit[completed].mean() > logit[~completed].mean() + 0.5


def daily_rows(repo: Path) -> pd.DataFrame:
    """What the daily view's transformation computes from its whole source."""
    relation = view_relation_sql(load_repo(repo).feature_view(DAILY), repo)
    con = duckdb_connection(repo)
    try:
        return con.sql(f"SELECT * FROM {relation}").df()
    finally:
        con.close()


def test_the_daily_view_stamps_each_row_with_its_last_update(tmp_path: Path) -> None:
    """Every row carries the time of the newest update it includes: one of its inputs' times,
    never later than the newest input (today's partial day is not stamped at midnight)."""
    repo = copy_example_repo(tmp_path / "repo", rows=2_000, end=NOW)
    source = pd.read_parquet(repo / "data" / "driver_hourly_stats.parquet")
    rows = daily_rows(repo)
    assert len(rows) > 0
    assert rows["event_timestamp"].max() <= source["event_timestamp"].max()
    update_times = set(zip(source["driver_id"], source["event_timestamp"], strict=True))
    stamps = zip(rows["driver_id"], rows["event_timestamp"], strict=True)
    assert all(stamp in update_times for stamp in stamps)


def test_the_daily_view_is_the_running_aggregate_of_its_inputs(tmp_path: Path) -> None:
    """Brute force: each row is the 24 hours of updates up to its stamp, created when the
    last of them was written."""
    repo = copy_example_repo(tmp_path / "repo", rows=2_000, end=NOW)
    source = pd.read_parquet(repo / "data" / "driver_hourly_stats.parquet")
    source = source[source["acc_rate"] > 0.5]
    by_driver = dict(tuple(source.groupby("driver_id")))
    for row in daily_rows(repo).sample(n=300, random_state=0).itertuples():
        updates = by_driver[row.driver_id]
        stamp = row.event_timestamp
        window = updates[
            (updates["event_timestamp"] <= stamp)
            & (updates["event_timestamp"] >= stamp - pd.Timedelta(hours=24))
        ]
        assert len(window) == row.updates_1d
        assert window["trips_today"].sum() == row.trips_1d
        assert math.isclose(window["conv_rate"].max(), row.max_conv_rate_1d)
        assert window["created"].max() == row.created


def test_the_daily_view_online_now_equals_offline_at_now(
    example: tuple[Path, FeatureStore],
) -> None:
    repo, store = example
    drivers = sorted(pd.read_parquet(repo / "data" / "driver_hourly_stats.parquet")["driver_id"])
    keys = pd.DataFrame({"driver_id": sorted(set(drivers))})
    refs = [f"{DAILY}:{name}" for name in DAILY_FEATURES]
    online = store.get_online_features(refs, keys.to_dict("records"))
    offline = store.get_historical_features(
        keys.assign(event_timestamp=pd.Timestamp(datetime.now(timezone.utc))), refs
    ).to_pandas()
    present = 0
    for name in DAILY_FEATURES:
        for index, got in enumerate(online.values[name]):
            want = offline[name].iloc[index]
            if got is None:
                assert pd.isna(want), (name, index, want)
            else:
                assert got == want, (name, index, got, want)
                present += 1
    assert present > 0


def test_the_generator_uses_the_ttls_keys_and_tie_breaks_the_repo_declares() -> None:
    catalog = load_repo(EXAMPLE)
    for spec in generator.SOURCE_VIEWS:
        (view,) = [
            v
            for v in catalog.feature_views.values()
            if v.transformation is None and v.source.path == f"data/{spec.source}.parquet"
        ]
        assert view.ttl == timedelta(microseconds=spec.ttl_us), view.name
        assert tuple(view.join_keys) == spec.keys, view.name
        assert view.feature_names[0] == spec.first_feature, view.name
        assert set(spec.features) <= set(view.feature_names), view.name
