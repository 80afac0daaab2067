"""Scheduled skew checks: which feature services' monitors are due at a time, and running
one (`run_monitor`): the skew check of the window that ends at its tick, recorded as every
check is, and a `skew_check_failed` alert when a threshold is crossed.

Ticks are cron times in UTC (croniter), as a view's `schedule`: a tick T is due at any time
at or after T until a check of the same rows (the monitor's model's, or the whole
service's) whose window reaches T is recorded. Only the
latest tick runs: after downtime a monitor checks the last window once rather than every
missed one (the newest traffic is what an alert is about). A scheduler calls `due_monitors`
and `run_monitor`; `featurehub monitor run` does the same by hand."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from featurehub.definitions import FeatureService, Monitor
from featurehub.definitions.cron import for_croniter
from featurehub.errors import FeaturehubError
from featurehub.monitoring.alert_events import AlertEvent, skew_check_failed
from featurehub.types import as_utc

if TYPE_CHECKING:
    from featurehub.feature_store import FeatureStore
    from featurehub.skew.check import SkewReport


class MonitorError(FeaturehubError, ValueError):
    """A monitor cannot run as asked (the service declares none)."""


def latest_tick(schedule: str, at: datetime) -> datetime:
    """The newest tick of `schedule` at or before `at` (a tick exactly at `at` counts)."""
    from croniter import croniter

    moment = as_utc(at) + timedelta(microseconds=1)  # croniter's get_prev is strictly before
    tick = croniter(for_croniter(schedule), moment).get_prev(datetime)
    return as_utc(tick).replace(fold=0)


def due_tick(monitor: Monitor, at: datetime, checked_until: datetime | None) -> datetime | None:
    """The tick to run at `at`, or None when the latest one is already checked (a recorded
    check's window reaches `checked_until`)."""
    tick = latest_tick(monitor.schedule, at)
    if checked_until is not None and as_utc(checked_until) >= tick:
        return None
    return tick


def checked_until(store: FeatureStore, service: FeatureService) -> datetime | None:
    """Where the service's monitor has checked up to: the latest window end of the checks
    of the rows it reads (its model's, or the whole service's)."""
    # Imported here: checks come before models in the flow; only a model monitor needs this.
    from featurehub.models.references import parse_reference

    assert service.monitor is not None
    model = service.monitor.model
    name = None if model is None else parse_reference(model).name
    return store.skew_checks.checked_until(service.name, model=name)


@dataclass(frozen=True)
class MonitorRun:
    """One monitor's check: the tick it ran for, its report, the recorded check's id, and
    the alert events it raised (already emitted)."""

    feature_service: str
    tick: datetime
    report: SkewReport
    check_id: int | None
    events: tuple[AlertEvent, ...] = field(default=())

    @property
    def passed(self) -> bool:
        return self.report.passed


def monitored_services(store: FeatureStore) -> list[FeatureService]:
    return [s for s in store.list_feature_services() if s.monitor is not None]


def due_monitors(store: FeatureStore, at: datetime) -> list[tuple[FeatureService, datetime]]:
    """Each monitored service whose latest tick at `at` is not checked yet, with that tick."""
    due = []
    for service in monitored_services(store):
        assert service.monitor is not None
        tick = due_tick(service.monitor, at, checked_until(store, service))
        if tick is not None:
            due.append((service, tick))
    return due


def run_monitor(store: FeatureStore, feature_service: str, at: datetime) -> MonitorRun:
    """Check `feature_service` over its monitor's window ending at its latest tick at or
    before `at`; a failed check emits `skew_check_failed` to `store.alerts`. A check that
    cannot run (nothing served in the window, an unknown dataset) raises, recording
    nothing, as `store.check_skew` does."""
    service = store.get_feature_service(feature_service)
    monitor = service.monitor
    if monitor is None:
        raise MonitorError(
            f"feature service {feature_service!r} declares no monitor; add one, e.g. "
            "FeatureService(..., monitor=Monitor(schedule='@hourly', "
            "window=timedelta(hours=24))), and apply, or check it once with "
            f"`featurehub skew {feature_service} --since 24h`"
        )
    alerts = store.alerts  # a misconfigured destination fails before the check runs
    tick = latest_tick(monitor.schedule, at)
    report = store.check_skew(  # a model's alias is resolved now, at each run
        feature_service,
        model=monitor.model,
        against=monitor.against,
        start=tick - monitor.window,
        end=tick,
        sample=monitor.sample,
    )
    check_id = report.check_id
    events: tuple[AlertEvent, ...] = ()
    if not report.passed:
        dataset = report.model.training_dataset if report.model else monitor.against
        events = (
            skew_check_failed(
                store.project, report, check_id, dataset=dataset, sample=monitor.sample
            ),
        )
    for event in events:
        alerts.emit(event)
    return MonitorRun(feature_service, tick, report, check_id, events)
