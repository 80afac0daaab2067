"""Notice an online store that lost its data.

Every run that writes a view online leaves a marker (its run id) in the online store, and
the registry knows the latest such run per view. A store whose marker for a view is missing,
or older than that run, no longer holds what was written: a Redis restarted without
persistence, a store restored from an older copy, a new server behind the same URL. Reads
would answer not_found (or old values) while the offline store has the data.
"""

from __future__ import annotations

from collections.abc import Mapping

from featurehub.online.base import OnlineStore


def lost_views(expected: Mapping[str, int], store: OnlineStore) -> dict[str, str]:
    """Per view whose data the online store lost, why we think so and what to run.

    `expected` maps each view to the id of its latest successful run that wrote it online
    (`RunLog.last_online_runs`); only views in it are checked.
    """
    if not expected:
        return {}
    found = store.read_markers()
    lost = {}
    for view, run_id in sorted(expected.items()):
        marker = found.get(view)
        if marker is not None and marker >= run_id:
            continue
        held = "no marker of any run" if marker is None else f"the marker of older run {marker}"
        lost[view] = (
            f"run {run_id} wrote view {view!r} online, but the online store holds {held}: it "
            "lost its data (restarted empty, or restored from an older copy). Rebuild it "
            f"from the offline store: featurehub materialize --online-only --views {view}"
        )
    return lost
