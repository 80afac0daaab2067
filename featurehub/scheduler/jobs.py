"""What the scheduler runs: jobs, each with a lease name, what is due, and how to run it.

The loop (featurehub/scheduler/loop.py) asks each job source for its jobs at every pass, so
views and monitors applied or removed while it runs are picked up. Two sources: each view's
incremental materialization on its schedule, and each feature service's monitor (its skew
check on a schedule, docs/alerts.md); a new kind is one more class and source.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Protocol

from featurehub.definitions import FeatureService, FeatureView
from featurehub.definitions.monitor import Monitor
from featurehub.monitoring.alert_events import AlertEvent, materialization_failed
from featurehub.monitoring.monitors import (
    checked_until,
    due_tick,
    monitored_services,
    run_monitor,
)
from featurehub.registry.leases import view_lease
from featurehub.scheduler.ticks import due_ends, next_tick

if TYPE_CHECKING:
    from featurehub.feature_store import FeatureStore


class Job(Protocol):
    """One schedulable thing. `due` is asked while the job's lease is held, so what it reads
    (a watermark) cannot change under it; `run` raises when the run failed (it is retried)."""

    @property
    def name(self) -> str: ...  # its lease name, unique in the project

    def due(self, now: datetime) -> list[datetime]: ...  # the ends of the runs due, in order

    def run(self, end: datetime) -> str: ...  # what it did, in a few words

    def next_tick(self, now: datetime) -> datetime | None: ...

    def failed(self, error: str, attempts: int, end: datetime) -> AlertEvent | None:
        """The alert to raise when a run failed after its retries (None: none)."""
        ...


JobSource = Callable[["FeatureStore", str | None], Sequence[Job]]
"""The jobs of a store, given the engine name (None: the configured one)."""


@dataclass(frozen=True)
class ViewJob:
    """A view's incremental materialization, from its watermark to the tick."""

    store: FeatureStore
    view: FeatureView
    engine: str | None = None

    @property
    def name(self) -> str:
        return view_lease(self.view.name)

    def due(self, now: datetime) -> list[datetime]:
        watermark = self.store.registry.runs(self.store.project).watermark(self.view.name)
        return due_ends(self.view.schedule, watermark, now, self.view.catchup)

    def run(self, end: datetime) -> str:
        results = self.store.materialize_incremental(end, [self.view.name], engine=self.engine)
        rows = sum(result.rows_written for result in results)
        return f"materialized to {end:%Y-%m-%d %H:%M:%S}: {rows:,} rows"

    def next_tick(self, now: datetime) -> datetime | None:
        return next_tick(self.view.schedule, now) if self.view.schedule else None

    def failed(self, error: str, attempts: int, end: datetime) -> AlertEvent | None:
        return materialization_failed(
            self.store.project, self.view.name, error, attempts=attempts, window_end=end
        )


@dataclass(frozen=True)
class MonitorJob:
    """A feature service's monitor: its skew check of the window ending at each tick. The
    check records itself and alerts when it fails (`run_monitor`); only a check that could
    not run (nothing served in the window) raises, and is retried."""

    store: FeatureStore
    service: FeatureService

    @property
    def monitor(self) -> Monitor:
        assert self.service.monitor is not None
        return self.service.monitor

    @property
    def name(self) -> str:
        return f"monitor:{self.service.name}"

    def due(self, now: datetime) -> list[datetime]:
        checked = checked_until(self.store, self.service)
        tick = due_tick(self.monitor, now, checked)
        return [] if tick is None else [tick]

    def run(self, end: datetime) -> str:
        checked = run_monitor(self.store, self.service.name, end)
        verdict = "passed" if checked.passed else f"failed ({len(checked.events)} alert(s))"
        return f"skew check of the window to {end:%Y-%m-%d %H:%M:%S} {verdict}"

    def next_tick(self, now: datetime) -> datetime | None:
        return next_tick(self.monitor.schedule, now)

    def failed(self, error: str, attempts: int, end: datetime) -> AlertEvent | None:
        return None  # a check that could not run is logged and shown by the health file


def view_jobs(store: FeatureStore, engine: str | None) -> list[Job]:
    """A job per view that has a schedule."""
    return [ViewJob(store, view, engine) for view in store.list_feature_views() if view.schedule]


def monitor_jobs(store: FeatureStore, engine: str | None) -> list[Job]:
    """A job per feature service that declares a monitor."""
    return [MonitorJob(store, service) for service in monitored_services(store)]


JOB_SOURCES: tuple[JobSource, ...] = (view_jobs, monitor_jobs)
