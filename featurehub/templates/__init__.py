"""`featurehub init`: a new feature repo, with sample data, ready for `featurehub apply`."""

from __future__ import annotations

import re
import shutil
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from featurehub.definitions.names import check_name
from featurehub.errors import ConfigError, DefinitionError

TEMPLATE = Path(__file__).parent / "basic"
SAMPLE_DAYS = 2


def project_name_from(text: str) -> str:
    """A valid project name made from `text` (a folder name): `my-repo` -> `my_repo`.

    Folder names often hold dashes, dots and spaces, which a project name (it becomes part
    of table names and Redis keys) may not; each run of them becomes one underscore.
    """
    name = re.sub(r"[^A-Za-z0-9_]+", "_", text).strip("_")
    if not name:
        return "feature_repo"
    if name[0].isdigit():
        name = f"repo_{name}"
    return name[:128]


def check_project(name: str) -> str:
    """Return `name` when it is a valid project name; else say the rule and a valid name."""
    try:
        return check_name("project", name)
    except DefinitionError:
        raise ConfigError(
            f"--project {name!r} is invalid: use letters, digits and underscores, starting "
            f"with a letter or underscore, e.g. --project {project_name_from(name)}"
        ) from None


def _sample_data(path: Path, rows: int = 1_000, seed: int = 0) -> tuple[datetime, datetime]:
    """Hourly stats of 20 drivers over the last two days, so lookups find fresh values.

    Returns [start, end) of the event times written, so the caller can say what to
    materialize.
    """
    rng = np.random.default_rng(seed)
    end = datetime.now(timezone.utc).replace(minute=0, second=0, microsecond=0)
    start = end - timedelta(days=SAMPLE_DAYS)
    start_us = int(start.timestamp() * 1e6)
    event = start_us + rng.integers(0, SAMPLE_DAYS * 86_400_000_000, rows)
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
    return start, end


def create_repo(directory: Path, project: str) -> tuple[datetime, datetime]:
    """Copy the template into `directory` (which must be new or empty) and write its data.

    Returns [start, end) of the sample data's event times.
    """
    check_project(project)
    if directory.exists() and not directory.is_dir():
        raise ConfigError(f"{directory} is a file, not a folder: choose a new folder for the repo")
    try:
        if directory.exists() and any(directory.iterdir()):
            raise ConfigError(f"{directory} exists and is not empty; choose a new folder")
        shutil.copytree(TEMPLATE, directory, dirs_exist_ok=True)
        config = directory / "featurehub.yaml"
        config.write_text(config.read_text().replace("PROJECT_NAME", project))
        return _sample_data(directory / "data" / "driver_stats.parquet")
    except OSError as exc:
        raise ConfigError(
            f"cannot create the repo in {directory}: {_reason(exc)}; "
            "choose a folder you can write to"
        ) from None


def _reason(exc: OSError) -> str:
    """`Not a directory: 'a/file'`: the OS's words and the path they are about."""
    if exc.strerror and exc.filename:
        return f"{exc.strerror}: {str(exc.filename)!r}"
    return exc.strerror or str(exc)
