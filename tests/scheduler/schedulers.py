"""Scheduler processes for tests: a repo of several hourly views over rows that arrived in
the last hours (real time), and `featurehub schedule` started as subprocesses."""

from __future__ import annotations

import itertools
import os
import subprocess
import sys
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pyarrow as pa
import sqlalchemy as sa

from featurehub.registry.sql import normalize_url
from featurehub.registry.tables import materialization_runs
from tests.repos import make_repo

ROOT = Path(__file__).parents[2]
ROWS = 1_200

VIEW = """
{name} = FeatureView(
    name="{name}",
    entities=[driver],
    source=source,
    schema=[Field("conv_rate", Float64), Field("trips_today", Int64)],
    schedule="@hourly",
    catchup="{catchup}",
)
"""

HEADER = """
from featurehub import Entity, FeatureView, Field, ParquetSource
from featurehub.types import Float64, Int64

driver = Entity(name="driver", join_keys=["driver_id"])
source = ParquetSource(path="data/drivers.parquet", created_timestamp_field="created")
"""


def this_hour() -> datetime:
    return datetime.now(timezone.utc).replace(minute=0, second=0, microsecond=0)


def arrivals(hours: int, drivers: int = ROWS) -> pa.Table:
    """ROWS rows, one per driver (or ROWS / `drivers` each), that arrived (created) over the
    `hours` before this hour."""
    rng = np.random.default_rng(7)
    end = np.datetime64(this_hour().replace(tzinfo=None), "us")
    created = end - rng.integers(1, hours * 3_600_000_000, ROWS).astype("timedelta64[us]")
    ts = pa.timestamp("us", tz="UTC")
    return pa.table(
        {
            "driver_id": pa.array(np.arange(ROWS) % drivers, pa.int64()),
            "event_timestamp": pa.array(created - np.timedelta64(300_000_000, "us"), ts),
            "created": pa.array(created, ts),
            "conv_rate": rng.random(ROWS),
            "trips_today": pa.array(rng.integers(0, 50, ROWS), pa.int64()),
        }
    )


def scheduled_repo(
    root: Path,
    registry_url: str,
    redis_url: str,
    views: list[str],
    *,
    hours: int,
    catchup: str = "all",
    lease_seconds: float = 3.0,
    max_parallel: int = 4,
    data: pa.Table | None = None,
) -> Path:
    defs = HEADER + "".join(VIEW.format(name=name, catchup=catchup) for name in views)
    project = f"sched_{uuid.uuid4().hex[:10]}"
    path = make_repo(
        root,
        files={"defs.py": defs},
        data={"drivers": arrivals(hours) if data is None else data},
        project=project,
        registry=registry_url,
    )
    with (path / "featurehub.yaml").open("a") as config:
        config.write(
            f"online_store: {redis_url}\n"
            "scheduler:\n"
            f"  lease_seconds: {lease_seconds}\n"
            "  poll_seconds: 0.5\n"
            "  max_attempts: 2\n"
            "  retry_wait_seconds: 0.1\n"
            f"  max_parallel: {max_parallel}\n"
        )
    return path


def featurehub(repo: Path, *args: str) -> list[str]:
    """The command line of `featurehub -r REPO ARGS...`."""
    return [sys.executable, "-m", "featurehub", "-r", str(repo), *args]


def start_scheduler(
    repo: Path, log: Path, *args: str, pause: str | None = None
) -> subprocess.Popen[bytes]:
    env = {**os.environ}
    if pause:
        env["FEATUREHUB_PAUSE_AT"] = pause
    return subprocess.Popen(
        featurehub(repo, "schedule", *args),
        cwd=ROOT,
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
        env=env,
    )


def run_rows(registry_url: str) -> list[sa.RowMapping]:
    """Every materialization run, with its owner's pid, oldest first."""
    engine = sa.create_engine(normalize_url(registry_url))
    try:
        with engine.connect() as conn:
            query = sa.select(materialization_runs).order_by(materialization_runs.c.id)
            return list(conn.execute(query).mappings())
    finally:
        engine.dispose()


def overlapping(rows: list[sa.RowMapping]) -> list[tuple[int, int]]:
    """Pairs of runs of one view whose [started_at, finished_at] intersect."""
    pairs = []
    by_view: dict[str, list[sa.RowMapping]] = {}
    for row in rows:
        by_view.setdefault(row["view"], []).append(row)
    for runs in by_view.values():
        runs.sort(key=lambda row: row["started_at"])
        for before, after in itertools.pairwise(runs):
            if before["finished_at"] is None or before["finished_at"] > after["started_at"]:
                pairs.append((before["id"], after["id"]))
    return pairs


def hours_ago(hours: int) -> datetime:
    return this_hour() - timedelta(hours=hours)
