"""Rebuild the online store from the offline store, without reading or recomputing sources.

For an online store that lost its data (a Redis restarted without persistence, a new
server): the newest stored row per entity key of each view, chosen exactly as a
materialization chooses it, is written with the usual newest-wins guard, so a rebuild
running beside a materialization never moves a key back. Runs as a materialization run of
kind "online_rebuild" through the same runner.
"""

from __future__ import annotations

from featurehub.definitions import FeatureView
from featurehub.engines.base import (
    Engine,
    MaterializationResult,
    MaterializationTask,
    StagedRun,
    latest_per_key_sql,
    selection_sql,
)
from featurehub.engines.local import timestamp_literal
from featurehub.engines.planning import EPOCH, run_moment
from featurehub.offline.base import offline_schema
from featurehub.offline.connection import duckdb_connection
from featurehub.offline.parquet import ParquetOfflineStore
from featurehub.online.base import OnlineStore


def rebuild_tasks(views: list[FeatureView]) -> list[MaterializationTask]:
    """One task per online view: every stored row visible now, into the online store only."""
    moment = run_moment(None)
    return [
        MaterializationTask(view, EPOCH, moment, moment, offline=False, kind="online_rebuild")
        for view in views
        if view.online
    ]


class OfflineStoreEngine(Engine):
    """Reads the offline store instead of the source; writes the online store only."""

    def __init__(self, offline: ParquetOfflineStore, online: OnlineStore) -> None:
        self.offline = offline
        self.online = online

    def materialize(self, task: MaterializationTask) -> StagedRun:
        relation = self.offline.relation(task.view)
        if relation is None:
            table = offline_schema(task.view).empty_table()
        else:
            taken, _ = selection_sql(task, timestamp_literal)
            con = duckdb_connection()
            try:
                rows = f"(SELECT * FROM {relation} WHERE {taken})"
                table = con.sql(latest_per_key_sql(rows, task.view)).to_arrow_table()
            finally:
                con.close()
        written = self.online.write(task.view, table) if table.num_rows else 0
        result = MaterializationResult.of(task, table.num_rows, written, 0, 0)
        return StagedRun(result, None)
