"""Alert events: what happened (a failed skew check, a stale view, a failed
materialization), as the one JSON document every destination gets (docs/alerts.md).

The small constructors below take what their caller already has (the skew check's report,
the scheduler's figures for a view), so the scheduler builds an event without knowing the
format, and every event of a kind has the same fields."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any

from featurehub.types import as_utc

if TYPE_CHECKING:
    from featurehub.skew.check import SkewReport

SKEW_CHECK_FAILED = "skew_check_failed"
VIEW_STALE = "view_stale"
MATERIALIZATION_FAILED = "materialization_failed"


@dataclass(frozen=True)
class AlertEvent:
    """One event. `id` is unique per event: delivery is at least once, so a receiver that
    must act once drops an id it has seen."""

    kind: str
    project: str
    subject: str  # the feature service or view it is about
    time: datetime
    summary: str  # one line for a chat message
    details: dict[str, Any] = field(default_factory=dict)
    id: str = field(default_factory=lambda: uuid.uuid4().hex)

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "kind": self.kind,
            "project": self.project,
            "subject": self.subject,
            "time": as_utc(self.time).isoformat(),
            "summary": self.summary,
            "details": self.details,
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), default=str, sort_keys=True)


def skew_check_failed(
    project: str,
    report: SkewReport,
    check_id: int | None = None,
    dataset: str | None = None,
    sample: float | None = None,
    at: datetime | None = None,
) -> AlertEvent:
    """The event of a check that crossed a threshold: which features failed, by which check
    and figures, and the recorded check's id (its whole result: `featurehub skew history
    SERVICE --json`, or `store.skew_checks`)."""
    failed = report.failed_features()
    names = ", ".join(f"{f.feature} ({f.check})" for f in failed) or "no feature"
    service = report.feature_service
    replay = report.replay
    distribution = report.distribution
    model = report.model
    whose = service if model is None else f"{service} ({model.name} version {model.version})"
    return AlertEvent(
        kind=SKEW_CHECK_FAILED,
        project=project,
        subject=service,
        time=at or datetime.now(timezone.utc),
        summary=f"skew check of {whose} failed: {len(failed)} feature(s) crossed a "
        f"threshold: {names}",
        details={
            "feature_service": service,
            "model": None if model is None else model.to_dict(),
            "window_start": report.start.isoformat(),
            "window_end": report.end.isoformat(),
            "dataset": dataset,
            "sample": sample,
            "rows_served": replay.rows,
            "replay_passed": replay.passed,
            "distribution_passed": None if distribution is None else distribution.passed,
            "failed_features": [f.to_dict() for f in failed],
            "check_id": check_id,
            "history": f"featurehub skew history {service} --json",
        },
    )


def view_stale(
    project: str,
    view: str,
    staleness: timedelta,
    bound: timedelta,
    newest_event_time: datetime | None = None,
    last_success: datetime | None = None,
    at: datetime | None = None,
) -> AlertEvent:
    """A view whose newest materialized event is older than its freshness bound allows."""
    return AlertEvent(
        kind=VIEW_STALE,
        project=project,
        subject=view,
        time=at or datetime.now(timezone.utc),
        summary=f"feature view {view} is stale: its newest materialized event is "
        f"{_human(staleness)} old, above its freshness bound of {_human(bound)}",
        details={
            "view": view,
            "staleness_seconds": staleness.total_seconds(),
            "freshness_seconds": bound.total_seconds(),
            "newest_event_time": _iso(newest_event_time),
            "last_success": _iso(last_success),
        },
    )


def materialization_failed(
    project: str,
    view: str,
    error: str,
    run_id: int | None = None,
    attempts: int | None = None,
    window_start: datetime | None = None,
    window_end: datetime | None = None,
    at: datetime | None = None,
) -> AlertEvent:
    """A materialization of `view` that failed (after `attempts` tries, when retried)."""
    tries = f" after {attempts} attempt(s)" if attempts else ""
    first_line = error.splitlines()[0] if error else "no error message"
    return AlertEvent(
        kind=MATERIALIZATION_FAILED,
        project=project,
        subject=view,
        time=at or datetime.now(timezone.utc),
        summary=f"materialization of {view} failed{tries}: {first_line}",
        details={
            "view": view,
            "error": error,
            "run_id": run_id,
            "attempts": attempts,
            "window_start": _iso(window_start),
            "window_end": _iso(window_end),
        },
    )


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else as_utc(moment).isoformat()


def _human(span: timedelta) -> str:
    seconds = span.total_seconds()
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds / size:.1f}{unit}"
    return f"{seconds:.0f}s"
