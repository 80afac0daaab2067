"""Build small feature repos on disk for tests: a config, definition files and data."""

from __future__ import annotations

import textwrap
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

BASE = datetime(2026, 1, 1, tzinfo=timezone.utc)

DRIVER_DEFS = """
from datetime import timedelta
from featurehub import Entity, FeatureService, FeatureView, Field, ParquetSource
from featurehub.types import Float64, Int64

driver = Entity(name="driver", join_keys=["driver_id"])
stats = FeatureView(
    name="driver_stats",
    entities=[driver],
    source=ParquetSource(path="data/drivers.parquet", created_timestamp_field="created"),
    schema=[Field("conv_rate", Float64), Field("trips_today", Int64)],
    ttl=timedelta(days=2),
    schedule="@hourly",
)
service = FeatureService(name="driver_service", features=[stats])
"""


def driver_table(rows: int = 10) -> pa.Table:
    ts = pa.timestamp("us", tz="UTC")
    return pa.table(
        {
            "driver_id": pa.array([1000 + i % 3 for i in range(rows)], pa.int64()),
            "event_timestamp": pa.array([BASE + timedelta(hours=i) for i in range(rows)], ts),
            "created": pa.array([BASE + timedelta(hours=i, minutes=5) for i in range(rows)], ts),
            "conv_rate": [i / rows for i in range(rows)],
            "trips_today": pa.array(list(range(rows)), pa.int64()),
            "city": ["x"] * rows,
        }
    )


def make_repo(
    root: Path,
    files: dict[str, str] | None = None,
    data: dict[str, pa.Table] | None = None,
    project: str = "test_project",
    registry: str = "sqlite:///data/registry.db",
) -> Path:
    """A repo under `root` (default: the driver definitions and their data)."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "featurehub.yaml").write_text(f"project: {project}\nregistry: {registry}\n")
    for name, text in (files if files is not None else {"defs.py": DRIVER_DEFS}).items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(textwrap.dedent(text))
    (root / "data").mkdir(exist_ok=True)
    for name, table in (data if data is not None else {"drivers": driver_table()}).items():
        pq.write_table(table, root / "data" / f"{name}.parquet")
    return root
