"""Views materialized at once by one scheduler (the local engine, a SQLite online store, the
registry on SQLite and PostgreSQL) end exactly as a sequential run of the same views over
the same rows: the same runs, the same offline rows, the same online rows, and online ==
the newest offline row per key. What the jobs share across threads (the registry and its
leases, DuckDB, the offline commit protocol, SQLite connections) is what this exercises."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pytest

from featurehub import FeatureStore
from featurehub.scheduler.loop import Scheduler
from tests.scheduler.schedulers import arrivals, overlapping, run_rows, scheduled_repo, this_hour

VIEWS = ["stats_a", "stats_b", "stats_c", "stats_d"]
HOURS = 6
DRIVERS = 300  # four rows each, arriving over the hours: newest-wins has work to do
FEATURES = ("conv_rate", "trips_today")


def scheduled(
    root: Path, registry_url: str, data: pa.Table, hour: datetime, max_parallel: int
) -> FeatureStore:
    """A store whose views ran to HOURS ago, then one scheduler pass at `hour`: each view
    catches up one run per missed hour."""
    online = f"sqlite:///{root / 'online.db'}"
    repo = scheduled_repo(
        root, registry_url, online, VIEWS, hours=HOURS + 2, max_parallel=max_parallel, data=data
    )
    with FeatureStore(repo) as store:
        store.apply()
        store.materialize_incremental(hour - timedelta(hours=HOURS))
    # A store used first by the pass, as `featurehub schedule --once`'s: its jobs build its
    # leases and stores on several threads at once.
    store = FeatureStore(repo)
    outcomes = Scheduler(store).run_once(hour)
    assert [(o.job, o.status, len(o.ends)) for o in outcomes] == [
        (f"view:{view}", "ran", HOURS) for view in VIEWS
    ]
    return store


def runs_of(store: FeatureStore) -> list[tuple[Any, ...]]:
    return sorted(
        (run.view, run.interval_start, run.interval_end, run.status, run.rows_written)
        for run in store.runs(limit=1000)
    )


def offline_rows(store: FeatureStore, view: str) -> pa.Table:
    relation = store.offline_store.relation(store.get_feature_view(view))
    order = "driver_id, event_timestamp, created_timestamp"
    return duckdb.sql(f"SELECT * FROM {relation} ORDER BY {order}").to_arrow_table()


def newest_offline(store: FeatureStore, view: str) -> dict[int, tuple[Any, ...]]:
    relation = store.offline_store.relation(store.get_feature_view(view))
    rows = duckdb.sql(
        f"SELECT DISTINCT ON (driver_id) driver_id, {', '.join(FEATURES)} FROM {relation} "
        "ORDER BY driver_id, event_timestamp DESC, created_timestamp DESC"
    ).fetchall()
    return {row[0]: row[1:] for row in rows}


def online_rows(store: FeatureStore, view: str) -> dict[int, tuple[Any, ...]]:
    keys = [{"driver_id": driver} for driver in range(DRIVERS)]
    response = store.get_online_features([f"{view}:{name}" for name in FEATURES], keys)
    values = response.values
    return {
        driver: tuple(values[name][index] for name in FEATURES)
        for index, driver in enumerate(range(DRIVERS))
        if values[FEATURES[0]][index] is not None
    }


def test_views_run_at_once_end_as_a_sequential_run(
    tmp_path: Path, registry_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    hour = this_hour()
    data = arrivals(HOURS + 2, drivers=DRIVERS)
    sequential = scheduled(tmp_path / "sequential", registry_url, data, hour, max_parallel=1)
    # Each run pauses once its rows are staged and written online: the views' runs overlap.
    monkeypatch.setenv("FEATUREHUB_PAUSE_AT", "online_written:0.2")
    parallel = scheduled(tmp_path / "parallel", registry_url, data, hour, max_parallel=4)
    monkeypatch.delenv("FEATUREHUB_PAUSE_AT")

    mine = [row for row in run_rows(registry_url) if row["project"] == parallel.project]
    assert overlapping(mine) == []  # no view ran twice at once ...
    assert _views_overlapping(mine)  # ... while different views did

    assert runs_of(parallel) == runs_of(sequential)
    assert {run[3] for run in runs_of(parallel)} == {"success"}
    for view in VIEWS:
        stored = offline_rows(parallel, view)
        assert stored.num_rows > 0
        assert stored.equals(offline_rows(sequential, view))
        online = online_rows(parallel, view)
        assert online == online_rows(sequential, view)
        assert online == newest_offline(parallel, view)  # online == offline
    assert parallel.leases.list() == []
    sequential.close()
    parallel.close()


def _views_overlapping(rows: list[Any]) -> bool:
    """Whether runs of two different views were in progress at the same moment."""
    return any(
        a["view"] != b["view"]
        and a["started_at"] < b["finished_at"]
        and b["started_at"] < a["finished_at"]
        for a in rows
        for b in rows
    )
