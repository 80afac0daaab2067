"""The serving log: every feature vector the server served, as Parquet, for later checks.

The request path only appends to a bounded queue (`ServingLog.log`); a background thread
drains it every 50 ms, turns what it took into Arrow columns at once (a few milliseconds of
work per poll, vectorized, rather than one long burst holding the GIL at flush time, which
stalled requests by tens of milliseconds), and commits one Parquet file per (feature
service, date) every `batch_rows` rows or `flush_seconds`. When the queue is full the records
are dropped and counted (`dropped`), so a slow disk never slows serving.

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
import itertools
import logging
import os
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Sequence
from datetime import datetime, timezone
from operator import itemgetter
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.compute as pc
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


class ServedRequest(NamedTuple):
    """One answered request, as the server hands it over: columnar, not yet split by row.

    The lists are owned by the log from now on; the server must not change them. A named
    tuple: built on every request, it costs a tenth of a frozen dataclass.
    """

    request_id: str
    served_at: float  # time.time()
    feature_service: str | None
    keys: dict[str, list[Any]]
    values: dict[str, list[Any]]  # the same feature names, in the same order, in the next two
    statuses: dict[str, list[str]]
    event_timestamps: dict[str, list[Any]]  # aware datetimes, ISO 8601 strings, or None

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


CONVERT_ROWS = 256
"""The writer converts queued records to Arrow once this many rows wait (or at a flush).
Fewer rows cost more Arrow calls per row; more rows hold the GIL longer per column (about
0.5 ms per 1,024 values here), which is what a request waiting for it sees."""

YIELD_EVERY = 8
"""Requests added to columns between two pauses of the writer (see `to_tables`)."""

YIELD_SECONDS = 0.0001
"""A pause: long enough for a thread waiting for the GIL to take it (a zero sleep lets go
of it, but the sleeper often takes it back before the waiter wakes)."""

Group = tuple[str, str]
"""(feature service or AD_HOC, YYYY-MM-DD): one Parquet file per group and commit."""


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
        self._drop(request.rows)
        return False

    def close(self, timeout: float | None = 30.0) -> None:
        """Commit everything queued, then stop the thread. Later `log` calls drop."""
        if self._closed:
            return
        self._closed = True
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
        else:  # never started: write here
            pending: dict[Group, list[pa.Table]] = {}
            self._convert(self._take(), pending)
            self._write_safely(pending)

    @property
    def queued(self) -> int:
        return len(self._queue)

    def commit(self, requests: Sequence[ServedRequest]) -> list[Path]:
        """Write `requests` as one Parquet file per (feature service, date); return them."""
        tables: dict[Group, list[pa.Table]] = {}
        for group, table in to_tables(requests).items():
            tables.setdefault(group, []).append(table)
        return self.write(tables)

    def write(self, tables: dict[Group, list[pa.Table]]) -> list[Path]:
        """Commit each group's tables as one Parquet file; return the files."""
        files = []
        for (service, day), parts in tables.items():
            table = pa.concat_tables(parts) if len(parts) > 1 else parts[0]
            folder = self.root / f"feature_service={service}" / f"date={day}"
            files.append(self._publish(table, folder))
            self.written += table.num_rows
            if self._on_written is not None:
                self._on_written(table.num_rows)
        return files

    # -- the writer thread -------------------------------------------------------------------

    def _drop(self, rows: int) -> None:
        self.dropped += rows
        if self._on_dropped is not None:
            self._on_dropped(rows)

    def _take(self) -> list[ServedRequest]:
        taken = []
        queue = self._queue
        while queue:
            taken.append(queue.popleft())
        return taken

    def _run(self) -> None:
        taken: list[ServedRequest] = []  # not converted yet
        taken_rows = 0
        pending: dict[Group, list[pa.Table]] = {}  # converted, not written yet
        pending_rows = 0
        deadline = time.monotonic() + self.flush_seconds
        while not self._stop.wait(self.poll_seconds):
            for request in self._take():
                taken.append(request)
                taken_rows += request.rows
            due = time.monotonic() >= deadline
            # Converting costs a few Arrow calls per column whatever the row count: convert
            # thousands of rows at a time, not each poll's few.
            if taken_rows >= min(CONVERT_ROWS, self.batch_rows) or (due and taken):
                pending_rows += self._convert(taken, pending)
                taken, taken_rows = [], 0
            if pending_rows >= self.batch_rows or (pending and due):
                self._write_safely(pending)
                pending, pending_rows = {}, 0
                deadline = time.monotonic() + self.flush_seconds
        # closing: `log` refuses new records from now on; commit the rest
        taken.extend(self._take())
        self._convert(taken, pending)
        self._write_safely(pending)

    def _convert(self, requests: list[ServedRequest], pending: dict[Group, list[pa.Table]]) -> int:
        """Add `requests` to `pending` as Arrow tables; return the rows added. A request that
        cannot be converted (a value JSON cannot hold) is dropped and counted."""
        if not requests:
            return 0
        try:
            converted = [to_tables(requests)]
        except Exception:  # find the culprit: rare, so one request at a time is fine
            converted = []
            for request in requests:
                try:
                    converted.append(to_tables([request]))
                except Exception:
                    log.exception("serving log: cannot log request %s", request.request_id)
                    self._drop(request.rows)
        rows = 0
        for tables in converted:
            for group, table in tables.items():
                pending.setdefault(group, []).append(table)
                rows += table.num_rows
        return rows

    def _write_safely(self, tables: dict[Group, list[pa.Table]]) -> None:
        if not tables:
            return
        try:
            self.write(tables)
        except Exception:  # a full disk must not kill the thread: count and carry on
            lost = sum(t.num_rows for parts in tables.values() for t in parts)
            log.exception("serving log: could not write %d records; they are dropped", lost)
            self._drop(lost)

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


# -- requests to Arrow: columns first, JSON text built by Arrow kernels ---------------------


class _Columns:
    """The requests of one group: same key names, feature names and sharing (below).

    Features of one view share one list of statuses and one of event timestamps (the server
    hands them over so): a sharing tuple maps each feature to the first feature with the
    same list, and a shared list is gathered and turned into JSON text once, not per feature.
    """

    def __init__(
        self,
        keys: tuple[str, ...],
        features: tuple[str, ...],
        status_sharing: tuple[int, ...],
        stamp_sharing: tuple[int, ...],
    ) -> None:
        self.key_names = keys
        self.feature_names = features
        self.status_sharing = status_sharing
        self.stamp_sharing = stamp_sharing
        self.requests: list[ServedRequest] = []
        self.counts: list[int] = []

    def add(self, request: ServedRequest, rows: int) -> None:
        self.requests.append(request)
        self.counts.append(rows)

    def table(self) -> pa.Table:
        # Columns are gathered by C loops (map, itemgetter, chain) over the requests' dicts,
        # not by a Python loop per request and feature.
        ids, times, _, keys, values, statuses, stamps = zip(*self.requests, strict=True)
        counts = np.array(self.counts, dtype=np.int64)
        owner = np.repeat(np.arange(len(counts)), counts)  # request index of each row
        starts = np.cumsum(counts) - counts
        micros = np.round(np.array(times) * 1e6).astype(np.int64)
        rows = len(owner)
        features = self.feature_names

        def texts(dicts: tuple[dict[str, list[Any]], ...], name: str) -> pa.Array:
            return json_texts(list(itertools.chain.from_iterable(map(itemgetter(name), dicts))))

        value_texts = [texts(values, name) for name in features]
        status_texts = {i: texts(statuses, features[i]) for i in set(self.status_sharing)}
        stamp_texts = {i: texts(stamps, features[i]) for i in set(self.stamp_sharing)}
        key_texts = [texts(keys, name) for name in self.key_names]
        columns = [
            pa.array(ids, pa.string()).take(owner),
            pa.array(np.arange(rows) - starts[owner], pa.int32()),
            pa.array(micros[owner], pa.timestamp("us", tz="UTC")),
            pa.nulls(rows, pa.string()),
            json_objects(self.key_names, key_texts, rows),
            json_objects(features, value_texts, rows),
            json_objects(features, [status_texts[i] for i in self.status_sharing], rows),
            json_objects(features, [stamp_texts[i] for i in self.stamp_sharing], rows),
        ]
        return pa.Table.from_arrays(columns, schema=SCHEMA)


def _sharing(columns: dict[str, list[Any]]) -> tuple[int, ...]:
    """For each column, the index of the first column that is the same list object."""
    first: dict[int, int] = {}
    return tuple(map(first.setdefault, map(id, columns.values()), itertools.count()))


def _yield() -> None:
    time.sleep(YIELD_SECONDS)


_DAYS: dict[int, str] = {}


def _day(served_at: float) -> str:
    number = int(served_at // 86_400)
    day = _DAYS.get(number)
    if day is None:
        day = _DAYS[number] = (
            datetime.fromtimestamp(number * 86_400, timezone.utc).date().isoformat()
        )
    return day


def to_tables(requests: Sequence[ServedRequest]) -> dict[Group, pa.Table]:
    """One row per served entity row, in the log's SCHEMA, one table per (feature service,
    date). The Python work is a few list extends per request; the JSON text of the rows is
    assembled by Arrow kernels over whole columns.

    It runs on the writer thread while the event loop serves requests: it pauses every few
    dozen requests and at each column, so that the loop never waits long for the GIL
    (otherwise up to the 5 ms switch interval after each of its system calls)."""
    batches: dict[tuple[Any, ...], _Columns] = {}
    for index, request in enumerate(requests):
        if index % YIELD_EVERY == YIELD_EVERY - 1:
            _yield()
        rows = request.rows
        if rows == 0:
            continue
        group = (
            request.feature_service or AD_HOC,
            _day(request.served_at),
            tuple(request.keys),
            tuple(request.values),
            _sharing(request.statuses),
            _sharing(request.event_timestamps),
        )
        columns = batches.get(group)
        if columns is None:
            columns = batches[group] = _Columns(*group[2:])
        columns.add(request, rows)
    tables: dict[Group, list[pa.Table]] = {}
    for (service, day, *_), columns in batches.items():
        tables.setdefault((service, day), []).append(columns.table())
    return {
        group: pa.concat_tables(parts) if len(parts) > 1 else parts[0]
        for group, parts in tables.items()
    }


def to_table(requests: Sequence[ServedRequest]) -> pa.Table:
    """All of `requests` as one table in the log's SCHEMA (any order of groups)."""
    tables = list(to_tables(requests).values())
    if not tables:
        return SCHEMA.empty_table()
    return pa.concat_tables(tables) if len(tables) > 1 else tables[0]


_PLAIN = frozenset({int, float, bool, type(None)})
_TEXT = frozenset({str, type(None)})


def json_texts(column: list[Any]) -> pa.Array:
    """Each value of `column` as JSON text (orjson's, so the log reads as the API answers)."""
    kinds = set(map(type, column))
    _yield()
    if kinds <= _PLAIN:
        return _plain_texts(column)
    if kinds <= _TEXT:  # statuses, timestamps, categories: few distinct values
        encoded = pa.array(column, pa.string()).dictionary_encode()
        distinct = [_dumps(value) for value in encoded.dictionary.to_pylist()]
        return pa.array(distinct, pa.string()).take(encoded.indices).fill_null("null")
    return pa.array([_dumps(value) for value in column], pa.string())


def _plain_texts(column: list[Any]) -> pa.Array:
    """`json_texts` of numbers, booleans and None: orjson writes the whole column in one
    call, `[1,2.5,null]`, and no value holds a comma, so the commas delimit the values; the
    string array is built from that text's bytes, without a Python object per value."""
    text = orjson.dumps(column)[1:-1]
    commas = np.flatnonzero(np.frombuffer(text, np.uint8) == ord(","))
    ends = np.append(commas, len(text)) - np.arange(len(commas) + 1)  # commas removed
    offsets = np.concatenate(([0], ends)).astype(np.int32)
    data = text.replace(b",", b"")
    return pa.StringArray.from_buffers(len(column), pa.py_buffer(offsets), pa.py_buffer(data))


def json_objects(names: Sequence[str], texts: Sequence[pa.Array], rows: int) -> pa.Array:
    """Row i is the JSON object {names[j]: texts[j][i]}, `texts` being `json_texts`."""
    _yield()
    if not names:
        return pa.array(["{}"] * rows, pa.string())
    parts: list[Any] = []
    for index, (name, text) in enumerate(zip(names, texts, strict=True)):
        parts.append(pa.scalar(("{" if index == 0 else ",") + _dumps(name) + ":"))
        parts.append(text)
    parts.append(pa.scalar("}"))
    return pc.binary_join_element_wise(*parts, "")


def _fsync_dir(folder: Path) -> None:
    descriptor = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
