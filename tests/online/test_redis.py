"""What only the Redis store does: outages, recovery, auth, db numbers and its key layout."""

from __future__ import annotations

import socket
import struct
import threading
import time
from collections.abc import Iterator
from datetime import timedelta

import pytest
import redis

from featurehub import types as t
from featurehub.config import OnlineStoreConfig
from featurehub.definitions import FeatureViewProjection
from featurehub.errors import ConfigError
from featurehub.online import (
    OnlineStoreUnavailable,
    RedisOnlineStore,
    RedisOnlineStoreConfig,
    SQLiteOnlineStore,
    build_online_store,
    redis_writes,
)
from featurehub.online.codec import EPOCH
from featurehub.online.lookup import lookup
from tests.online import at, make_rows, make_view
from tests.redis_server import RedisServer, free_port

US = timedelta(microseconds=1)
VIEW = make_view()
ONE_ROW = make_rows(VIEW, [{"driver_id": 1, "event": 2, "created": 3, "value": 7}])


def store_at(
    url: str,
    project: str = "p",
    key_prefix: str = "featurehub",
    password: str | None = None,
    timeout_seconds: float = 0.5,
) -> RedisOnlineStore:
    config = RedisOnlineStoreConfig(url, key_prefix, password, timeout_seconds=timeout_seconds)
    return RedisOnlineStore(config, project)


@pytest.fixture
def own_server() -> Iterator[RedisServer]:
    """A redis-server of this test alone, free to stop and restart."""
    with RedisServer() as server:
        yield server


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A port that accepts connections and never answers: every command times out."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(16)
        yield listener.getsockname()[1]


# -- outages -----------------------------------------------------------------------------------


def test_a_server_that_is_not_running_is_reported_quickly_and_clearly() -> None:
    port = free_port()
    store = store_at(f"redis://:s3cret@127.0.0.1:{port}/2")
    started = time.monotonic()
    for call in (store.ping, lambda: store.read(VIEW, [(1,)], ["value"])):
        with pytest.raises(OnlineStoreUnavailable) as caught:
            call()
        message = str(caught.value)
        assert f"redis://127.0.0.1:{port}/2" in message
        assert "s3cret" not in message
        assert "redis-server is running" in message
    many = make_rows(VIEW, [{"driver_id": k, "value": k} for k in range(10_000)])
    for table in (ONE_ROW, many):
        with pytest.raises(OnlineStoreUnavailable):
            store.write(VIEW, table)
    assert time.monotonic() - started < 2.0
    store.close()


def test_a_server_that_does_not_answer_times_out_within_the_timeout(silent_port: int) -> None:
    store = store_at(f"redis://127.0.0.1:{silent_port}/0", timeout_seconds=0.2)
    started = time.monotonic()
    with pytest.raises(OnlineStoreUnavailable, match=r"no answer within 0.2s"):
        store.read(VIEW, [(1,)], ["value"])
    assert time.monotonic() - started < 1.0
    many = make_rows(VIEW, [{"driver_id": k, "value": k} for k in range(10_000)])
    started = time.monotonic()
    with pytest.raises(OnlineStoreUnavailable):
        store.write(VIEW, many)  # two connections time out; the other batches are cancelled
    assert time.monotonic() - started < 1.5
    store.close()


def test_the_store_recovers_when_redis_comes_back(own_server: RedisServer) -> None:
    store = store_at(own_server.url)
    assert store.write(VIEW, ONE_ROW) == 1
    own_server.stop()
    with pytest.raises(OnlineStoreUnavailable):
        store.read(VIEW, [(1,)], ["value"])
    with pytest.raises(OnlineStoreUnavailable):
        store.write(VIEW, ONE_ROW)
    own_server.start()  # same port, empty: no persistence
    store.ping()
    assert store.read(VIEW, [(1,)], ["value"]) == [None]
    assert store.write(VIEW, ONE_ROW) == 1  # the write script is loaded again
    (row,) = store.read(VIEW, [(1,)], ["value"])
    assert row is not None and row.values == {"value": 7}
    store.close()


# -- connection settings -----------------------------------------------------------------------


def test_password_and_db_number_come_from_the_url() -> None:
    with RedisServer(password="pw") as server:
        url = f"redis://:pw@127.0.0.1:{server.port}/3"
        store = store_at(url)
        store.write(VIEW, ONE_ROW)
        raw = redis.Redis(port=server.port, password="pw", db=3)
        assert raw.keys("*") == [b"featurehub:p:stats:i1"]
        assert redis.Redis(port=server.port, password="pw", db=0).dbsize() == 0

        from_config = store_at(f"redis://127.0.0.1:{server.port}/3", password="pw")
        assert from_config.read(VIEW, [(1,)], ["value"])[0] is not None

        wrong = store_at(f"redis://:nope@127.0.0.1:{server.port}/3")
        with pytest.raises(OnlineStoreUnavailable, match="check the password") as caught:
            wrong.ping()
        assert "nope" not in str(caught.value)
        for client in (store, from_config, wrong):
            client.close()
        raw.close()


def test_tls_flag_turns_the_url_into_rediss() -> None:
    config = RedisOnlineStoreConfig(url="redis://user:pw@cache.internal:6380/1", tls=True)
    assert config.connection_url == "rediss://user:pw@cache.internal:6380/1"
    assert config.display_url == "rediss://user@cache.internal:6380/1"


def test_factory_builds_a_store_per_scheme(redis_url: str, tmp_path: object) -> None:
    redis_store = build_online_store(OnlineStoreConfig(url=redis_url, key_prefix="fh"), "p")
    assert isinstance(redis_store, RedisOnlineStore)
    assert redis_store.key_prefix("v") == b"fh:p:v:"
    sqlite_store = build_online_store(OnlineStoreConfig(url=f"sqlite:///{tmp_path}/o.db"), "p")
    assert isinstance(sqlite_store, SQLiteOnlineStore)
    with pytest.raises(ConfigError, match="unknown scheme.*sqlite://, redis://, rediss://"):
        build_online_store(OnlineStoreConfig(url="memcached://x"), "p")
    redis_store.close()
    sqlite_store.close()


# -- key layout --------------------------------------------------------------------------------


def test_keys_are_prefix_project_view_and_typed_entity_key(redis_url: str, project: str) -> None:
    store = store_at(redis_url, project, key_prefix="fh*")
    neighbour = store_at(redis_url, project, key_prefix="fhX")  # matches an unescaped "fh*"
    view = make_view("trips", keys=[("driver_id", t.Int64), ("city", t.String)])
    rows = make_rows(view, [{"driver_id": 12, "city": "zü", "event": 2, "created": 3, "value": 5}])
    store.write(view, rows)
    neighbour.write(view, rows)
    raw = redis.Redis.from_url(redis_url)
    keys = raw.keys(f"fh\\*:{project}:*")
    assert keys == [f"fh*:{project}:trips:i12s3:zü".encode()]
    value = raw.get(keys[0])
    assert isinstance(value, bytes)
    event_us, created_us = struct.unpack_from("<qq", value)
    assert (event_us, created_us) == ((at(2) - EPOCH) // US, (at(3) - EPOCH) // US)

    store.delete_view("trips")  # the "*" of the prefix is escaped in SCAN MATCH
    assert raw.keys(f"fh\\*:{project}:*") == []
    assert raw.keys(f"fhX:{project}:*") == [f"fhX:{project}:trips:i12s3:zü".encode()]
    for client in (store, neighbour, raw):
        client.close()


def test_writes_cross_pack_and_batch_boundaries(
    redis_url: str, project: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Sizes that do not divide each other: every key must travel with its own value."""
    monkeypatch.setattr(redis_writes, "PACK_ROWS", 7)
    monkeypatch.setattr(redis_writes, "BATCH_KEYS", 3)
    store = store_at(redis_url, project)
    rows = [{"driver_id": k, "event": 1, "value": k * 10} for k in range(50)]
    assert store.write(VIEW, make_rows(VIEW, rows)) == 50
    found = store.read(VIEW, [(k,) for k in range(50)], ["value"])
    assert [row.values["value"] if row else None for row in found] == [k * 10 for k in range(50)]
    store.close()


def test_a_foreign_value_under_the_prefix_is_never_misread(redis_url: str, project: str) -> None:
    store = store_at(redis_url, project)
    raw = redis.Redis.from_url(redis_url)
    raw.set(store.key_prefix(VIEW.name) + b"i1", b"not a row")
    assert store.read(VIEW, [(1,)], ["value"]) == [None]
    assert store.write(VIEW, ONE_ROW) == 1
    assert store.read(VIEW, [(1,)], ["value"])[0] is not None
    raw.delete(store.key_prefix(VIEW.name) + b"i1")
    raw.hset(store.key_prefix(VIEW.name) + b"i1", "field", "value")
    assert store.read(VIEW, [(1,)], ["value"]) == [None]  # MGET reads a hash as missing
    assert store.write(VIEW, ONE_ROW) == 1  # MSET replaces it
    assert raw.type(store.key_prefix(VIEW.name) + b"i1") == b"string"
    store.close()
    raw.close()


def test_read_many_is_one_mget_for_all_views(own_server: RedisServer) -> None:
    store = store_at(own_server.url)
    views = [make_view(f"view_{i}") for i in range(3)]
    for view in views:
        store.write(view, make_rows(view, [{"driver_id": 1, "value": 1}]))
    raw = redis.Redis(port=own_server.port)
    raw.config_resetstat()
    found = store.read_many([(view, [(1,), (2,)], ["value"]) for view in views])
    assert [[row is not None for row in rows] for rows in found] == [[True, False]] * 3
    assert raw.info("commandstats")["cmdstat_mget"]["calls"] == 1
    store.close()
    raw.close()


def test_read_many_columns_and_lookup_are_one_mget(own_server: RedisServer) -> None:
    store = store_at(own_server.url)
    views = [make_view(f"view_{i}") for i in range(3)]
    for view in views:
        store.write(view, make_rows(view, [{"driver_id": 1, "value": 1}]))
    raw = redis.Redis(port=own_server.port)
    raw.config_resetstat()
    found = store.read_many_columns([(view, [(1,), (2,)], ["value"]) for view in views])
    assert [read.values["value"] for read in found] == [[1, None]] * 3
    projections = [FeatureViewProjection(view, ["value"]) for view in views]
    response = lookup(store, projections, [{"driver_id": 1}], full_feature_names=True, now=at(1))
    assert response.values == {f"view_{i}__value": [1] for i in range(3)}
    assert raw.info("commandstats")["cmdstat_mget"]["calls"] == 2
    store.close()
    raw.close()


# -- write path --------------------------------------------------------------------------------


def test_new_keys_take_msetnx_and_existing_keys_the_script(own_server: RedisServer) -> None:
    store = store_at(own_server.url)
    raw = redis.Redis(port=own_server.port)
    rows = make_rows(VIEW, [{"driver_id": k, "event": 1, "value": k} for k in range(5000)])
    raw.config_resetstat()
    assert store.write(VIEW, rows) == 5000
    calls = {name: stat["calls"] for name, stat in raw.info("commandstats").items()}
    assert calls.get("cmdstat_msetnx", 0) >= 3 and "cmdstat_evalsha" not in calls
    raw.config_resetstat()
    assert store.write(VIEW, rows) == 5000  # every key exists: the script compares
    calls = {name: stat["calls"] for name, stat in raw.info("commandstats").items()}
    assert calls["cmdstat_evalsha"] >= 3
    store.close()
    raw.close()


def test_a_newer_row_met_after_new_batches_is_kept(
    redis_url: str, project: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The first batches are all new (MSETNX); a later one holds a newer stored row."""
    monkeypatch.setattr(redis_writes, "PACK_ROWS", 7)
    monkeypatch.setattr(redis_writes, "BATCH_KEYS", 3)
    store = store_at(redis_url, project)
    store.write(VIEW, make_rows(VIEW, [{"driver_id": 40, "event": 5, "value": -1}]))
    older = [{"driver_id": k, "event": 1, "value": k} for k in range(50)]
    assert store.write(VIEW, make_rows(VIEW, older)) == 49
    found = store.read(VIEW, [(k,) for k in range(50)], ["value"])
    assert [row.values["value"] if row else None for row in found] == [
        -1 if k == 40 else k for k in range(50)
    ]
    store.close()


def test_the_write_script_is_loaded_again_after_a_flush(redis_url: str, project: str) -> None:
    store = store_at(redis_url, project)
    store.write(VIEW, ONE_ROW)
    with redis.Redis.from_url(redis_url) as raw:
        raw.script_flush()
    newer = make_rows(VIEW, [{"driver_id": 1, "event": 3, "value": 8}])
    assert store.write(VIEW, newer) == 1  # through the script: the key exists
    (row,) = store.read(VIEW, [(1,)], ["value"])
    assert row is not None and row.values == {"value": 8}
    store.close()


def test_concurrent_writers_of_the_same_keys_keep_the_newest_rows(
    redis_url: str, project: str
) -> None:
    """Old and new rows of the same keys race, both as all-new writes (MSETNX) and against
    each other's rows (script): whatever the order, the newest rows stay."""
    keys = range(3000)
    old = make_rows(VIEW, [{"driver_id": k, "event": 1, "value": 1} for k in keys])
    new = make_rows(VIEW, [{"driver_id": k, "event": 2, "value": 2} for k in keys])
    for attempt in range(4):
        store = store_at(redis_url, f"{project}_{attempt}")
        tables = [old, new] if attempt % 2 else [new, old]
        threads = [threading.Thread(target=store.write, args=(VIEW, t)) for t in tables]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        found = store.read_columns(VIEW, [(k,) for k in keys], ["value"])
        assert found.values["value"] == [2] * len(keys)
        store.close()
