"""Where each view stands: its watermark, its last run, whether the online store still
holds what was written to it. `featurehub status` prints it; exit 1 when any has a problem."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from featurehub.definitions import FeatureView
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


def view_statuses(
    views: Sequence[FeatureView], runs: RunLog, lost: Mapping[str, str]
) -> list[ViewStatus]:
    """One status per view, those with a problem first."""
    statuses = []
    behind = runs.offline_only_since_online()
    latest, watermarks = runs.latest(), runs.watermarks()
    for view in views:
        last = latest.get(view.name)
        online = "-"
        problem = None
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
        if last is not None and last.status == "failed":
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
            )
        )
    return sorted(statuses, key=lambda status: (status.problem is None, status.view))
