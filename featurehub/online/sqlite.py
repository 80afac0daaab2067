"""The SQLite online store: the embedded default, one file, zero setup.

One table holds every project and view, keyed by (project, view, entity key), with the packed
row of `codec` as value and its timestamps and layout beside it for the write guard. One table
rather than one per view because applying or changing a view then needs no DDL (DDL takes the
write lock and invalidates every connection's prepared statements), `delete_view` is a DELETE,
and the value format is the one the Redis store uses.

WAL mode lets readers run beside a writer; each thread gets its own connection, closed once
the thread is gone (engines write from short-lived threads: a long-running scheduler would
otherwise keep one open file per run). Writers wait up to BUSY_TIMEOUT_SECONDS for each
other. `synchronous=NORMAL`: a power loss may drop the last commits, which re-running
materialization restores.
"""

from __future__ import annotations

import functools
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from pathlib import Path

import pyarrow as pa

from featurehub.config import OnlineStoreConfig
from featurehub.definitions import FeatureView
from featurehub.definitions.names import check_name
from featurehub.errors import ConfigError
from featurehub.offline.base import CREATED_TIMESTAMP, EVENT_TIMESTAMP
from featurehub.online.base import (
    ColumnarRead,
    EntityKey,
    OnlineStore,
    OnlineStoreUnavailable,
)
from featurehub.online.codec import LayoutCache, encode_keys, latest_rows, timestamps_us

BUSY_TIMEOUT_SECONDS = 30.0
MAX_KEYS_PER_QUERY = 500  # SQLite limits bound parameters per statement

SCHEMA = """
CREATE TABLE IF NOT EXISTS online_rows (
    project TEXT NOT NULL,
    view TEXT NOT NULL,
    entity_key BLOB NOT NULL,
    event_us INTEGER NOT NULL,
    created_us INTEGER NOT NULL,
    layout INTEGER NOT NULL,
    value BLOB NOT NULL,
    PRIMARY KEY (project, view, entity_key)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS online_markers (
    project TEXT NOT NULL,
    view TEXT NOT NULL,
    run_id INTEGER NOT NULL,
    PRIMARY KEY (project, view)
) WITHOUT ROWID;
"""

# The newest-wins guard: the WHERE of DO UPDATE runs atomically inside the write transaction.
UPSERT = """
INSERT INTO online_rows (project, view, entity_key, event_us, created_us, layout, value)
VALUES (?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (project, view, entity_key) DO UPDATE SET
    event_us = excluded.event_us,
    created_us = excluded.created_us,
    layout = excluded.layout,
    value = excluded.value
WHERE excluded.layout != online_rows.layout
    OR (excluded.event_us, excluded.created_us) >= (online_rows.event_us, online_rows.created_us)
"""


@functools.lru_cache(maxsize=64)
def _select(keys: int) -> str:
    """The query reading `keys` entity keys of one view (cached: the same text for the same
    count also lets sqlite3 reuse its prepared statement)."""
    marks = ",".join("?" * keys)
    return (
        "SELECT entity_key, value FROM online_rows WHERE project = ? AND view = ?"
        f" AND entity_key IN ({marks})"
    )


class SQLiteOnlineStore(OnlineStore):
    """The online store in one SQLite file (`sqlite:///path`; parent directories created)."""

    def __init__(self, path: str | Path, project: str) -> None:
        check_name("project", project)
        self.project = project
        self.path = str(path)
        self._memory = self.path == ":memory:"
        if not self._memory:
            parent = Path(self.path).expanduser().parent
            try:
                parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise OnlineStoreUnavailable(
                    f"online store sqlite:///{self.path}: cannot create {parent} ({exc}); "
                    "check the path in online_store.url and the permissions of its parents"
                ) from exc
        self._local = threading.local()
        # Every connection opened, with the thread it is for (closed when that one ends).
        self._connections: list[tuple[threading.Thread, sqlite3.Connection]] = []
        self._connections_lock = threading.Lock()
        # ":memory:" is private to one connection: then all threads share it, serialized.
        self._lock = threading.Lock()
        self._layouts = LayoutCache()
        with self._guard():
            self._connection().executescript(SCHEMA)

    @classmethod
    def from_config(cls, config: OnlineStoreConfig, project: str) -> SQLiteOnlineStore:
        prefix = "sqlite:///"
        if not config.url.startswith(prefix) or config.url == prefix:
            raise ConfigError(
                f"online_store.url {config.url!r}: a SQLite URL is sqlite:///relative/path.db "
                "or sqlite:////absolute/path.db"
            )
        return cls(config.url[len(prefix) :], project)

    def write(self, view: FeatureView, table: pa.Table) -> int:
        rows, keys = latest_rows(view, table)
        if not keys:
            return 0
        layout = self._layouts.get(view)
        params = zip(
            [self.project] * len(keys),
            [view.name] * len(keys),
            keys,
            timestamps_us(rows, EVENT_TIMESTAMP).tolist(),
            timestamps_us(rows, CREATED_TIMESTAMP).tolist(),
            [layout.fingerprint] * len(keys),
            layout.pack(rows),
            strict=True,
        )
        with self._guard():
            connection = self._connection()
            connection.execute("BEGIN IMMEDIATE")
            try:
                written = connection.executemany(UPSERT, params).rowcount
                connection.execute("COMMIT")
            except BaseException:
                connection.execute("ROLLBACK")
                raise
        return written

    def read_columns(
        self, view: FeatureView, keys: Sequence[EntityKey], features: Sequence[str]
    ) -> ColumnarRead:
        decode = self._layouts.get(view).decoder(features)
        if not keys:
            return decode([])
        encoded = encode_keys(keys)
        unique = list(dict.fromkeys(encoded))
        found: dict[bytes, bytes] = {}
        with self._guard():
            connection = self._connection()
            for start in range(0, len(unique), MAX_KEYS_PER_QUERY):
                chunk = unique[start : start + MAX_KEYS_PER_QUERY]
                found.update(
                    connection.execute(_select(len(chunk)), (self.project, view.name, *chunk))
                )
        return decode([found.get(key) for key in encoded])

    def delete_view(self, view_name: str) -> None:
        with self._guard():
            for table in ("online_rows", "online_markers"):
                self._connection().execute(
                    f"DELETE FROM {table} WHERE project = ? AND view = ?",
                    (self.project, view_name),
                )

    def write_marker(self, view_name: str, run_id: int) -> None:
        with self._guard():
            self._connection().execute(
                "INSERT INTO online_markers (project, view, run_id) VALUES (?, ?, ?) "
                "ON CONFLICT (project, view) DO UPDATE SET run_id = max(run_id, excluded.run_id)",
                (self.project, view_name, run_id),
            )

    def read_markers(self) -> dict[str, int]:
        with self._guard():
            found = self._connection().execute(
                "SELECT view, run_id FROM online_markers WHERE project = ?", (self.project,)
            )
            return {view: int(run_id) for view, run_id in found}

    def ping(self) -> None:
        with self._guard():
            self._connection().execute("SELECT 1 FROM online_rows LIMIT 1").fetchall()

    def close(self) -> None:
        with self._lock, self._connections_lock:
            for _, connection in self._connections:
                connection.close()
            self._connections.clear()
            self._local = threading.local()

    def _connection(self) -> sqlite3.Connection:
        connection: sqlite3.Connection | None = getattr(self._local, "connection", None)
        if connection is not None:
            return connection
        with self._connections_lock:
            if self._memory and self._connections:
                return self._connections[0][1]
            connection = self._connect()
            if not self._memory:  # the one ":memory:" connection is the data: never closed
                ended = [entry for entry in self._connections if not entry[0].is_alive()]
                for entry in ended:
                    entry[1].close()
                    self._connections.remove(entry)
            self._connections.append((threading.current_thread(), connection))
        self._local.connection = connection
        return connection

    def _connect(self) -> sqlite3.Connection:
        connection = sqlite3.connect(
            self.path,
            timeout=BUSY_TIMEOUT_SECONDS,
            isolation_level=None,  # autocommit; write() opens its own transaction
            check_same_thread=False,
        )
        if not self._memory:
            connection.execute("PRAGMA journal_mode=WAL")
            connection.execute("PRAGMA synchronous=NORMAL")
        return connection

    @contextmanager
    def _guard(self) -> Iterator[None]:
        """Serialize ":memory:" use and map SQLite's errors to OnlineStoreUnavailable."""
        lock: AbstractContextManager[object] = self._lock if self._memory else nullcontext()
        try:
            with lock:
                yield
        except sqlite3.DatabaseError as exc:
            raise OnlineStoreUnavailable(
                f"online store sqlite:///{self.path} failed ({exc}); check that the file and "
                "its directory are writable, on a local disk, and not locked by another "
                f"process for over {BUSY_TIMEOUT_SECONDS:.0f}s"
            ) from exc
