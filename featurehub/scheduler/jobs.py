"""What the scheduler runs: jobs, each with a lease name, what is due, and how to run it.

The loop (featurehub/scheduler/loop.py) asks each job source for its jobs at every pass, so
views applied or removed while it runs are picked up. Views are one source; the feature
services' monitors (scheduled skew checks) are another, added to `JOB_SOURCES` or passed to
`Scheduler(job_sources=...)`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Protocol

from featurehub.definitions import FeatureView
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


def view_jobs(store: FeatureStore, engine: str | None) -> list[Job]:
    """A job per view that has a schedule."""
    return [ViewJob(store, view, engine) for view in store.list_feature_views() if view.schedule]


JOB_SOURCES: tuple[JobSource, ...] = (view_jobs,)
