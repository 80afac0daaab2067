"""The record of materialization runs, and the watermarks derived from it.

A run is a backfill (event times in [start, end)), an incremental run (rows that arrived,
that is became visible, in [start, end)) or an online rebuild. Its offline rows are published
in the same transaction that records it a success, so a run that did not succeed published
nothing offline; what it may have written online is said in its error.

A view's watermark is the latest end of its successful incremental runs, which is never after
the moment they ran: the next incremental run takes what arrived from there on. It is derived
from the runs rather than stored, so a failed run cannot move it, and backfills (to any END,
even far in the future) leave it alone.

A run records the process that owns it (host, pid) and a heartbeat that the owner refreshes
while it works. A process killed with -9 cannot say it failed, so readers say it for it: a
"running" run whose owner is gone (same host and the pid is not alive) or whose heartbeat is
older than STALE_AFTER is marked failed ("abandoned") by the next `start` or `list`.
"""

from __future__ import annotations

import builtins
import os
import socket
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

import sqlalchemy as sa

from featurehub.errors import FeaturehubError
from featurehub.registry.offline_commits import OfflineCommit, OfflineCommitLog
from featurehub.registry.tables import materialization_runs as runs
from featurehub.types import as_utc


def not_published(targets: str) -> str:
    """What a run that did not succeed left behind, by the stores it targets: true for a
    failure at any step (offline rows are published only with the success)."""
    if targets == "online":
        return (
            "it published nothing offline (it writes only the online store); the online store "
            "may hold some of its rows (never older than what it held before: newest wins). "
            "Re-run it"
        )
    said = "nothing of it was published offline and its watermark did not move"
    if targets == "offline":
        return f"{said}; it writes nothing online. Re-run it"
    return (
        f"{said}; the online store may already hold some of its rows (never older than what "
        "it held before: newest wins), which the next run of the same interval rewrites. "
        "Re-run it"
    )


HEARTBEAT_SECONDS = 10.0
STALE_AFTER = timedelta(seconds=90)  # nine missed heartbeats: the owner is gone
_HOST = socket.gethostname()[:255]


def _utc(moment: datetime | None) -> datetime | None:
    return None if moment is None else as_utc(moment)


@dataclass(frozen=True)
class Run:
    id: int
    view: str
    interval_start: datetime
    interval_end: datetime
    engine: str
    status: str
    rows_read: int | None
    rows_written: int | None
    online_rows_written: int | None
    error: str | None
    started_at: datetime
    finished_at: datetime | None
    kind: str = "backfill"  # or "incremental", "online_rebuild"
    as_of: datetime | None = None
    targets: str = "offline+online"  # or "offline", "online"
    rows_pending: int | None = None
    rows_skipped: int | None = None

    @property
    def duration_seconds(self) -> float | None:
        if self.finished_at is None:
            return None
        return (self.finished_at - self.started_at).total_seconds()


class RunLog:
    """Materialization runs of one project, in the registry database."""

    def __init__(self, engine: sa.Engine, project: str) -> None:
        self._engine = engine
        self._project = project

    def start(
        self,
        view: str,
        start: datetime,
        end: datetime,
        engine: str,
        *,
        kind: str = "backfill",
        as_of: datetime | None = None,
        targets: str = "offline+online",
    ) -> int:
        self.reap()
        now = datetime.now(timezone.utc)
        with self._engine.begin() as conn:
            return int(
                conn.execute(
                    runs.insert()
                    .values(
                        project=self._project,
                        view=view,
                        interval_start=start,
                        interval_end=end,
                        engine=engine,
                        status="running",
                        started_at=now,
                        host=_HOST,
                        pid=os.getpid(),
                        heartbeat_at=now,
                        kind=kind,
                        as_of=as_of or now,
                        targets=targets,
                    )
                    .returning(runs.c.id)
                ).scalar_one()
            )

    @contextmanager
    def heartbeat(self, run_id: int) -> Iterator[None]:
        """Refresh the run's heartbeat every HEARTBEAT_SECONDS while the block runs."""
        stop = threading.Event()

        def beat() -> None:
            while not stop.wait(HEARTBEAT_SECONDS):
                try:
                    with self._engine.begin() as conn:
                        conn.execute(
                            runs.update()
                            .where(runs.c.id == run_id, runs.c.status == "running")
                            .values(heartbeat_at=datetime.now(timezone.utc))
                        )
                except Exception:  # a missed beat is retried; the run goes on
                    continue

        thread = threading.Thread(target=beat, name=f"run-{run_id}-heartbeat", daemon=True)
        thread.start()
        try:
            yield
        finally:
            stop.set()
            thread.join()

    def reap(self) -> int:
        """Mark failed the running runs whose process is gone; returns how many."""
        stale_before = datetime.now(timezone.utc) - STALE_AFTER
        query = sa.select(
            runs.c.id, runs.c.host, runs.c.pid, runs.c.heartbeat_at, runs.c.targets
        ).where(runs.c.project == self._project, runs.c.status == "running")
        with self._engine.connect() as conn:
            running = conn.execute(query).all()
        dead = [
            (row.id, row.host, row.pid, row.targets)
            for row in running
            if (row.host == _HOST and row.pid is not None and not _alive(row.pid))
            or row.heartbeat_at is None
            or _utc(row.heartbeat_at) < stale_before  # type: ignore[operator]
        ]
        for run_id, host, pid, targets in dead:
            owner = f"pid {pid} on {host}" if pid is not None else "an older featurehub"
            with self._engine.begin() as conn:
                conn.execute(
                    runs.update()
                    .where(runs.c.id == run_id, runs.c.status == "running")
                    .values(
                        status="failed",
                        finished_at=datetime.now(timezone.utc),
                        error=(
                            f"abandoned: the process running it ({owner}) stopped before it "
                            f"finished (killed or crashed); {not_published(targets)}."
                        ),
                    )
                )
        return len(dead)

    def succeed(
        self,
        run_id: int,
        rows_read: int,
        rows_written: int,
        online_rows_written: int,
        *,
        rows_pending: int = 0,
        rows_skipped: int = 0,
        commit: OfflineCommit | None = None,
        fence: Callable[[sa.Connection], None] | None = None,
    ) -> None:
        """Record the run a success and publish its offline commit, in one transaction: a
        run is visible offline exactly when it is recorded a success. Refused (nothing
        published) when the run is no longer running, e.g. a reader declared it abandoned
        because its heartbeat stopped, or when `fence` raises in the transaction (the view's
        lease was taken over)."""
        with self._engine.begin() as conn:
            if fence is not None:
                fence(conn)
            updated = conn.execute(
                runs.update()
                .where(runs.c.id == run_id, runs.c.status == "running")
                .values(
                    status="success",
                    finished_at=datetime.now(timezone.utc),
                    rows_read=rows_read,
                    rows_written=rows_written,
                    online_rows_written=online_rows_written,
                    rows_pending=rows_pending,
                    rows_skipped=rows_skipped,
                )
            ).rowcount
            if updated != 1:
                raise RunNotRunning(
                    f"materialization run {run_id} was marked failed while it ran (its "
                    f"heartbeat stopped for over {STALE_AFTER.total_seconds():.0f}s); "
                    "nothing of it was published offline. Re-run it"
                )
            if commit is not None:
                OfflineCommitLog(self._engine, self._project).publish(commit, conn)

    def fail(self, run_id: int, error: str) -> None:
        self._finish(run_id, status="failed", error=error[:4000])

    def _finish(self, run_id: int, **values: object) -> None:
        with self._engine.begin() as conn:
            conn.execute(
                runs.update()
                .where(runs.c.id == run_id)
                .values(finished_at=datetime.now(timezone.utc), **values)
            )

    def watermark(self, view: str) -> datetime | None:
        """Where the next incremental run of `view` starts: the latest end of its successful
        incremental runs that wrote the offline store, or None if none did."""
        return self.watermarks(view).get(view)

    def watermarks(self, view: str | None = None) -> dict[str, datetime]:
        """`watermark` of every view that has one (or of `view` only), in one query."""
        query = (
            sa.select(runs.c.view, sa.func.max(runs.c.interval_end))
            .where(
                runs.c.project == self._project,
                runs.c.status == "success",
                runs.c.kind == "incremental",
                runs.c.targets != "online",
            )
            .group_by(runs.c.view)
        )
        if view is not None:
            query = query.where(runs.c.view == view)
        with self._engine.connect() as conn:
            return {name: as_utc(end) for name, end in conn.execute(query)}

    def materialized_until(self) -> dict[str, datetime]:
        """Per view, how far its materialized data reaches: the latest end of a successful
        run that wrote the offline store, never past the moment that run took rows up to
        (its as_of): a backfill to a future END holds nothing beyond the time it ran."""
        query = sa.select(runs.c.view, runs.c.interval_end, runs.c.as_of, runs.c.finished_at).where(
            runs.c.project == self._project,
            runs.c.status == "success",
            runs.c.targets != "online",
            runs.c.kind != "online_rebuild",
        )
        reached: dict[str, datetime] = {}
        with self._engine.connect() as conn:
            for view, end, as_of, finished in conn.execute(query):
                bounds = [as_utc(moment) for moment in (end, as_of or finished) if moment]
                until = min(bounds)
                if view not in reached or until > reached[view]:
                    reached[view] = until
        return reached

    def last_successes(self) -> dict[str, datetime]:
        """Per view, when its latest successful run (of any kind) finished, in one query."""
        query = (
            sa.select(runs.c.view, sa.func.max(runs.c.finished_at))
            .where(runs.c.project == self._project, runs.c.status == "success")
            .group_by(runs.c.view)
        )
        with self._engine.connect() as conn:
            return {name: as_utc(end) for name, end in conn.execute(query)}

    def last_online_runs(self) -> dict[str, int]:
        """Per view, the id of its latest successful run that wrote the online store: the
        online store's marker for the view must be at least that."""
        query = (
            sa.select(runs.c.view, sa.func.max(runs.c.id))
            .where(
                runs.c.project == self._project,
                runs.c.status == "success",
                runs.c.targets != "offline",
                runs.c.online_rows_written > 0,
            )
            .group_by(runs.c.view)
        )
        with self._engine.connect() as conn:
            return {view: int(run_id) for view, run_id in conn.execute(query)}

    def offline_only_since_online(self) -> dict[str, int]:
        """Per view, its latest successful offline-only run that wrote rows, when no run has
        written the view online since: the online store lacks those rows."""
        success = sa.and_(runs.c.project == self._project, runs.c.status == "success")
        offline_only = (
            sa.select(runs.c.view, sa.func.max(runs.c.id).label("run_id"))
            .where(success, runs.c.targets == "offline", runs.c.rows_written > 0)
            .group_by(runs.c.view)
        )
        online = (
            sa.select(runs.c.view, sa.func.max(runs.c.id).label("run_id"))
            .where(success, runs.c.targets != "offline")
            .group_by(runs.c.view)
        )
        with self._engine.connect() as conn:
            written = {view: run_id for view, run_id in conn.execute(offline_only)}
            served = {view: run_id for view, run_id in conn.execute(online)}
        return {
            view: int(run_id) for view, run_id in written.items() if run_id > served.get(view, 0)
        }

    def list(self, view: str | None = None, limit: int = 50) -> list[Run]:
        """The newest runs first."""
        self.reap()
        query = sa.select(runs).where(runs.c.project == self._project)
        if view:
            query = query.where(runs.c.view == view)
        return self._runs(query.order_by(runs.c.id.desc()).limit(limit))

    def latest(self) -> dict[str, Run]:
        """Each view's newest run, in one query."""
        self.reap()
        newest = (
            sa.select(sa.func.max(runs.c.id))
            .where(runs.c.project == self._project)
            .group_by(runs.c.view)
        )
        return {run.view: run for run in self._runs(sa.select(runs).where(runs.c.id.in_(newest)))}

    def _runs(self, query: sa.Select[Any]) -> builtins.list[Run]:
        with self._engine.connect() as conn:
            rows = conn.execute(query).mappings().all()
        return [
            Run(
                id=row["id"],
                view=row["view"],
                interval_start=_utc(row["interval_start"]),  # type: ignore[arg-type]
                interval_end=_utc(row["interval_end"]),  # type: ignore[arg-type]
                engine=row["engine"],
                status=row["status"],
                rows_read=row["rows_read"],
                rows_written=row["rows_written"],
                online_rows_written=row["online_rows_written"],
                error=row["error"],
                started_at=_utc(row["started_at"]),  # type: ignore[arg-type]
                finished_at=_utc(row["finished_at"]),
                kind=row["kind"],
                as_of=_utc(row["as_of"]),
                targets=row["targets"],
                rows_pending=row["rows_pending"],
                rows_skipped=row["rows_skipped"],
            )
            for row in rows
        ]


class RunNotRunning(FeaturehubError):
    """A run tried to finish after it was recorded failed."""


def _alive(pid: int) -> bool:
    """Whether a process with this pid exists on this host."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # it exists, owned by someone else
        return True
    return True
