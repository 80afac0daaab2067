"""Leases on SQLite and PostgreSQL: one holder at a time, renewal, expiry and takeover, a
dead holder on this host freed at once, and racing processes of which exactly one wins."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from featurehub.registry import SqlRegistry
from featurehub.registry.leases import LeaseHeld


@pytest.fixture
def registry(registry_url: str) -> SqlRegistry:
    opened = SqlRegistry(registry_url)
    yield opened  # type: ignore[misc]
    opened.close()


def test_one_holder_at_a_time_and_release(registry: SqlRegistry) -> None:
    first, second = registry.leases("p", 30), registry.leases("p", 30)
    assert first.try_acquire("view:a") is None
    other = second.try_acquire("view:a")
    assert other is not None and other.holder == first.holder
    assert second.try_acquire("view:b") is None  # another name is free
    assert registry.leases("q", 30).try_acquire("view:a") is None  # another project too
    assert first.try_acquire("view:a") is None  # ours: renewed
    first.release("view:a")
    assert second.try_acquire("view:a") is None
    second.release("view:a")
    second.release("view:b")
    assert second.list() == []


def test_an_expired_lease_is_taken_over_and_its_old_holder_cannot_renew(
    registry: SqlRegistry,
) -> None:
    first, second = registry.leases("p", 0.5), registry.leases("p", 30)
    assert first.try_acquire("view:a") is None
    assert second.try_acquire("view:a") is not None
    time.sleep(0.7)
    assert second.try_acquire("view:a") is None
    assert not first.renew("view:a")
    first.release("view:a")  # not its lease any more: a no-op
    assert [lease.holder for lease in second.list()] == [second.holder]


def test_hold_renews_is_reentrant_and_says_who_holds(registry: SqlRegistry) -> None:
    first, second = registry.leases("p", 0.6), registry.leases("p", 0.6)
    with first.hold(["view:a", "view:b"]):
        time.sleep(1.0)  # longer than the lease: the heartbeat keeps it
        with first.hold(["view:a"]):
            pass
        held = r"another run of 'a' is in progress: pid \d+"
        with pytest.raises(LeaseHeld, match=held), second.hold(["view:a"]):
            pass
        with pytest.raises(LeaseHeld), second.hold(["view:c", "view:a"]):  # neither kept
            pass
        assert {lease.name for lease in first.list()} == {"view:a", "view:b"}
    assert first.list() == []
    assert not first.lost


def test_a_dead_holder_on_this_host_frees_its_lease_at_once(
    registry: SqlRegistry, tmp_path: Path
) -> None:
    script = (
        "import sys; from featurehub.registry import SqlRegistry; "
        "leases = SqlRegistry(sys.argv[1]).leases('p', 3600); "
        "assert leases.try_acquire('view:a') is None"
    )
    subprocess.run([sys.executable, "-c", script, registry.url], check=True)
    waiting = registry.leases("p", 30)
    held = waiting.list()
    assert len(held) == 1 and held[0].holder != waiting.holder  # it exited holding it
    assert waiting.try_acquire("view:a") is None


def test_racing_holders_exactly_one_wins(registry: SqlRegistry) -> None:
    contenders = [registry.leases("p", 30) for _ in range(8)]
    barrier = threading.Barrier(len(contenders))
    won: list[str] = []

    def race(leases: object) -> None:
        barrier.wait()
        if leases.try_acquire("view:a") is None:  # type: ignore[attr-defined]
            won.append(leases.holder)  # type: ignore[attr-defined]

    threads = [threading.Thread(target=race, args=(c,)) for c in contenders]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(won) == 1
    assert [lease.holder for lease in contenders[0].list()] == won


def test_a_run_whose_lease_was_taken_over_publishes_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The fence: a run that lost its view's lease while it ran (its holder stalled past
    the lease time and another process took the view) is refused in the transaction that
    would publish it, so the window is not appended twice."""
    import sqlalchemy as sa

    from featurehub import FeatureStore
    from featurehub.engines.runner import MaterializationError
    from featurehub.registry.tables import leases
    from tests.repos import make_repo

    store = FeatureStore(make_repo(tmp_path / "repo"))
    store.apply()
    monkeypatch.setenv("FEATUREHUB_PAUSE_AT", "online_written:1.0")

    def take_over() -> None:  # as another scheduler would, once the lease expired
        time.sleep(0.5)
        with store.registry.engine.begin() as conn:
            conn.execute(leases.update().values(holder="elsewhere:1:x", host="elsewhere"))

    thief = threading.Thread(target=take_over)
    thief.start()
    with pytest.raises(MaterializationError, match="taken over while this run ran"):
        store.materialize_incremental()
    thief.join()
    [run] = store.runs()
    assert run.status == "failed"
    assert store.registry.runs(store.project).watermark("driver_stats") is None
    assert store.offline_store.relation(store.get_feature_view("driver_stats")) is None
    assert "view:driver_stats" in store.leases.lost
    with store.registry.engine.connect() as conn:  # the new holder's lease is left alone
        assert conn.execute(sa.select(leases.c.holder)).scalars().all() == ["elsewhere:1:x"]
    store.close()
