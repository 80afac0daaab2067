"""`featurehub init`: a new feature repo, with sample data, ready for `featurehub apply`."""

from __future__ import annotations

import shutil
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from featurehub.errors import ConfigError

TEMPLATE = Path(__file__).parent / "basic"


def _sample_data(path: Path, rows: int = 1_000, seed: int = 0) -> None:
    """Hourly stats of 20 drivers over the last two days, so lookups find fresh values."""
    rng = np.random.default_rng(seed)
    end = datetime.now(timezone.utc).replace(minute=0, second=0, microsecond=0)
    start_us = int((end - timedelta(days=2)).timestamp() * 1e6)
    event = start_us + rng.integers(0, 2 * 86_400_000_000, rows)
    timestamp = pa.timestamp("us", tz="UTC")
    table = pa.table(
        {
            "driver_id": pa.array(rng.integers(1, 21, rows), pa.int64()),
            "event_timestamp": pa.array(event, timestamp),
            "created": pa.array(event + 60_000_000, timestamp),
            "conv_rate": rng.random(rows),
            "trips_today": rng.poisson(5, rows),
        }
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, path)


def create_repo(directory: Path, project: str) -> None:
    """Copy the template into `directory` (which must be new or empty) and write its data."""
    if directory.exists() and any(directory.iterdir()):
        raise ConfigError(f"{directory} exists and is not empty; choose a new folder")
    shutil.copytree(TEMPLATE, directory, dirs_exist_ok=True)
    config = directory / "featurehub.yaml"
    config.write_text(config.read_text().replace("PROJECT_NAME", project))
    _sample_data(directory / "data" / "driver_stats.parquet")
