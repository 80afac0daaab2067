"""The Redis read path's failures: killed and restarted connections are recovered from, a
timeout fails fast and never leaves a late answer to be read by the next call."""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Iterator

import pytest
import redis

from featurehub.online import OnlineStoreUnavailable, RedisOnlineStore, RedisOnlineStoreConfig
from tests.online import make_rows, make_view
from tests.redis_server import RedisServer

VIEW = make_view()
ROWS = make_rows(VIEW, [{"driver_id": k, "value": k * 10} for k in range(1, 6)])


@pytest.fixture
def own_server() -> Iterator[RedisServer]:
    """A redis-server of this test alone, free to stop, restart and pause."""
    with RedisServer() as server:
        yield server


def store_at(url: str, timeout_seconds: float = 0.5) -> RedisOnlineStore:
    return RedisOnlineStore(RedisOnlineStoreConfig(url, timeout_seconds=timeout_seconds), "p")


def value_of(store: RedisOnlineStore, key: int) -> object:
    (row,) = store.read(VIEW, [(key,)], ["value"])
    return None if row is None else row.values["value"]


def test_a_killed_connection_is_replaced_without_an_error(own_server: RedisServer) -> None:
    store = store_at(own_server.url)
    store.write(VIEW, ROWS)
    assert value_of(store, 1) == 10  # the read connection is now pooled
    with redis.Redis(port=own_server.port) as admin:
        killed = admin.client_kill_filter(_type="normal", skipme=True)
    assert killed >= 1
    assert value_of(store, 2) == 20  # the dead connection is dropped, the read retried
    assert value_of(store, 3) == 30
    store.close()


def test_every_pooled_connection_recovers_from_a_server_restart(own_server: RedisServer) -> None:
    store = store_at(own_server.url)
    store.write(VIEW, ROWS)
    errors: list[BaseException] = []

    def read_concurrently() -> None:
        """Several threads at once, so the pool holds several connections."""

        def reads() -> None:
            try:
                for _ in range(30):
                    value_of(store, 4)
            except BaseException as exc:  # any failure, reported below
                errors.append(exc)

        threads = [threading.Thread(target=reads) for _ in range(6)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()

    read_concurrently()
    own_server.stop()
    own_server.start()  # same port, empty: every pooled connection is dead
    store.write(VIEW, ROWS)
    read_concurrently()  # each stale connection costs a retry, never an error
    assert errors == []
    store.close()


def test_a_paused_server_times_out_and_the_late_answer_is_never_read(
    own_server: RedisServer,
) -> None:
    store = store_at(own_server.url, timeout_seconds=0.2)
    store.write(VIEW, ROWS)
    assert value_of(store, 1) == 10
    process = own_server._process
    assert process is not None
    os.kill(process.pid, signal.SIGSTOP)  # the pooled connection's next read gets no answer
    try:
        started = time.monotonic()
        with pytest.raises(OnlineStoreUnavailable, match=r"no answer within 0.2s"):
            value_of(store, 1)
        assert time.monotonic() - started < 1.0
    finally:
        os.kill(process.pid, signal.SIGCONT)  # the server now answers that MGET, too late
    assert value_of(store, 2) == 20  # a new connection: not the late answer for key 1
    assert value_of(store, 3) == 30
    store.close()


def test_a_wrong_password_fails_reads_clearly() -> None:
    with RedisServer(password="pw") as server:
        wrong = store_at(f"redis://:nope@127.0.0.1:{server.port}/0")
        with pytest.raises(OnlineStoreUnavailable, match="check the password") as caught:
            wrong.read(VIEW, [(1,)], ["value"])
        assert "nope" not in str(caught.value)
        wrong.close()
        right = store_at(f"redis://:pw@127.0.0.1:{server.port}/0")
        right.write(VIEW, ROWS)
        assert value_of(right, 5) == 50
        right.close()


def test_reads_after_close_do_not_keep_connections(own_server: RedisServer) -> None:
    store = store_at(own_server.url)
    store.write(VIEW, ROWS)
    assert value_of(store, 1) == 10
    store.close()
    with redis.Redis(port=own_server.port) as admin:
        time.sleep(0.05)
        assert admin.info("clients")["connected_clients"] == 1  # the admin connection alone


def test_a_forked_child_opens_its_own_connections(own_server: RedisServer) -> None:
    """Parent and child reading at once on one inherited socket would read each other's
    answers; the child must drop the inherited pool instead."""
    store = store_at(own_server.url)
    store.write(VIEW, ROWS)
    assert value_of(store, 1) == 10  # the parent's connection is now pooled
    pid = os.fork()
    if pid == 0:  # the child: any failure is its exit code
        code = 1
        try:
            code = (
                0 if all(value_of(store, 1 + i % 5) == 10 + i % 5 * 10 for i in range(300)) else 1
            )
        finally:
            os._exit(code)
    try:
        assert all(value_of(store, 5 - i % 5) == 50 - i % 5 * 10 for i in range(300))
    finally:
        _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    store.close()
