"""The engine contract: turn a view's source rows into staged offline rows and online rows.

Which rows a task takes is decided here once, for both engines. A row becomes *visible* at
max(event_timestamp, created_timestamp): the first moment a point-in-time join can return it
(its event has happened and it has been written). A task takes rows as of a moment `as_of`,
never after the run's start: only rows visible before it. Rows visible later (stamped in the
future, or not yet written) are left for a later run, which takes them when they are due, so
the online store never holds a row that the offline join at now would not return, and the
offline store never holds what the online store does not.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import pyarrow as pa

from featurehub.definitions import FeatureView
from featurehub.offline.base import CREATED_TIMESTAMP, EVENT_TIMESTAMP
from featurehub.offline.connection import duckdb_connection


@dataclass(frozen=True)
class MaterializationTask:
    """Materialize `view`: the rows visible before `as_of` that are in [start, end) (UTC).

    `window="event"`: [start, end) bounds event times, and the offline write replaces what
    the store held for that interval (a backfill; re-running it is idempotent).
    `window="arrival"`: [start, end) bounds when rows became visible, whatever their event
    time (an incremental run, late rows included), and the offline write appends; then
    `as_of == end`. `offline`/`online` say which stores the task writes.
    """

    view: FeatureView
    start: datetime
    end: datetime
    as_of: datetime
    window: str = "event"
    offline: bool = True
    online: bool = True
    # "backfill", "incremental" (its end becomes the view's watermark when it succeeds) or
    # "online_rebuild" (the online store rewritten from the offline store).
    kind: str = "backfill"

    @property
    def mode(self) -> str:
        """The offline write: "replace" for an event window, "append" for an arrival one."""
        return "replace" if self.window == "event" else "append"

    @property
    def writes_online(self) -> bool:
        return self.online and self.view.online


@dataclass(frozen=True)
class MaterializationResult:
    view: str
    start: datetime
    end: datetime
    rows_read: int  # rows taken: in the window and visible before as_of
    rows_written: int  # offline
    online_rows_written: int = 0
    rows_pending: int = 0  # in the window, visible only after as_of: a later run takes them
    rows_skipped: int = 0  # source rows without an event timestamp: no run can take them
    as_of: datetime | None = None
    window: str = "event"

    def to_dict(self) -> dict[str, object]:
        """JSON-ready: what `featurehub materialize --json` prints per view."""
        return {
            "view": self.view,
            "window": self.window,
            "start": self.start.isoformat(),
            "end": self.end.isoformat(),
            "as_of": self.as_of.isoformat() if self.as_of else None,
            "rows_read": self.rows_read,
            "rows_written": self.rows_written,
            "online_rows_written": self.online_rows_written,
            "rows_pending": self.rows_pending,
            "rows_skipped": self.rows_skipped,
        }

    @classmethod
    def of(
        cls, task: MaterializationTask, rows: int, online_rows: int, pending: int, skipped: int
    ) -> MaterializationResult:
        """The result of `task`, which took `rows` rows (written offline when it writes
        offline) and wrote `online_rows` online."""
        return cls(
            task.view.name,
            task.start,
            task.end,
            rows_read=rows,
            rows_written=rows if task.offline else 0,
            online_rows_written=online_rows,
            rows_pending=pending,
            rows_skipped=skipped,
            as_of=task.as_of,
            window=task.window,
        )


@dataclass(frozen=True)
class StagedRun:
    """What an engine did: the online rows are written, the offline rows staged in `staging`
    (None when the task writes no offline rows), invisible until the runner publishes them."""

    result: MaterializationResult
    staging: Path | None


class Engine(ABC):
    """Engines read the source, normalize rows (join keys, event_timestamp,
    created_timestamp, features), take the task's rows (`selection_sql`), stage them in the
    offline store and write the newest row per key to the online store. They publish
    nothing offline: the runner does, once both stores hold the rows, in the transaction that
    records the run a success. Two engines given the same task must store identical rows."""

    @abstractmethod
    def materialize(self, task: MaterializationTask) -> StagedRun: ...


def selection_sql(task: MaterializationTask, literal: Callable[[datetime], str]) -> tuple[str, str]:
    """SQL predicates over normalized rows: (taken by the task, pending for a later run).

    `literal` renders a UTC instant in the engine's SQL dialect. A row without an event
    timestamp matches neither.
    """
    event, created = EVENT_TIMESTAMP, CREATED_TIMESTAMP
    visible = f"greatest({event}, {created})"
    as_of = literal(task.as_of)
    if task.window == "event":
        bounds = f"{event} >= {literal(task.start)} AND {event} < {literal(task.end)}"
        taken = f"{bounds} AND {visible} < {as_of}"
    elif task.window == "arrival":
        bounds = ""
        taken = f"{visible} >= {literal(task.start)} AND {visible} < {as_of}"
    else:
        raise ValueError(f"unknown window {task.window!r}")
    # A backfill's pending rows are those of its interval; an incremental run's, all rows
    # still to come, which a later incremental run takes.
    if task.kind == "backfill" and bounds:
        return taken, f"{bounds} AND {visible} >= {as_of}"
    return taken, f"{visible} >= {as_of}"


def latest_per_key(table: pa.Table, view: FeatureView) -> pa.Table:
    """The newest row of each entity key of `table`: what the online store keeps."""
    con = duckdb_connection()
    try:
        con.register("materialized_rows", table)
        return con.sql(latest_per_key_sql("materialized_rows", view)).to_arrow_table()
    finally:
        con.close()


def latest_per_key_sql(relation: str, view: FeatureView) -> str:
    """DuckDB SQL selecting the newest row of each entity key of `relation`.

    Newest by (event_timestamp, created_timestamp), the offline join's order; an exact tie is
    broken by the feature values in schema order (greatest first, nulls last), as the offline
    join breaks it when asked for all of the view's features.
    """
    keys = ", ".join(f'"{key}"' for key in view.join_keys)
    ties = [f"{CREATED_TIMESTAMP} DESC"]
    ties += [f'"{name}" DESC NULLS LAST' for name in view.feature_names]
    # A hash aggregate finds each key's newest event time; only rows at that time meet the
    # (costly) window that breaks ties, usually one per key.
    return f"""WITH rows AS (SELECT * FROM {relation}),
            newest AS (SELECT {keys}, max({EVENT_TIMESTAMP}) AS newest_event
                       FROM rows GROUP BY ALL)
        SELECT r.* FROM rows AS r JOIN newest USING ({keys})
        WHERE r.{EVENT_TIMESTAMP} = newest.newest_event
        QUALIFY row_number() OVER (PARTITION BY {keys} ORDER BY {", ".join(ties)}) = 1"""
