"""The offline writer's commit protocol: atomic, replacing, and safe under kill -9."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import duckdb
import pyarrow as pa
import pytest

from featurehub import FeatureStore
from featurehub.offline.parquet import OfflineWriteError
from tests.repos import BASE, driver_table


def offline_rows(table: pa.Table) -> pa.Table:
    return table.rename_columns(
        ["driver_id", "event_timestamp", "created_timestamp", "conv_rate", "trips_today", "city"]
    )


def visible(store: FeatureStore) -> pa.Table:
    relation = store.offline_store.relation(store.get_feature_view("driver_stats"))
    assert relation is not None
    return duckdb.sql(f"SELECT * FROM {relation} ORDER BY event_timestamp").to_arrow_table()


def test_nothing_written_means_no_relation(store: FeatureStore) -> None:
    assert store.offline_store.relation(store.get_feature_view("driver_stats")) is None


def test_write_is_partitioned_by_event_date_and_readable(store: FeatureStore) -> None:
    view = store.get_feature_view("driver_stats")
    rows = offline_rows(driver_table(48))
    result = store.offline_store.write(view, rows, BASE, BASE + timedelta(days=2))
    assert result.rows == 48
    folders = {p.name for p in store.config.offline_root.rglob("date=*")}
    assert folders == {"date=2026-01-01", "date=2026-01-02"}
    table = visible(store)
    assert table.num_rows == 48
    assert table.column_names == [
        "driver_id",
        "event_timestamp",
        "created_timestamp",
        "conv_rate",
        "trips_today",
    ]


def test_rewriting_an_interval_replaces_it(store: FeatureStore) -> None:
    view = store.get_feature_view("driver_stats")
    rows = offline_rows(driver_table(10))  # hours 0..9
    for _ in range(3):
        store.offline_store.write(view, rows, BASE, BASE + timedelta(days=1))
    assert visible(store).num_rows == 10
    # A narrower rewrite replaces only its own hours: 0..4 now hold 2 rows.
    store.offline_store.write(view, rows.slice(0, 2), BASE, BASE + timedelta(hours=5))
    assert visible(store)["trips_today"].to_pylist() == [0, 1, 5, 6, 7, 8, 9]
    # An empty rewrite deletes.
    store.offline_store.write(view, rows.slice(0, 0), BASE, BASE + timedelta(days=1))
    assert visible(store).num_rows == 0


def test_superseded_commits_are_deleted_after_the_grace_period(
    store: FeatureStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    import featurehub.offline.parquet as parquet

    view = store.get_feature_view("driver_stats")
    rows = offline_rows(driver_table(10))
    commits = store.config.offline_root / store.project / "driver_stats" / "commits"
    first = store.offline_store.write(view, rows, BASE, BASE + timedelta(days=1))
    store.offline_store.write(view, rows, BASE, BASE + timedelta(days=1))  # supersedes it
    # Within the grace period a reader that listed the first commit's files may still read
    # them: they stay.
    store.offline_store.write(
        view, rows.slice(0, 0), BASE + timedelta(days=1), BASE + timedelta(days=2)
    )
    assert (commits / first.commit_id).exists()
    monkeypatch.setattr(parquet, "GRACE_SECONDS", -1.0)
    third = store.offline_store.write(view, rows.slice(0, 3), BASE, BASE + timedelta(hours=5))
    # The first commit is gone, folder and record; partly covered commits stay.
    assert not (commits / first.commit_id).exists()
    assert len(list(commits.iterdir())) == 3
    assert (commits / third.commit_id).exists()
    assert visible(store)["trips_today"].to_pylist() == [0, 1, 2, 5, 6, 7, 8, 9]
    known = store.registry.offline_commits(store.project).known_paths("driver_stats")
    assert len(known) == 3


def test_rows_outside_the_interval_are_refused(store: FeatureStore) -> None:
    view = store.get_feature_view("driver_stats")
    with pytest.raises(OfflineWriteError, match="fall outside the written interval"):
        store.offline_store.write(
            view, offline_rows(driver_table(10)), BASE, BASE + timedelta(hours=3)
        )
    assert store.offline_store.relation(view) is None


def test_rows_of_the_wrong_shape_are_refused(store: FeatureStore) -> None:
    view = store.get_feature_view("driver_stats")
    with pytest.raises(OfflineWriteError, match="lack column"):
        store.offline_store.write(view, driver_table(3), BASE, BASE + timedelta(days=1))


WRITER = """
import sys
from datetime import timedelta
import numpy as np, pyarrow as pa
from featurehub import FeatureStore
from tests.repos import BASE
store = FeatureStore(sys.argv[1])
view = store.get_feature_view("driver_stats")
n = int(sys.argv[2])
ts = pa.array(np.datetime64(BASE.replace(tzinfo=None), "us") + np.arange(n) * 1000,
              pa.timestamp("us", tz="UTC"))
rows = pa.table({"driver_id": np.arange(n) % 1000, "event_timestamp": ts,
                 "created_timestamp": ts, "conv_rate": np.random.rand(n),
                 "trips_today": np.arange(n)})
print("ready", flush=True)
while True:
    store.offline_store.write(view, rows, BASE, BASE + timedelta(days=1))
"""


def test_kill_9_never_leaves_a_partial_write_visible(store: FeatureStore) -> None:
    """Kill a writer at many moments: readers see all of one write or none, never part."""
    rows = 200_000
    root = Path(__file__).parents[2]
    delays = [0.05, 0.2, 0.35, 0.5, 0.8, 1.1, 1.6, 2.3]
    for delay in delays:
        child = subprocess.Popen(
            [sys.executable, "-c", WRITER, str(store.repo_path), str(rows)],
            cwd=root,
            stdout=subprocess.PIPE,
            env={**os.environ, "PYTHONPATH": str(root)},
        )
        assert child.stdout is not None
        assert child.stdout.readline().strip() == b"ready"
        time.sleep(delay)
        child.send_signal(signal.SIGKILL)
        child.wait()
        relation = store.offline_store.relation(store.get_feature_view("driver_stats"))
        if relation is not None:
            count = duckdb.sql(f"SELECT count(*) FROM {relation}").fetchall()[0]
            assert count == (rows,)
    # The store still takes writes, and leftovers of killed writers are never read.
    view = store.get_feature_view("driver_stats")
    store.offline_store.write(view, offline_rows(driver_table(5)), BASE, BASE + timedelta(days=1))
    assert visible(store).num_rows == 5
