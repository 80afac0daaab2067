"""Parquet files under a root folder, published through the registry's commit log.

Layout: <root>/<project>/<view>/commits/<commit_id>/date=YYYY-MM-DD/*.parquet, partitioned
by event date. A write goes to <view>/_staging/<commit_id>/ first, is renamed into commits/
(an atomic rename on one file system), and becomes visible only when the registry records
the commit. A process killed at any point leaves at most an unreferenced folder, which the
next write of the view removes.

A commit either replaces an event-time interval (a backfill, or an incremental run of a
source without created timestamps) or appends the rows that arrived in a window (an
incremental run: late rows have old event times). Every commit holds rows as of a moment
`as_of`: those visible (max(event, created)) before it. A row of commit i is hidden by a
replacing commit j whose interval contains its event time and whose `as_of` is after the
row became visible (so j holds its own copy of the row, or knows it is gone), when j is
later than i or i appends. So every source row a run took is visible exactly once, the
latest copy of it, whatever order backfills and incremental runs took and as of when.
"""

from __future__ import annotations

import os
import shutil
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from featurehub.definitions import FeatureView
from featurehub.errors import ConfigError, FeaturehubError
from featurehub.offline.base import (
    CREATED_TIMESTAMP,
    EVENT_TIMESTAMP,
    OfflineStore,
    WriteResult,
    offline_schema,
)
from featurehub.offline.connection import duckdb_connection
from featurehub.registry.offline_commits import OfflineCommit, OfflineCommitLog
from featurehub.types import as_utc

# Unreferenced commit folders younger than this may belong to a write still in flight, and
# commits superseded more recently may still be read by a job that listed their files.
GRACE_SECONDS = 3600.0
_EPOCH_DAY = date(1970, 1, 1)


class OfflineWriteError(FeaturehubError):
    """Rows given to the offline store do not fit the view or the interval."""


def _quote(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _literal(moment: datetime) -> str:
    return f"TIMESTAMPTZ {_quote(moment.astimezone(timezone.utc).isoformat())}"


def _check_root(root: Path) -> Path:
    """Refuse a root that is (or lies under) a file now, with the fix, rather than fail later
    in the middle of a write with the operating system's words."""
    existing = next((p for p in (root, *root.parents) if p.exists()), None)
    if existing is not None and not existing.is_dir():
        where = "is a file" if existing == root else f"is under a file, {str(existing)!r}"
        raise ConfigError(
            f"the offline store's root {str(root)!r} {where}: point offline_store.root in "
            "featurehub.yaml (or FEATUREHUB_OFFLINE_ROOT) at a folder"
        )
    return root


class ParquetOfflineStore(OfflineStore):
    def __init__(self, root: Path, project: str, commits: OfflineCommitLog) -> None:
        self.root = _check_root(Path(root))
        self.project = project
        self._commits = commits

    def _view_dir(self, view: str) -> Path:
        return self.root / self.project / view

    def write(
        self,
        view: FeatureView,
        table: pa.Table,
        start: datetime,
        end: datetime,
        *,
        mode: str = "replace",
        as_of: datetime | None = None,
    ) -> WriteResult:
        staging = self.stage_rows(view, table, start, end, mode=mode)
        commit = self.seal(view, staging, start, end, mode=mode, as_of=as_of)
        self._commits.publish(commit)
        return WriteResult(view.name, commit.commit_id, commit.row_count, start, end)

    def stage_rows(
        self, view: FeatureView, table: pa.Table, start: datetime, end: datetime, *, mode: str
    ) -> Path:
        """Write rows into a new staging folder (invisible until sealed and published).
        A replacing write's rows must lie in [start, end); an append's may have any time."""
        start, end = _check_interval(view, start, end)
        table = _conform(view, table, start, end, check_interval=mode == "replace")
        staging = self.stage(view)
        if table.num_rows:
            _write_partitioned(table, staging)
        return staging

    def stage(self, view: FeatureView) -> Path:
        """A new, empty staging folder for one write of `view`. Another writer (the Spark
        engine) may fill it with `date=YYYY-MM-DD/*.parquet` in the view's offline schema,
        then hand it to `publish`."""
        self._collect_garbage(view.name)
        commit_id = f"{time.strftime('%Y%m%dT%H%M%S')}-{uuid.uuid4().hex[:12]}"
        staging = self._view_dir(view.name) / "_staging" / commit_id
        staging.mkdir(parents=True)
        return staging

    def seal(
        self,
        view: FeatureView,
        staging: Path,
        start: datetime,
        end: datetime,
        *,
        mode: str = "replace",
        as_of: datetime | None = None,
    ) -> OfflineCommit:
        """Flush a staged write and move it into commits/; it stays invisible until the
        returned commit is published (`OfflineCommitLog.publish`, possibly in the caller's
        transaction). An append's interval becomes the span of its rows' event times."""
        start, end = _check_interval(view, start, end)
        if mode not in ("replace", "append"):
            raise OfflineWriteError(f"view {view.name!r}: unknown write mode {mode!r}")
        files = sorted(p.relative_to(staging).as_posix() for p in staging.rglob("*.parquet"))
        rows = _count_rows(staging, files)
        span = _event_span(staging, files)
        if mode == "append" and span is not None:
            start, end = span
        _fsync_tree(staging)
        final = self._view_dir(view.name) / "commits" / staging.name
        final.parent.mkdir(parents=True, exist_ok=True)
        os.replace(staging, final)
        return OfflineCommit(
            commit_id=staging.name,
            view=view.name,
            interval_start=start,
            interval_end=end,
            path=str(final.relative_to(self.root)),
            files=files,
            row_count=rows,
            committed_at=datetime.now(timezone.utc),
            mode=mode,
            as_of=None if as_of is None else as_utc(as_of),
            newest_event=None if span is None else span[1] - timedelta(microseconds=1),
        )

    def publish(
        self, view: FeatureView, staging: Path, start: datetime, end: datetime
    ) -> WriteResult:
        """Seal a staged write and publish it at once (a replacing write)."""
        commit = self.seal(view, staging, start, end)
        self._commits.publish(commit)
        return WriteResult(view.name, commit.commit_id, commit.row_count, start, end)

    def staged_rows(self, staging: Path) -> int:
        """Rows in a staged write, from its files' footers."""
        files = sorted(p.relative_to(staging).as_posix() for p in staging.rglob("*.parquet"))
        return _count_rows(staging, files)

    def discard(self, staging: Path) -> None:
        """Remove a staged write that will not be published."""
        shutil.rmtree(staging, ignore_errors=True)

    def relation(self, view: FeatureView) -> str | None:
        commits = self._commits.live(view.name)
        if not commits:
            return None
        columns = ", ".join(f'"{f.name}"' for f in offline_schema(view))
        parts = []
        for index, commit in enumerate(commits):
            if not commit.files:
                continue
            paths = ", ".join(_quote(str(self.root / commit.path / f)) for f in commit.files)
            hidden = [
                _holds(c, commit)
                for position, c in enumerate(commits)
                if c.mode == "replace"
                and position != index
                and (position > index or commit.mode == "append")
                and _overlap(c, commit)
            ]
            where = f" WHERE NOT ({' OR '.join(hidden)})" if hidden else ""
            parts.append(f"SELECT {columns} FROM read_parquet([{paths}]){where}")
        if not parts:
            schema = offline_schema(view)
            casts = ", ".join(f'CAST(NULL AS {_duckdb_type(f.type)}) AS "{f.name}"' for f in schema)
            return f"(SELECT {casts} LIMIT 0)"
        return "(" + " UNION ALL ".join(parts) + ")"

    def _collect_garbage(self, view: str) -> None:
        """Remove the folders of commits superseded more than a grace period ago (a reader
        that listed their files before may still be reading them) and of writes that died
        before publishing (older than the grace period: they may still be in flight)."""
        view_dir = self._view_dir(view)
        cutoff = time.time() - GRACE_SECONDS
        superseded = self._commits.superseded_before(
            view, datetime.fromtimestamp(cutoff, timezone.utc)
        )
        self._commits.forget(view, superseded)  # first: a crash then leaves only an orphan
        for relative in superseded:
            shutil.rmtree(self.root / relative, ignore_errors=True)
        known = self._commits.known_paths(view)
        for folder in ("_staging", "commits"):
            for path in (view_dir / folder).glob("*"):
                relative = str(path.relative_to(self.root))
                if relative not in known and path.stat().st_mtime < cutoff:
                    shutil.rmtree(path, ignore_errors=True)


def _holds(replacing: OfflineCommit, commit: OfflineCommit) -> str:
    """SQL over `commit`'s rows: `replacing` holds the row (its interval contains the row's
    event time, and the row was visible before its as_of). The second test is left out when
    every row of `commit` was visible before it (taken as of no later)."""
    covers = (
        f"{EVENT_TIMESTAMP} >= {_literal(replacing.interval_start)} AND "
        f"{EVENT_TIMESTAMP} < {_literal(replacing.interval_end)}"
    )
    if replacing.as_of is None or (commit.as_of is not None and commit.as_of <= replacing.as_of):
        return f"({covers})"
    visible = f"greatest({EVENT_TIMESTAMP}, {CREATED_TIMESTAMP})"
    return f"({covers} AND {visible} < {_literal(replacing.as_of)})"


def _overlap(a: OfflineCommit, b: OfflineCommit) -> bool:
    return a.interval_start < b.interval_end and a.interval_end > b.interval_start


def _event_span(folder: Path, files: list[str]) -> tuple[datetime, datetime] | None:
    """[earliest, latest + 1 us) of the staged rows' event times, None when there are none:
    from the files' footer statistics (both writers record them), so nothing is read back."""
    lows, highs = [], []
    for name in files:
        metadata = pq.ParquetFile(folder / name).metadata
        column = metadata.schema.names.index(EVENT_TIMESTAMP)
        for group in range(metadata.num_row_groups):
            chunk = metadata.row_group(group)
            if not chunk.num_rows:
                continue
            statistics = chunk.column(column).statistics
            if statistics is None or not statistics.has_min_max:
                raise OfflineWriteError(
                    f"{folder / name} has no statistics for {EVENT_TIMESTAMP}: write it with "
                    "Parquet statistics on (the default of Arrow and Spark)"
                )
            lows.append(as_utc(statistics.min))
            highs.append(as_utc(statistics.max))
    if not lows:
        return None
    return min(lows), max(highs) + timedelta(microseconds=1)


def _check_interval(view: FeatureView, start: datetime, end: datetime) -> tuple[datetime, datetime]:
    start, end = as_utc(start), as_utc(end)
    if end <= start:
        raise OfflineWriteError(f"view {view.name!r}: interval end {end} is not after {start}")
    return start, end


def _count_rows(folder: Path, files: list[str]) -> int:
    """Rows in the staged files, from their footers."""
    return sum(pq.ParquetFile(folder / name).metadata.num_rows for name in files)


def _duckdb_type(arrow_type: pa.DataType) -> str:
    con = duckdb_connection()
    try:
        con.register("empty_column", pa.table({"x": pa.array([], arrow_type)}))
        return str(con.sql("SELECT * FROM empty_column").types[0])
    finally:
        con.close()


def _conform(
    view: FeatureView,
    table: pa.Table,
    start: datetime,
    end: datetime,
    *,
    check_interval: bool = True,
) -> pa.Table:
    """Cast to the view's offline schema, and check every row is inside [start, end)."""
    schema = offline_schema(view)
    missing = [name for name in schema.names if name not in table.column_names]
    if missing:
        raise OfflineWriteError(f"view {view.name!r}: rows lack column(s) {missing}")
    try:
        table = table.select(schema.names).cast(schema)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
        raise OfflineWriteError(f"view {view.name!r}: rows do not fit its schema: {exc}") from None
    if table.num_rows:
        import pyarrow.compute as pc

        events = table[EVENT_TIMESTAMP]
        if events.null_count:
            raise OfflineWriteError(
                f"view {view.name!r}: {events.null_count} row(s) have no event timestamp; "
                "filter them out or fill the source's timestamp column"
            )
        low, high = pc.min(events).as_py(), pc.max(events).as_py()
        if check_interval and (low < start or high >= end):
            raise OfflineWriteError(
                f"view {view.name!r}: event times {low} .. {high} fall outside the written "
                f"interval [{start}, {end}); filter the rows to the interval"
            )
    return table


def _write_partitioned(table: pa.Table, folder: Path) -> None:
    """Parquet files partitioned by event date (UTC): `date=YYYY-MM-DD/part-0.parquet`.

    Arrow writes one file per day, days in parallel threads (the writer releases the GIL).
    Rows are grouped by day with a stable sort, which leaves them untouched when they already
    come in event order, as most sources do. Dictionary encoding is kept for keys, integers
    and strings and skipped for floating-point and timestamp columns, whose values rarely
    repeat: trying it there doubled the write time for no smaller file.
    """
    days = _event_days(table)
    if days.size and np.any(days[1:] < days[:-1]):
        order = np.argsort(days, kind="stable")
        table, days = table.take(pa.array(order)), days[order]
    starts = np.flatnonzero(np.r_[True, days[1:] != days[:-1]]) if days.size else days
    ends = np.r_[starts[1:], days.size]
    dictionary = [
        field.name
        for field in table.schema
        if not (pa.types.is_floating(field.type) or pa.types.is_timestamp(field.type))
    ]

    def write_day(start: int, end: int) -> None:
        day = (_EPOCH_DAY + timedelta(days=int(days[start]))).isoformat()
        partition = folder / f"date={day}"
        partition.mkdir()
        path = partition / "part-0.parquet"
        pq.write_table(table.slice(start, end - start), path, use_dictionary=dictionary)
        fsync(path)  # here, so the disk flushes one day while the next one is encoded

    with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
        for future in [pool.submit(write_day, s, e) for s, e in zip(starts, ends, strict=True)]:
            future.result()


def _event_days(table: pa.Table) -> np.ndarray:
    """Each row's event date as days since 1970-01-01 (UTC), floored for times before it."""
    events = table.column(EVENT_TIMESTAMP).cast(pa.timestamp("us", tz="UTC"))
    micros = events.cast(pa.int64()).to_numpy()
    return micros // 86_400_000_000


def _fsync_tree(folder: Path) -> None:
    """Flush files and folders to disk before they are published."""
    for path in sorted(folder.rglob("*"), reverse=True):
        fsync(path)
    fsync(folder)


def fsync(path: Path) -> None:
    """Flush one file or folder to disk (cheap when nothing of it is still unwritten)."""
    descriptor = os.open(path, os.O_RDONLY | (os.O_DIRECTORY if path.is_dir() else 0))
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
