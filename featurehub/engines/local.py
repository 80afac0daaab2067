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
    StagedRun,
    latest_per_key,
    selection_sql,
)
from featurehub.offline.base import CREATED_TIMESTAMP, EVENT_TIMESTAMP
from featurehub.offline.parquet import ParquetOfflineStore
from featurehub.offline.source_reader import connect, view_relation_sql
from featurehub.online.base import OnlineStore


def timestamp_literal(moment: datetime) -> str:
    """A UTC instant in DuckDB SQL."""
    return f"TIMESTAMPTZ '{moment.astimezone(timezone.utc).isoformat()}'"


def normalized_query(view: FeatureView, repo_path: Path) -> str:
    """SQL of the view's source rows in the offline shape: keys, event_timestamp,
    created_timestamp, features; rows with a null join key dropped (no read can ask for them).

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
        f"WHERE {keys_present}"
    )


class LocalEngine(Engine):
    """Reads the source with DuckDB, stages the task's rows in the offline store and writes
    the newest row per entity to the online store (when the task and the view are online)."""

    def __init__(
        self, repo_path: Path, offline: ParquetOfflineStore, online: OnlineStore | None
    ) -> None:
        self.repo_path = repo_path
        self.offline = offline
        self.online = online

    def materialize(self, task: MaterializationTask) -> StagedRun:
        taken, pending = selection_sql(task, timestamp_literal)
        rows = normalized_query(task.view, self.repo_path)
        con = connect(self.repo_path)
        try:
            table = con.sql(f"SELECT * FROM ({rows}) WHERE {taken}").to_arrow_table()
            [(rows_pending, rows_skipped)] = con.sql(
                f"SELECT count(*) FILTER (WHERE {pending}), "
                f"count(*) FILTER (WHERE {EVENT_TIMESTAMP} IS NULL) FROM ({rows})"
            ).fetchall()
        finally:
            con.close()
        online = self.online if task.writes_online and table.num_rows else None
        staging = None
        # The online write runs beside the offline staging: they share no state, and one
        # waits on Redis while the other encodes Parquet or waits on the disk. Nothing is
        # visible offline until the runner publishes the staged rows.
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="online-write") as pool:
            online_rows = pool.submit(_write_online, online, task.view, table)
            try:
                if task.offline:
                    staging = self.offline.stage_rows(
                        task.view, table, task.start, task.end, mode=task.mode
                    )
                written = online_rows.result()
            except BaseException:
                if staging is not None:
                    self.offline.discard(staging)
                raise
        result = MaterializationResult.of(
            task, table.num_rows, written, int(rows_pending), int(rows_skipped)
        )
        return StagedRun(result, staging)


def _write_online(online: OnlineStore | None, view: FeatureView, table: pa.Table) -> int:
    """The newest row per entity into the online store; 0 when there is none to write to."""
    if online is None:
        return 0
    return online.write(view, latest_per_key(table, view))
