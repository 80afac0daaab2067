"""Where each view stands: its watermark, its last run, how fresh its data is, whether the
online store still holds what was written to it. `featurehub status` prints it; exit 1 when
any view has a problem (a failed last run, stale data, lost online data)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from featurehub.definitions import FeatureView
from featurehub.monitoring.freshness import Freshness, age_text
from featurehub.registry.runs import RunLog


@dataclass(frozen=True)
class ViewStatus:
    view: str
    watermark: datetime | None  # the next incremental run takes what arrived from here on
    last_run_id: int | None
    last_status: str | None  # success | failed | running
    last_run_at: datetime | None
    # "ok"; "lost" (see featurehub.online.markers); "behind" (an offline-only run wrote rows
    # the online store lacks); "-" for views that are not online
    online: str
    problem: str | None  # None when all is well
    last_success_at: datetime | None = None
    newest_event: datetime | None = None  # the newest event time materialized
    staleness_seconds: float | None = None  # now - newest_event
    freshness_seconds: float | None = None  # the bound (None: none)
    stale: bool = False
    failing: bool = False  # its last run failed


def view_statuses(
    views: Sequence[FeatureView],
    runs: RunLog,
    lost: Mapping[str, str],
    freshness: Mapping[str, Freshness],
) -> list[ViewStatus]:
    """One status per view: failing first, then stale, then other problems, then the rest."""
    statuses = []
    behind = runs.offline_only_since_online()
    latest, watermarks = runs.latest(), runs.watermarks()
    for view in views:
        last = latest.get(view.name)
        fresh = freshness[view.name]
        online = "-"
        problem = None
        if fresh.stale:
            bound = age_text(fresh.freshness_seconds or 0)
            problem = (
                f"stale: nothing materialized (freshness {bound})"
                if fresh.staleness_seconds is None
                else f"stale: newest event {age_text(fresh.staleness_seconds)} old "
                f"(freshness {bound})"
            )
        if view.online:
            online = "ok"
            if view.name in behind:
                online = "behind"
                problem = (
                    f"run {behind[view.name]} wrote the offline store only: the online store "
                    "lacks its rows. Rebuild it: featurehub materialize --online-only --views "
                    f"{view.name}"
                )
            if view.name in lost:
                online, problem = "lost", lost[view.name]
        failing = last is not None and last.status == "failed"
        if last is not None and failing:
            problem = f"last run {last.id} failed: {last.error}"
        statuses.append(
            ViewStatus(
                view=view.name,
                watermark=watermarks.get(view.name),
                last_run_id=last.id if last else None,
                last_status=last.status if last else None,
                last_run_at=last.started_at if last else None,
                online=online,
                problem=problem,
                last_success_at=fresh.last_success_at,
                newest_event=fresh.newest_event,
                staleness_seconds=fresh.staleness_seconds,
                freshness_seconds=fresh.freshness_seconds,
                stale=fresh.stale,
                failing=failing,
            )
        )
    return sorted(
        statuses,
        key=lambda item: (not item.failing, not item.stale, item.problem is None, item.view),
    )
