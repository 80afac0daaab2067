"""The serving log: every feature vector the server served, as Parquet, for later checks.

The request path only appends to a bounded queue (`ServingLog.log`); a background thread
drains it every 50 ms, groups records by (feature service, date) and commits one Parquet file
per group every `batch_rows` rows or `flush_seconds`. When the queue is full the records are
dropped and counted (`dropped`), so a slow disk never slows serving.

Layout, readable with DuckDB's hive partitioning::

    <root>/feature_service=<name>/date=YYYY-MM-DD/part-<utc time>-<pid>-<uuid>.parquet

Requests that named features rather than a service go to `feature_service=ad-hoc` (a name no
service can have). Commit protocol: a file is written to `<root>/_staging/<uuid>.parquet.tmp`,
fsynced, then renamed (atomic on one file system) into its partition folder, whose directory
entry is fsynced. A reader globbing `**/*.parquet` sees whole files only: staging files do not
end in `.parquet`. Files left in `_staging` by a crash are garbage; delete them at will.

Schema (stable; one row per served entity row):

| column | type | |
| --- | --- | --- |
| request_id | string | the response's request_id |
| row | int32 | index of the entity row in the request |
| served_at | timestamp[us, UTC] | when the request was answered |
| model_version | string, nullable | reserved for a later issue; null today |
| entity_keys | string (JSON object) | join key -> value |
| feature_values | string (JSON object) | feature name -> value (bytes as base64) |
| statuses | string (JSON object) | feature name -> present, not_found or expired |
| event_timestamps | string (JSON object) | feature name -> ISO 8601 time or null |
| feature_service, date | hive partition columns | from the path |

JSON strings rather than map columns: feature values have mixed types, and one string column
per kind keeps the schema identical across services and over time. DuckDB reads them with
`feature_values->>'$.conv_rate'` or `json_extract`.
"""

from __future__ import annotations

import base64
import logging
import os
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.parquet as pq

log = logging.getLogger(__name__)

AD_HOC = "ad-hoc"
"""Partition name of requests that listed features rather than naming a feature service."""

SCHEMA = pa.schema(
    [
        pa.field("request_id", pa.string(), nullable=False),
        pa.field("row", pa.int32(), nullable=False),
        pa.field("served_at", pa.timestamp("us", tz="UTC"), nullable=False),
        pa.field("model_version", pa.string()),
        pa.field("entity_keys", pa.string(), nullable=False),
        pa.field("feature_values", pa.string(), nullable=False),
        pa.field("statuses", pa.string(), nullable=False),
        pa.field("event_timestamps", pa.string(), nullable=False),
    ]
)


@dataclass(frozen=True, slots=True)
class ServedRequest:
    """One answered request, as the server hands it over: columnar, not yet split by row.

    The lists are owned by the log from now on; the server must not change them.
    """

    request_id: str
    served_at: float  # time.time()
    feature_service: str | None
    keys: dict[str, list[Any]]
    values: dict[str, list[Any]]
    statuses: dict[str, list[str]]
    event_timestamps: dict[str, list[datetime | None]]

    @property
    def rows(self) -> int:
        for column in self.keys.values():
            return len(column)
        return 0


def _json_default(value: Any) -> Any:
    if isinstance(value, (bytes, bytearray, memoryview)):
        return base64.b64encode(bytes(value)).decode()
    raise TypeError(f"cannot log a {type(value).__name__}")


def _dumps(value: Any) -> str:
    return orjson.dumps(
        value, default=_json_default, option=orjson.OPT_UTC_Z | orjson.OPT_NON_STR_KEYS
    ).decode()


class ServingLog:
    """A bounded queue of served requests and the thread that commits them to Parquet.

    `log` is called on the request path and never blocks: it appends to a deque (atomic under
    the GIL, no lock, no wake-up of the writer); the writer polls it every `poll_seconds`.
    `close` stops the thread after committing everything queued (a graceful shutdown loses
    nothing).
    """

    def __init__(
        self,
        root: Path,
        *,
        queue_size: int = 10_000,
        batch_rows: int = 50_000,
        flush_seconds: float = 10.0,
        poll_seconds: float = 0.05,
        on_dropped: Callable[[int], None] | None = None,
        on_written: Callable[[int], None] | None = None,
    ) -> None:
        self.root = Path(root)
        self.queue_size = queue_size
        self.batch_rows = batch_rows
        self.flush_seconds = flush_seconds
        self.poll_seconds = min(poll_seconds, flush_seconds)
        self.dropped = 0
        self.written = 0
        self._on_dropped = on_dropped
        self._on_written = on_written
        self._queue: deque[ServedRequest] = deque()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._closed = False

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._run, name="featurehub-serving-log", daemon=True
            )
            self._thread.start()

    def log(self, request: ServedRequest) -> bool:
        """Queue a served request; False (and counted as dropped) when the queue is full."""
        if not self._closed and len(self._queue) < self.queue_size:
            self._queue.append(request)
            return True
        rows = request.rows
        self.dropped += rows
        if self._on_dropped is not None:
            self._on_dropped(rows)
        return False

    def close(self, timeout: float | None = 30.0) -> None:
        """Commit everything queued, then stop the thread. Later `log` calls drop."""
        if self._closed:
            return
        self._closed = True
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
        else:
            self._commit_safely(self._take())  # never started: write here

    @property
    def queued(self) -> int:
        return len(self._queue)

    # -- the writer thread -------------------------------------------------------------------

    def _take(self) -> list[ServedRequest]:
        taken = []
        queue = self._queue
        while queue:
            taken.append(queue.popleft())
        return taken

    def _run(self) -> None:
        pending: list[ServedRequest] = []
        rows = 0
        deadline = time.monotonic() + self.flush_seconds
        while not self._stop.wait(self.poll_seconds):
            for request in self._take():
                pending.append(request)
                rows += request.rows
            if rows >= self.batch_rows or (pending and time.monotonic() >= deadline):
                self._commit_safely(pending)
                pending, rows = [], 0
                deadline = time.monotonic() + self.flush_seconds
        # closing: `log` refuses new records from now on; commit the rest
        pending.extend(self._take())
        self._commit_safely(pending)

    def _commit_safely(self, requests: Sequence[ServedRequest]) -> None:
        if not requests:
            return
        try:
            self.commit(requests)
        except Exception:  # a full disk must not kill the thread: count and carry on
            lost = sum(r.rows for r in requests)
            log.exception("serving log: could not write %d records; they are dropped", lost)
            self.dropped += lost
            if self._on_dropped is not None:
                self._on_dropped(lost)

    def commit(self, requests: Sequence[ServedRequest]) -> list[Path]:
        """Write `requests` as one Parquet file per (feature service, date); return them."""
        groups: dict[tuple[str, str], list[ServedRequest]] = {}
        for request in requests:
            day = datetime.fromtimestamp(request.served_at, timezone.utc).date().isoformat()
            groups.setdefault((request.feature_service or AD_HOC, day), []).append(request)
        files = []
        for (service, day), members in groups.items():
            table = to_table(members)
            folder = self.root / f"feature_service={service}" / f"date={day}"
            files.append(self._publish(table, folder))
            self.written += table.num_rows
            if self._on_written is not None:
                self._on_written(table.num_rows)
        return files

    def _publish(self, table: pa.Table, folder: Path) -> Path:
        staging = self.root / "_staging"
        staging.mkdir(parents=True, exist_ok=True)
        name = f"{uuid.uuid4().hex}"
        temporary = staging / f"{name}.parquet.tmp"
        pq.write_table(table, temporary, compression="zstd")
        with temporary.open("rb") as handle:
            os.fsync(handle.fileno())
        folder.mkdir(parents=True, exist_ok=True)
        stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S%f")
        final = folder / f"part-{stamp}-{os.getpid()}-{name}.parquet"
        os.replace(temporary, final)
        _fsync_dir(folder)
        return final


def to_table(requests: Sequence[ServedRequest]) -> pa.Table:
    """One row per served entity row, in the log's SCHEMA (runs on the writer thread)."""
    ids: list[str] = []
    rows: list[int] = []
    times: list[datetime] = []
    keys: list[str] = []
    values: list[str] = []
    statuses: list[str] = []
    stamps: list[str] = []
    cache: dict[tuple[Any, ...], str] = {}  # rows of a request often share statuses and times
    for request in requests:
        count = request.rows
        ids.extend([request.request_id] * count)
        rows.extend(range(count))
        times.extend([datetime.fromtimestamp(request.served_at, timezone.utc)] * count)
        features = tuple(request.values)
        key_names = tuple(request.keys)
        for row in zip(*request.keys.values(), strict=True):
            keys.append(_dumps(dict(zip(key_names, row, strict=True))))
        for row in zip(*request.values.values(), strict=True):
            values.append(_dumps(dict(zip(features, row, strict=True))))
        for column, kinds in ((statuses, request.statuses), (stamps, request.event_timestamps)):
            for row in zip(*kinds.values(), strict=True):
                key = (features, *row)
                text = cache.get(key)
                if text is None:
                    text = cache[key] = _dumps(dict(zip(features, row, strict=True)))
                column.append(text)
    columns = [ids, rows, times, [None] * len(ids), keys, values, statuses, stamps]
    return pa.table(dict(zip(SCHEMA.names, columns, strict=True)), schema=SCHEMA)


def _fsync_dir(folder: Path) -> None:
    descriptor = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
