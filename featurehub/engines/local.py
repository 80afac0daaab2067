"""The local engine: DuckDB and Arrow in this process, no JVM. The embedded default."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone
from pathlib import Path

import pyarrow as pa

from featurehub.definitions import FeatureView
from featurehub.engines.base import (
    Engine,
    MaterializationResult,
    MaterializationTask,
    latest_per_key,
)
from featurehub.offline.base import CREATED_TIMESTAMP, EVENT_TIMESTAMP, OfflineStore
from featurehub.offline.source_reader import connect, view_relation_sql
from featurehub.online.base import OnlineStore


def _literal(moment: datetime) -> str:
    return f"TIMESTAMPTZ '{moment.astimezone(timezone.utc).isoformat()}'"


def source_query(view: FeatureView, repo_path: Path, start: datetime, end: datetime) -> str:
    """SQL selecting the view's normalized rows with event time in [start, end).

    A source without a created timestamp column gets created = event time: the value was
    known when it happened, so it is visible from then on.
    """
    source = view.source
    ts = f'CAST("{source.timestamp_field}" AS TIMESTAMPTZ)'
    created = (
        f'COALESCE(CAST("{source.created_timestamp_field}" AS TIMESTAMPTZ), {ts})'
        if source.created_timestamp_field
        else ts
    )
    columns = [f'"{key}"' for key in view.join_keys]
    columns += [f"{ts} AS {EVENT_TIMESTAMP}", f"{created} AS {CREATED_TIMESTAMP}"]
    columns += [f'"{name}"' for name in view.feature_names]
    keys_present = " AND ".join(f'"{key}" IS NOT NULL' for key in view.join_keys)
    return (
        f"SELECT {', '.join(columns)} FROM {view_relation_sql(view, repo_path)} AS source "
        f"WHERE {ts} >= {_literal(start)} AND {ts} < {_literal(end)} AND {keys_present}"
    )


class LocalEngine(Engine):
    """Reads the source with DuckDB, writes every row to the offline store and the newest
    row per entity to the online store (when the view is online)."""

    def __init__(self, repo_path: Path, offline: OfflineStore, online: OnlineStore | None) -> None:
        self.repo_path = repo_path
        self.offline = offline
        self.online = online

    def materialize(self, task: MaterializationTask) -> MaterializationResult:
        con = connect(self.repo_path)
        try:
            table = con.sql(
                source_query(task.view, self.repo_path, task.start, task.end)
            ).to_arrow_table()
        finally:
            con.close()
        online = self.online if task.view.online and table.num_rows else None
        # The online write runs beside the offline one: they share no state, and one waits on
        # Redis while the other encodes Parquet or waits on the disk. A run that fails in
        # either store is recorded as failed and re-run whole; both writes are idempotent.
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="online-write") as pool:
            online_rows = pool.submit(_write_online, online, task.view, table)
            written = self.offline.write(task.view, table, task.start, task.end)
            return MaterializationResult(
                task.view.name,
                task.start,
                task.end,
                table.num_rows,
                written.rows,
                online_rows.result(),
            )


def _write_online(online: OnlineStore | None, view: FeatureView, table: pa.Table) -> int:
    """The newest row per entity into the online store; 0 when there is none to write to."""
    if online is None:
        return 0
    return online.write(view, latest_per_key(table, view))
