"""The engine contract: turn a view's source rows in [start, end) into stored features."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from datetime import datetime

import pyarrow as pa

from featurehub.definitions import FeatureView
from featurehub.offline.base import CREATED_TIMESTAMP, EVENT_TIMESTAMP
from featurehub.offline.connection import duckdb_connection


@dataclass(frozen=True)
class MaterializationTask:
    """Materialize `view` for event times in [start, end) (UTC)."""

    view: FeatureView
    start: datetime
    end: datetime


@dataclass(frozen=True)
class MaterializationResult:
    view: str
    start: datetime
    end: datetime
    rows_read: int
    rows_written: int
    online_rows_written: int = 0


class Engine(ABC):
    """Engines read the source, normalize rows (join keys, event_timestamp,
    created_timestamp, features) and hand them to the stores. Two engines given the same
    task must store identical rows."""

    @abstractmethod
    def materialize(self, task: MaterializationTask) -> MaterializationResult: ...


def latest_per_key(table: pa.Table, view: FeatureView) -> pa.Table:
    """The newest row of each entity key: what the online store keeps.

    Newest by (event_timestamp, created_timestamp), the offline join's order; an exact tie is
    broken by the feature values in schema order (greatest first, nulls last), as the offline
    join breaks it when asked for all of the view's features.
    """
    keys = ", ".join(f'"{key}"' for key in view.join_keys)
    ties = [f"{CREATED_TIMESTAMP} DESC"]
    ties += [f'"{name}" DESC NULLS LAST' for name in view.feature_names]
    con = duckdb_connection()
    try:
        con.register("materialized_rows", table)
        # A hash aggregate finds each key's newest event time; only rows at that time meet the
        # (costly) window that breaks ties, usually one per key.
        return con.sql(
            f"""WITH newest AS (
                    SELECT {keys}, max({EVENT_TIMESTAMP}) AS newest_event
                    FROM materialized_rows GROUP BY ALL)
                SELECT r.* FROM materialized_rows AS r JOIN newest USING ({keys})
                WHERE r.{EVENT_TIMESTAMP} = newest.newest_event
                QUALIFY row_number() OVER (PARTITION BY {keys} ORDER BY {", ".join(ties)}) = 1"""
        ).to_arrow_table()
    finally:
        con.close()
