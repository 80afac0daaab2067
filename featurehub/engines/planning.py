"""Which rows a materialization takes: backfills and incremental runs as tasks.

A backfill takes the rows with event time in [START, END) that are visible (max(event,
created)) before the run's `as_of`, now unless a past moment is given; rows visible later are
left for a later incremental run, which takes them when they are due. It leaves the
watermark alone, whatever END is.

An incremental run of a view takes what arrived since its watermark, up to `as_of` (now, or
an earlier END; never later than now):
- never ran incrementally: every row visible before `as_of` (it replaces all event times);
- the source has a created timestamp: the rows that became visible in [watermark, as_of),
  whatever their event time, late backfills included (appended offline);
- it has none: event times in [watermark - view.lookback, as_of), which replaces what the
  store held for them, so rows that land up to `lookback` late are still taken.
Its end, `as_of`, becomes the watermark.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta, timezone

from featurehub.definitions import FeatureView
from featurehub.engines.base import MaterializationTask
from featurehub.errors import FeaturehubError
from featurehub.registry.runs import RunLog
from featurehub.types import as_utc

EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


def run_moment(as_of: datetime | None) -> datetime:
    """The moment a run takes its rows as of: `as_of` (UTC if naive), capped at now."""
    now = datetime.now(timezone.utc)
    return now if as_of is None else min(as_utc(as_of), now)


def backfill_tasks(
    views: Sequence[FeatureView],
    start: datetime,
    end: datetime,
    *,
    as_of: datetime | None = None,
    offline: bool = True,
    online: bool = True,
) -> list[MaterializationTask]:
    start, end = as_utc(start), as_utc(end)
    if end <= start:
        raise FeaturehubError(f"materialize: END {end} must be after START {start}")
    moment = run_moment(as_of)
    return [
        MaterializationTask(view, start, end, moment, "event", offline, online) for view in views
    ]


def incremental_tasks(
    views: Sequence[FeatureView],
    runs: RunLog,
    *,
    end: datetime | None = None,
    online: bool = True,
) -> list[MaterializationTask]:
    moment = run_moment(end)
    tasks = []
    for view in views:
        watermark = runs.watermark(view.name)
        if watermark is not None and watermark >= moment:
            continue  # up to date
        if watermark is None:
            start, window = EPOCH, "event"
        elif view.source.created_timestamp_field:
            start, window = watermark, "arrival"
        else:
            start, window = watermark - (view.lookback or timedelta(0)), "event"
        tasks.append(
            MaterializationTask(
                view, start, moment, moment, window, online=online, kind="incremental"
            )
        )
    return tasks
