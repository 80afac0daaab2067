"""How fresh each view's materialized data is: figures `featurehub status` prints and the
feature server's /metrics exports.

Staleness is now minus the newest event time the offline store holds for the view (each
commit records its newest event, from its files' footers, so nothing is read back). A view
is stale when that exceeds its bound: `FeatureView(freshness=...)`, or by default twice its
schedule's interval; a view with a bound and nothing materialized is stale too. A view
without a schedule or a freshness has no bound and is never stale.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from featurehub.definitions import FeatureView
from featurehub.registry.offline_commits import OfflineCommitLog
from featurehub.registry.runs import RunLog
from featurehub.scheduler.ticks import interval


@dataclass(frozen=True)
class Freshness:
    view: str
    last_success_at: datetime | None  # when its latest successful run finished
    newest_event: datetime | None  # the newest event time materialized (offline)
    staleness_seconds: float | None  # now - newest_event; None: nothing materialized
    freshness_seconds: float | None  # the bound; None: none

    @property
    def stale(self) -> bool:
        if self.freshness_seconds is None:
            return False
        return self.staleness_seconds is None or self.staleness_seconds > self.freshness_seconds


def age_text(seconds: float) -> str:
    """A duration as days, hours and minutes: `3d 4h`, `2h 05m`, `12m`."""
    minutes = round(seconds / 60)
    days, minutes = divmod(minutes, 24 * 60)
    hours, minutes = divmod(minutes, 60)
    if days:
        return f"{days}d {hours}h"
    return f"{hours}h {minutes:02d}m" if hours else f"{minutes}m"


def freshness_bound(view: FeatureView, now: datetime) -> timedelta | None:
    """The view's declared freshness, or twice its schedule's interval, or None."""
    if view.freshness is not None:
        return view.freshness
    if view.schedule is None:
        return None
    return 2 * interval(view.schedule, now)


def view_freshness(
    views: Sequence[FeatureView], runs: RunLog, commits: OfflineCommitLog, now: datetime
) -> dict[str, Freshness]:
    """Each view's freshness, from two registry queries whatever the number of views."""
    newest, successes = commits.newest_events(), runs.last_successes()
    figures = {}
    for view in views:
        event = newest.get(view.name)
        bound = freshness_bound(view, now)
        figures[view.name] = Freshness(
            view=view.name,
            last_success_at=successes.get(view.name),
            newest_event=event,
            staleness_seconds=None if event is None else (now - event).total_seconds(),
            freshness_seconds=None if bound is None else bound.total_seconds(),
        )
    return figures
