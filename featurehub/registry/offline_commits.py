"""The offline store's commit log: which files of a view are published, in order.

Publishing a commit is one registry transaction, which is what makes an offline write atomic:
files written before it are invisible, and after it all of them are visible at once. The
transaction may be the caller's, so that a materialization run is recorded a success in the
same transaction that publishes its rows.

Two kinds of commit: a "replace" commit holds every row of its event-time interval visible
before its `as_of` and hides what older commits hold there; an "append" commit holds the
rows that arrived (became visible) in one window, whatever their event times, and hides
nothing. `ParquetOfflineStore.relation` states the visibility rule.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa

from featurehub.registry.tables import offline_commits
from featurehub.types import as_utc


@dataclass(frozen=True)
class OfflineCommit:
    """One published write of a view: rows for event times in [interval_start, interval_end)."""

    commit_id: str
    view: str
    interval_start: datetime
    interval_end: datetime
    path: str
    files: list[str]
    row_count: int
    committed_at: datetime
    sequence: int = 0
    mode: str = "replace"  # or "append"
    as_of: datetime | None = None  # rows visible before it are in the commit
    newest_event: datetime | None = None  # the latest event time of its rows (freshness)


def _utc(moment: datetime | None) -> datetime | None:
    return None if moment is None else as_utc(moment)


class OfflineCommitLog:
    """Commits of every view of a project, kept in the registry database."""

    def __init__(self, engine: sa.Engine, project: str) -> None:
        self._engine = engine
        self._project = project

    def publish(self, commit: OfflineCommit, conn: sa.Connection | None = None) -> None:
        """Make a commit visible, in `conn`'s transaction if given; older commits whose
        interval a replacing commit covers become superseded."""
        if conn is None:
            with self._engine.begin() as own:
                self.publish(commit, own)
            return
        table = offline_commits
        new_id = conn.execute(
            table.insert()
            .values(
                project=self._project,
                view=commit.view,
                commit_id=commit.commit_id,
                interval_start=commit.interval_start,
                interval_end=commit.interval_end,
                path=commit.path,
                files=json.dumps(commit.files),
                row_count=commit.row_count,
                superseded=False,
                committed_at=commit.committed_at,
                mode=commit.mode,
                as_of=commit.as_of,
                newest_event=commit.newest_event,
            )
            .returning(table.c.id)
        ).scalar_one()
        if commit.mode != "replace":
            return
        # Superseded: every row of it is held by this commit (see ParquetOfflineStore).
        taken_before = (
            sa.true()
            if commit.as_of is None
            else sa.and_(table.c.as_of.is_not(None), table.c.as_of <= commit.as_of)
        )
        conn.execute(
            table.update()
            .where(
                table.c.project == self._project,
                table.c.view == commit.view,
                table.c.id < new_id,
                table.c.interval_start >= commit.interval_start,
                table.c.interval_end <= commit.interval_end,
                taken_before,
                ~table.c.superseded,
            )
            .values(superseded=True, superseded_at=commit.committed_at)
        )

    def live(self, view: str) -> list[OfflineCommit]:
        """Commits of which some rows are still visible, oldest first."""
        table = offline_commits
        query = (
            sa.select(table)
            .where(table.c.project == self._project, table.c.view == view, ~table.c.superseded)
            .order_by(table.c.id)
        )
        with self._engine.connect() as conn:
            rows = conn.execute(query).mappings().all()
        return [
            OfflineCommit(
                commit_id=row["commit_id"],
                view=row["view"],
                interval_start=as_utc(row["interval_start"]),
                interval_end=as_utc(row["interval_end"]),
                path=row["path"],
                files=json.loads(row["files"]),
                row_count=row["row_count"],
                committed_at=as_utc(row["committed_at"]),
                sequence=row["id"],
                mode=row["mode"],
                as_of=None if row["as_of"] is None else as_utc(row["as_of"]),
                newest_event=_utc(row["newest_event"]),
            )
            for row in rows
        ]

    def newest_events(self) -> dict[str, datetime]:
        """Per view, the latest event time of the rows its live commits hold, in one query:
        what freshness is measured from. (A commit written before this was recorded counts
        as its interval's end, an upper bound: it never makes a view look staler.)"""
        table = offline_commits
        newest = sa.func.max(sa.func.coalesce(table.c.newest_event, table.c.interval_end))
        query = (
            sa.select(table.c.view, newest)
            .where(table.c.project == self._project, ~table.c.superseded, table.c.row_count > 0)
            .group_by(table.c.view)
        )
        with self._engine.connect() as conn:
            return {view: as_utc(moment) for view, moment in conn.execute(query)}

    def known_paths(self, view: str) -> set[str]:
        """Every commit folder the log knows of, live or superseded (for garbage collection)."""
        table = offline_commits
        query = sa.select(table.c.path).where(
            table.c.project == self._project, table.c.view == view
        )
        with self._engine.connect() as conn:
            return {row[0] for row in conn.execute(query)}

    def superseded_before(self, view: str, moment: datetime) -> list[str]:
        """Folders of the view's commits superseded before `moment`."""
        table = offline_commits
        query = sa.select(table.c.path).where(
            table.c.project == self._project,
            table.c.view == view,
            table.c.superseded,
            table.c.superseded_at < moment,
        )
        with self._engine.connect() as conn:
            return [row[0] for row in conn.execute(query)]

    def forget(self, view: str, paths: list[str]) -> None:
        """Drop superseded commits from the log (their folders are deleted next)."""
        if not paths:
            return
        table = offline_commits
        with self._engine.begin() as conn:
            conn.execute(
                table.delete().where(
                    table.c.project == self._project,
                    table.c.view == view,
                    table.c.superseded,
                    table.c.path.in_(paths),
                )
            )
