"""Which runs of a schedule are due: pure functions of the schedule, the watermark and now.

Schedules are cron expressions (or @-aliases) in UTC, read by croniter. A view's runs end at
its watermark, so the ticks due are those in (watermark, now]:
- never ran (no watermark): one run, to now (it takes every row visible by then);
- `catchup="latest"`: one run to now if any tick is due, however many were missed;
- `catchup="all"`: one run per missed tick, each ending at its tick (intervals tick to tick);
  the time after the last tick waits for the next one.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta

from croniter import croniter

from featurehub.definitions.cron import for_croniter
from featurehub.types import as_utc


def ticks_after(schedule: str, start: datetime) -> Iterator[datetime]:
    """The schedule's ticks strictly after `start`, in order, forever."""
    times = croniter(for_croniter(schedule), as_utc(start))
    while True:
        yield times.get_next(datetime)


def next_tick(schedule: str, now: datetime) -> datetime:
    return next(ticks_after(schedule, now))


def due_ends(
    schedule: str | None, watermark: datetime | None, now: datetime, catchup: str = "latest"
) -> list[datetime]:
    """The ends of the runs due at `now`, oldest first (empty: nothing is due)."""
    if schedule is None:
        return []
    now = as_utc(now)
    if watermark is None:
        return [now]
    ends = []
    for tick in ticks_after(schedule, watermark):
        if tick > now:
            break
        if catchup == "latest":
            return [now]
        ends.append(tick)
    return ends


def interval(schedule: str, now: datetime) -> timedelta:
    """The length of the schedule's interval that ends at its next tick after `now`."""
    after = next_tick(schedule, now)
    before: datetime = croniter(for_croniter(schedule), after).get_prev(datetime)
    return after - before
