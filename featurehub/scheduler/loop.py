"""The scheduler loop: at each pass, every job that is due and whose lease it can take runs.

Any number of schedulers may share a registry. A job runs only under its lease (one holder
at a time, renewed while it runs, expiring if its holder dies), and what is due is read once
the lease is held, so no job runs twice at once and a dead scheduler's jobs are taken over
by another within the lease time.

Jobs run on a pool of `max_parallel` threads, and the loop goes on polling while they run:
a pass submits every job not already running in this process, so a lease freed by a dead
holder is seen at the next poll rather than after this scheduler's own longest run. What
jobs share across threads is safe to share: the registry (a SQLAlchemy pool; SQLite waits
for its write lock), leases (one holder per store, a heartbeat thread per hold), the stores
(a DuckDB connection per run, an offline folder per view, a SQLite connection per thread, a
Redis connection pool) and the alert queues (docs/scheduler.md, "Threads"; tests in
tests/scheduler/test_parallel*.py).

A failed run is retried with exponential backoff (tenacity) up to `max_attempts`; then the
job is reported failing (logged; its failed run is in the registry, where `featurehub
status` shows it) and left until its next due tick. A stop (SIGTERM) lets the running jobs
finish their current run, starts no other, then the loop returns; backoff waits are cut short.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import TYPE_CHECKING

from tenacity import (
    Retrying,
    retry_if_exception,
    stop_after_attempt,
    stop_when_event_set,
    wait_exponential,
)

from featurehub.monitoring.alert_events import view_stale
from featurehub.registry.leases import LeaseHeld
from featurehub.scheduler.jobs import JOB_SOURCES, Job, JobSource

if TYPE_CHECKING:
    from featurehub.feature_store import FeatureStore

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class JobOutcome:
    job: str
    # "ran"; "not_due"; "held" (another scheduler has it); "failed" (after its retries);
    # "failing" (failed at an earlier pass: it waits for its next tick); "stopped"
    status: str
    detail: str = ""
    ends: list[datetime] = field(default_factory=list)  # the runs done, by their end


def _utcnow() -> datetime:
    return datetime.now(timezone.utc)


class Scheduler:
    """Runs a store's jobs when due, `max_parallel` at once at most; `run_once(at)` for one
    pass, `run_forever()` to loop."""

    def __init__(
        self,
        store: FeatureStore,
        *,
        engine: str | None = None,
        job_sources: Sequence[JobSource] = JOB_SOURCES,
        health_file: Path | None = None,
        clock: Callable[[], datetime] = _utcnow,
    ) -> None:
        self.store = store
        self.engine = engine
        self.job_sources = job_sources
        self.health_file = health_file
        self.clock = clock
        self.config = store.config.scheduler
        self.stopping = threading.Event()
        self._wake = threading.Event()  # set by a stop, or by a job that ran: look again now
        self._lock = threading.Lock()  # `failing` and `_resting_until`: job threads write them
        self.failing: dict[str, str] = {}  # job name -> its last error, until it succeeds
        self._resting_until: dict[str, datetime] = {}  # a failing job waits for its next tick
        self._stale: set[str] = set()  # views whose stale episode was alerted (loop thread)

    def stop(self) -> None:
        """Let the running jobs finish their current run, start no other (a SIGTERM handler
        calls this)."""
        self.stopping.set()
        self._wake.set()

    def jobs(self) -> list[Job]:
        return [job for source in self.job_sources for job in source(self.store, self.engine)]

    def run_once(self, now: datetime | None = None) -> list[JobOutcome]:
        """One pass: each job due at `now` (default: the clock) runs under its lease,
        `max_parallel` at once; returns once all are done, their outcomes in job order."""
        moment = now or self.clock()
        with self._pool() as pool:
            futures = [pool.submit(self._run_guarded, job, moment) for job in self.jobs()]
            outcomes = [future.result() for future in futures]  # _run_guarded never raises
        self._after_pass(moment)
        return outcomes

    def _after_pass(self, now: datetime) -> None:
        self._alert_stale(now)
        self._touch_health()

    def _alert_stale(self, now: datetime) -> None:
        """`view_stale` once when a view becomes stale (past its freshness bound), again only
        after it was fresh in between: an alert per episode, not per pass. Every scheduler
        raises it (it holds no lease): receivers drop duplicates by the view and time."""
        try:
            freshness = self.store.freshness(now)
        except Exception as exc:  # the registry unreachable: the next pass tries again
            log.warning("freshness could not be read: %s: %s", type(exc).__name__, exc)
            return
        for view, figures in freshness.items():
            if not figures.stale:
                self._stale.discard(view)
                continue
            staleness = figures.staleness_seconds
            if view in self._stale or staleness is None:  # never materialized: `status` says so
                continue
            self._stale.add(view)
            assert figures.freshness_seconds is not None
            self.store.alerts.emit(
                view_stale(
                    self.store.project,
                    view,
                    timedelta(seconds=staleness),
                    timedelta(seconds=figures.freshness_seconds),
                    newest_event_time=figures.newest_event,
                    last_success=figures.last_success_at,
                    at=now,
                )
            )

    def run_forever(self) -> None:
        """Pass after pass until stopped. A pass hands each job not running here to the pool
        (where it waits for a free thread, then takes its lease and runs what is due); then
        the loop sleeps until the next tick, `poll_seconds` at most, or until a job ran (a
        tick may have passed during its run). It never waits for a run to end, so a lease
        freed by a dead scheduler is seen within `poll_seconds`. Stopped, it waits for the
        running jobs, which finish their current run and start no other."""
        holder = self.store.leases.holder
        log.info("scheduler %s started (%d jobs at once)", holder, self.config.max_parallel)
        running: dict[str, Future[JobOutcome]] = {}  # submitted, by job name: never twice
        with self._pool() as pool:
            while not self.stopping.is_set():
                try:
                    jobs = self.jobs()
                    for job in jobs:
                        if job.name not in running:
                            running[job.name] = pool.submit(self._run_guarded, job, None)
                            running[job.name].add_done_callback(self._wake_if_ran)
                    now = self.clock()
                    self._after_pass(now)
                    wait = self._seconds_to_next_tick(jobs, now)
                except Exception as exc:  # reading the jobs failed (registry down): try again
                    log.error("scheduler pass failed: %s: %s", type(exc).__name__, exc)
                    wait = self.config.poll_seconds
                self._wake.wait(wait)
                self._wake.clear()
                for name in [name for name, future in running.items() if future.done()]:
                    del running[name]
        log.info("scheduler %s stopped", holder)

    def _pool(self) -> ThreadPoolExecutor:
        return ThreadPoolExecutor(self.config.max_parallel, thread_name_prefix="featurehub-job")

    def _wake_if_ran(self, future: Future[JobOutcome]) -> None:
        if not future.cancelled() and future.result().status == "ran":
            self._wake.set()

    def _run_guarded(self, job: Job, now: datetime | None) -> JobOutcome:
        """A job on a pool thread, at `now` (None: the clock once a thread is free). Never
        raises: an error outside the job's runs (the registry unreachable) is its outcome,
        and the next pass tries it again."""
        if self.stopping.is_set():
            return JobOutcome(job.name, "stopped")
        try:
            return self._run_job(job, now or self.clock())
        except Exception as exc:
            log.error("%s could not be scheduled: %s: %s", job.name, type(exc).__name__, exc)
            return JobOutcome(job.name, "failed", f"{type(exc).__name__}: {exc}")

    def _run_job(self, job: Job, now: datetime) -> JobOutcome:
        with self._lock:
            resting_until = self._resting_until.get(job.name, now)
            error = self.failing.get(job.name, "")
        if now < resting_until:
            return JobOutcome(job.name, "failing", error)
        try:
            with self.store.leases.hold([job.name]):
                ends = job.due(now)
                done: list[datetime] = []
                for end in ends:
                    if self.stopping.is_set():
                        return JobOutcome(job.name, "stopped", ends=done)
                    try:
                        detail = self._with_retries(job, end)
                    except Exception as exc:
                        if job.name in self.store.leases.lost:  # another scheduler runs it
                            return JobOutcome(job.name, "held", str(exc), done)
                        error = f"{type(exc).__name__}: {exc}"
                        rest = job.next_tick(now)
                        with self._lock:
                            self.failing[job.name] = error
                            if rest is not None:
                                self._resting_until[job.name] = rest
                        log.error(
                            "%s failed %d time(s), left until its next tick: %s",
                            job.name,
                            self.config.max_attempts,
                            error,
                        )
                        event = job.failed(error, self.config.max_attempts, end)
                        if event is not None:
                            self.store.alerts.emit(event)
                        return JobOutcome(job.name, "failed", error, done)
                    with self._lock:
                        self.failing.pop(job.name, None)
                        self._resting_until.pop(job.name, None)
                    log.info("%s %s", job.name, detail)
                    done.append(end)
                if not done:
                    return JobOutcome(job.name, "not_due")
                return JobOutcome(job.name, "ran", detail, done)
        except LeaseHeld as exc:
            return JobOutcome(job.name, "held", str(exc))

    def _with_retries(self, job: Job, end: datetime) -> str:
        retrying = Retrying(
            stop=stop_after_attempt(self.config.max_attempts) | stop_when_event_set(self.stopping),
            wait=wait_exponential(
                multiplier=self.config.retry_wait_seconds, max=self.config.retry_max_wait_seconds
            ),
            retry=retry_if_exception(
                lambda exc: (
                    not isinstance(exc, LeaseHeld) and job.name not in self.store.leases.lost
                )
            ),
            sleep=self._backoff,
            before_sleep=lambda state: log.warning(
                "%s attempt %d failed, retrying: %s",
                job.name,
                state.attempt_number,
                state.outcome.exception() if state.outcome else "",
            ),
            reraise=True,
        )
        return retrying(job.run, end)

    def _backoff(self, seconds: float) -> None:
        self.stopping.wait(seconds)  # a stop cuts a backoff wait short

    def _seconds_to_next_tick(self, jobs: Sequence[Job], now: datetime) -> float:
        ticks = [tick for job in jobs if (tick := job.next_tick(now)) is not None]
        wait = self.config.poll_seconds
        if ticks:
            wait = min(wait, (min(ticks) - now).total_seconds())
        return max(wait, 0.05)

    def _touch_health(self) -> None:
        """Write the liveness file a container healthcheck reads: its age says the loop
        is alive (it is rewritten after every pass, every `poll_seconds` at most, while jobs
        run too), its content what is failing."""
        if self.health_file is None:
            return
        with self._lock:
            failing = dict(self.failing)
        state = {
            "pid": os.getpid(),
            "holder": self.store.leases.holder,
            "at": self.clock().isoformat(),
            "failing": failing,
        }
        partial = self.health_file.with_name(self.health_file.name + ".tmp")
        partial.write_text(json.dumps(state, indent=2))
        partial.replace(self.health_file)
