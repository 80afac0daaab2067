"""What only the SQLite store does: its file, WAL mode, threads and errors."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

import pytest

from featurehub.config import RepoConfig
from featurehub.online import OnlineStoreUnavailable, SQLiteOnlineStore, online_store_for
from tests.online import make_rows, make_view

VIEW = make_view()


def test_the_file_is_created_under_missing_directories_in_wal_mode(tmp_path: Path) -> None:
    path = tmp_path / "a" / "b" / "online.db"
    store = SQLiteOnlineStore(path, "p")
    store.write(VIEW, make_rows(VIEW, [{"driver_id": 1, "value": 1}]))
    assert path.is_file()
    with sqlite3.connect(path) as raw:
        assert raw.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    store.close()
    reopened = SQLiteOnlineStore(path, "p")
    (row,) = reopened.read(VIEW, [(1,)], ["value"])
    assert row is not None and row.values == {"value": 1}
    reopened.close()


def test_concurrent_writers_keep_the_newest_row(tmp_path: Path) -> None:
    """Two threads write the same keys with interleaved event times, newest last or first."""
    store = SQLiteOnlineStore(tmp_path / "online.db", "p")
    keys, rounds = 200, 30
    errors: list[BaseException] = []

    def writer(parity: int, descending: bool) -> None:
        events = [e for e in range(rounds * 2) if e % 2 == parity]
        try:
            for event in sorted(events, reverse=descending):
                rows = [{"driver_id": k, "event": event, "value": event} for k in range(keys)]
                store.write(VIEW, make_rows(VIEW, rows))
        except BaseException as exc:  # surfaced below: a thread's exception is otherwise lost
            errors.append(exc)

    threads = [
        threading.Thread(target=writer, args=(0, False)),
        threading.Thread(target=writer, args=(1, True)),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    found = store.read(VIEW, [(k,) for k in range(keys)], ["value"])
    assert all(row is not None and row.values["value"] == rounds * 2 - 1 for row in found)
    store.close()


def test_reads_from_many_threads(tmp_path: Path) -> None:
    store = SQLiteOnlineStore(tmp_path / "online.db", "p")
    store.write(VIEW, make_rows(VIEW, [{"driver_id": k, "value": k} for k in range(50)]))
    results: list[bool] = []

    def reader() -> None:
        for _ in range(50):
            found = store.read(VIEW, [(k,) for k in range(50)], ["value"])
            results.append([r.values["value"] if r else None for r in found] == list(range(50)))

    threads = [threading.Thread(target=reader) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results == [True] * 200
    store.close()


def _open_files(path: Path) -> int:
    """How many of this process's file descriptors point at `path`."""
    descriptors = Path("/proc/self/fd")
    found = 0
    for descriptor in descriptors.iterdir():
        try:
            found += descriptor.readlink() == path
        except OSError:  # closed since listed
            continue
    return found


def test_a_thread_that_ended_leaves_no_connection_open(tmp_path: Path) -> None:
    """Engines write from short-lived threads (one per run): a long-running scheduler must
    not keep a connection per run it ever did."""
    path = (tmp_path / "online.db").resolve()
    store = SQLiteOnlineStore(path, "p")

    def write(value: int) -> None:
        store.write(VIEW, make_rows(VIEW, [{"driver_id": 1, "value": value}]))

    def threads_write(values: range) -> int:
        for value in values:
            thread = threading.Thread(target=write, args=(value,))
            thread.start()
            thread.join()
        return _open_files(path)

    # SQLite may keep a closed connection's descriptor for its next open: a few, not one
    # per thread.
    after_ten = threads_write(range(10))
    assert threads_write(range(10, 40)) <= after_ten <= 4
    (row,) = store.read(VIEW, [(1,)], ["value"])
    assert row is not None and row.values == {"value": 39}
    store.close()
    assert _open_files(path) == 0


def test_memory_database_is_shared_by_threads() -> None:
    store = SQLiteOnlineStore(":memory:", "p")
    thread = threading.Thread(
        target=store.write, args=(VIEW, make_rows(VIEW, [{"driver_id": 1, "value": 3}]))
    )
    thread.start()
    thread.join()
    (row,) = store.read(VIEW, [(1,)], ["value"])
    assert row is not None and row.values == {"value": 3}
    store.close()


def test_an_unusable_path_is_reported_with_the_path(tmp_path: Path) -> None:
    blocker = tmp_path / "not_a_dir"
    blocker.write_text("")
    with pytest.raises(OnlineStoreUnavailable, match="not_a_dir"):
        SQLiteOnlineStore(blocker / "online.db", "p")
    corrupt = tmp_path / "corrupt.db"
    corrupt.write_bytes(b"this is not a database" * 100)
    with pytest.raises(OnlineStoreUnavailable, match="corrupt.db"):
        SQLiteOnlineStore(corrupt, "p")


def test_many_keys_are_read_in_chunks(tmp_path: Path) -> None:
    store = SQLiteOnlineStore(tmp_path / "online.db", "p")
    store.write(VIEW, make_rows(VIEW, [{"driver_id": k, "value": k} for k in range(1200)]))
    found = store.read(VIEW, [(k,) for k in range(1300)], ["value"])
    assert [r.values["value"] if r else None for r in found] == [*range(1200), *[None] * 100]
    store.close()


def test_a_repos_relative_sqlite_path_is_relative_to_the_repo(tmp_path: Path) -> None:
    repo = RepoConfig(project="shop", repo_path=tmp_path)  # default: sqlite:///data/online.db
    store = online_store_for(repo)
    assert isinstance(store, SQLiteOnlineStore)
    assert Path(store.path) == tmp_path / "data" / "online.db"
    assert store.project == "shop"
    store.close()
