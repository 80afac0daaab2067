"""One scheduler runs its due jobs at once, `max_parallel` at most, and goes on polling while
they run: a job whose lease a dead holder left is taken over while another job of this
scheduler is still running; a stop lets the running jobs finish their current run and
starts no other. The jobs here are stand-ins that block on events and barriers (so the
tests say what ran at once, never how long anything took), under real leases in the
registry; tests/scheduler/test_parallel_materialization.py runs real views at once."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator, Sequence
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from featurehub import FeatureStore
from featurehub.monitoring.alert_events import AlertEvent
from featurehub.scheduler.jobs import Job
from featurehub.scheduler.loop import Scheduler
from tests.repos import make_repo

AT = datetime(2026, 3, 1, 12, 0, tzinfo=timezone.utc)  # the driven clock: the jobs' "now"
BARRIER_SECONDS = 60.0  # a barrier that needs two jobs at once breaks after this, alone


class StandIn:
    """A job with one run per end given, which calls `work` (that may block) and records
    how many of its runs, and of all stand-ins' runs, were in progress at once."""

    def __init__(self, name: str, work: Callable[[], None], tally: Tally, ends: int = 1) -> None:
        self.name = name
        self.work = work
        self.tally = tally
        self.ends = [AT - timedelta(hours=hours) for hours in range(ends, 0, -1)]
        self.done: list[datetime] = []
        self.started = threading.Event()

    def due(self, now: datetime) -> list[datetime]:
        return [end for end in self.ends if end not in self.done]

    def run(self, end: datetime) -> str:
        with self.tally.running(self.name):
            self.started.set()
            self.work()
        self.done.append(end)
        return "worked"

    def next_tick(self, now: datetime) -> datetime | None:
        return None

    def failed(self, error: str, attempts: int, end: datetime) -> AlertEvent | None:
        return None


class Tally:
    """Runs in progress, by job: the most at once overall and per job."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.now: dict[str, int] = {}
        self.peak = 0
        self.peak_per_job = 0

    def running(self, name: str) -> _Running:
        return _Running(self, name)

    def enter(self, name: str) -> None:
        with self._lock:
            self.now[name] = self.now.get(name, 0) + 1
            self.peak = max(self.peak, sum(self.now.values()))
            self.peak_per_job = max(self.peak_per_job, self.now[name])

    def leave(self, name: str) -> None:
        with self._lock:
            self.now[name] -= 1


class _Running:
    def __init__(self, tally: Tally, name: str) -> None:
        self.tally, self.name = tally, name

    def __enter__(self) -> None:
        self.tally.enter(self.name)

    def __exit__(self, *_: object) -> None:
        self.tally.leave(self.name)


def source(jobs: Sequence[StandIn]) -> Callable[[FeatureStore, str | None], Sequence[Job]]:
    return lambda store, engine: list(jobs)


@pytest.fixture
def store(
    tmp_path: Path, registry_url: str, request: pytest.FixtureRequest
) -> Iterator[FeatureStore]:
    max_parallel = getattr(request, "param", 4)
    repo = make_repo(tmp_path / "repo", registry=registry_url)
    with (repo / "featurehub.yaml").open("a") as config:
        config.write(
            "scheduler:\n  lease_seconds: 1.5\n  poll_seconds: 0.1\n  max_attempts: 1\n"
            f"  max_parallel: {max_parallel}\n"
        )
    with FeatureStore(repo) as opened:
        yield opened


def wait_for(condition: Callable[[], object], what: str, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


def test_two_slow_jobs_run_at_once(store: FeatureStore) -> None:
    both = threading.Barrier(2, timeout=BARRIER_SECONDS)  # passed only by two at once
    tally = Tally()
    jobs = [StandIn(name, both.wait, tally) for name in ("test:a", "test:b")]
    outcomes = Scheduler(store, job_sources=(source(jobs),), clock=lambda: AT).run_once()
    assert [(o.job, o.status) for o in outcomes] == [("test:a", "ran"), ("test:b", "ran")]
    assert tally.peak == 2
    assert store.leases.list() == []


@pytest.mark.parametrize("store", [2], indirect=True)
def test_max_parallel_bounds_the_jobs_running_at_once(store: FeatureStore) -> None:
    pairs = threading.Barrier(2, timeout=BARRIER_SECONDS)  # two at a time must meet
    tally = Tally()
    jobs = [StandIn(f"test:{i}", pairs.wait, tally) for i in range(6)]
    outcomes = Scheduler(store, job_sources=(source(jobs),), clock=lambda: AT).run_once()
    assert {o.status for o in outcomes} == {"ran"}
    assert tally.peak == 2  # max_parallel: 2


def test_a_dead_holders_job_is_taken_over_while_another_job_runs(store: FeatureStore) -> None:
    """`busy` runs all along; `orphan`'s lease is held by a holder that stopped renewing it
    (killed on another host: its pid cannot be checked). The loop, still polling, takes
    `orphan` once the lease expires, before `busy` is done."""
    dead = store.registry.leases(store.project, store.config.scheduler.lease_seconds)
    assert dead.try_acquire("test:orphan") is None  # and never renewed
    [lease] = dead.list()
    release_busy = threading.Event()
    tally = Tally()
    busy = StandIn("test:busy", lambda: release_busy.wait(BARRIER_SECONDS), tally)
    seen_busy: list[int] = []
    taken_at: list[float] = []

    def take_over() -> None:
        seen_busy.append(tally.now["test:busy"])
        taken_at.append(time.time())

    orphan = StandIn("test:orphan", take_over, tally)
    scheduler = Scheduler(store, job_sources=(source([busy, orphan]),), clock=lambda: AT)
    loop = threading.Thread(target=scheduler.run_forever)
    loop.start()
    try:
        busy.started.wait(BARRIER_SECONDS)
        wait_for(lambda: orphan.done, "the orphaned job to be taken over")
        assert seen_busy == [1]  # it ran while busy was running
        assert busy.done == []
        late = taken_at[0] - lease.expires_at.timestamp()
        print(f"orphan taken {late:.2f}s after its lease expired (poll 0.1s)")  # a figure
    finally:
        release_busy.set()
        wait_for(lambda: busy.done, "the busy job to finish")
        scheduler.stop()
        loop.join()
    assert tally.peak_per_job == 1  # no job ran twice at once
    assert len(busy.done) == len(orphan.done) == 1
    assert store.leases.list() == []


@pytest.mark.parametrize("store", [2], indirect=True)
def test_a_stop_lets_running_jobs_finish_their_run_and_starts_no_other(
    store: FeatureStore,
) -> None:
    go = threading.Event()
    tally = Tally()
    # Two catch-up runs each; `waiting` has no free thread until one of them ends.
    running = [StandIn(f"test:{n}", lambda: go.wait(BARRIER_SECONDS), tally, 2) for n in "ab"]
    waiting = StandIn("test:c", lambda: None, tally)
    scheduler = Scheduler(store, job_sources=(source([*running, waiting]),), clock=lambda: AT)
    loop = threading.Thread(target=scheduler.run_forever)
    loop.start()
    for job in running:
        job.started.wait(BARRIER_SECONDS)
    scheduler.stop()
    go.set()
    loop.join()
    assert [len(job.done) for job in running] == [1, 1]  # the run in progress finished
    assert waiting.done == []  # never started
    assert store.leases.list() == []


def test_the_same_job_is_refused_to_a_second_thread_of_one_holder(
    store: FeatureStore,
) -> None:
    """Leases are re-entrant for the thread holding them only: a second thread of the same
    process (one holder) is told the run is in progress, as another process would be."""
    from featurehub.registry.leases import LeaseHeld

    inside, leave = threading.Event(), threading.Event()

    def hold() -> None:
        with store.leases.hold(["view:x"]), store.leases.hold(["view:x"]):  # re-entrant
            inside.set()
            leave.wait(BARRIER_SECONDS)

    holder = threading.Thread(target=hold)
    holder.start()
    inside.wait(BARRIER_SECONDS)
    try:
        with (
            pytest.raises(LeaseHeld, match="in progress in this process"),
            store.leases.hold(["view:x"]),
        ):
            pass
    finally:
        leave.set()
        holder.join()
    assert store.leases.list() == []
    with store.leases.hold(["view:x"]):  # free again
        pass
