"""Kill -9 a materialization at many moments: no partial offline data, online never older,
and the next run completes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa
import pytest

from featurehub import FeatureStore
from tests.repos import BASE, make_repo

ROWS = 400_000
DRIVERS = 20_000


def big_table() -> pa.Table:
    rng = np.random.default_rng(3)
    ts = pa.timestamp("us", tz="UTC")
    offsets = rng.integers(0, 86_400_000_000, ROWS)
    base = np.datetime64(BASE.replace(tzinfo=None), "us")
    return pa.table(
        {
            "driver_id": pa.array(rng.integers(0, DRIVERS, ROWS), pa.int64()),
            "event_timestamp": pa.array(base + offsets, ts),
            "created": pa.array(base + offsets + 1_000_000, ts),
            "conv_rate": rng.random(ROWS),
            "trips_today": pa.array(rng.integers(0, 50, ROWS), pa.int64()),
        }
    )


@pytest.fixture
def repo(tmp_path: Path, redis_url: str) -> Path:
    path = make_repo(tmp_path / "repo", data={"drivers": big_table()})
    project = f"kill_{tmp_path.name[-16:]}".replace("-", "_")
    text = (path / "featurehub.yaml").read_text().replace("test_project", project)
    (path / "featurehub.yaml").write_text(text + f"online_store: {redis_url}\n")
    return path


def online_stamps(store: FeatureStore) -> list[object]:
    rows = [{"driver_id": i} for i in range(0, DRIVERS, 97)]
    response = store.get_online_features(["driver_stats:conv_rate"], rows)
    return response.event_timestamps["conv_rate"]


def test_kill_9_during_materialization(repo: Path) -> None:
    store = FeatureStore(repo)
    store.apply()
    first, second = BASE, BASE + timedelta(hours=12)
    store.materialize(first, second)  # the online store now holds values up to noon
    before = online_stamps(store)
    view = store.get_feature_view("driver_stats")
    half = duckdb.sql(f"SELECT count(*) FROM {store.offline_store.relation(view)}").fetchall()
    root = Path(__file__).parents[2]
    command = [
        sys.executable,
        "-m",
        "featurehub",
        "-r",
        str(repo),
        "materialize",
        first.isoformat(),
        (first + timedelta(days=1)).isoformat(),
        "--json",
    ]
    for delay in (0.3, 0.8, 1.2, 1.6, 2.0, 2.5, 3.0, 3.5, 4.0, 4.5, 5.5):
        child = subprocess.Popen(
            command,
            cwd=root,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env={**os.environ},
        )
        time.sleep(delay)
        child.send_signal(signal.SIGKILL)
        child.wait()
        count = duckdb.sql(f"SELECT count(*) FROM {store.offline_store.relation(view)}").fetchall()
        assert count in (half, [(ROWS,)])  # the old commit, or the whole new one: never a part
        after = online_stamps(store)
        for old, new in zip(before, after, strict=True):
            assert old is None or (new is not None and new >= old)
        before = after
    done = subprocess.run(command, cwd=root, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    count = duckdb.sql(f"SELECT count(*) FROM {store.offline_store.relation(view)}").fetchall()
    assert count == [(ROWS,)]
    runs = store.runs()
    assert runs[0].status == "success"
    # Killed runs (those that got as far as recording themselves) are not left "running":
    # the next run saw their processes gone.
    killed = [run for run in runs[1:] if run.status != "success"]
    assert all(run.status == "failed" for run in killed)
    assert all("abandoned" in (run.error or "") for run in killed)
