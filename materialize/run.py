"""Deployable entry point of materialization: one incremental run of every view, up to now.

    python materialize/run.py            # the repo from FEATUREHUB_REPO (default /repo)

Meant to be started by a scheduler (cron, Kubernetes CronJob, Airflow): each start takes,
per view, every row that arrived since its watermark, up to now (late rows included). It
prints the JSON summary and exits 1 when a view failed, so the scheduler sees failures.
Stores and engine come from featurehub.yaml and the FEATUREHUB_* environment variables.
(`featurehub schedule --once` does the same on each view's own schedule; spark_submit.py is
this run as a spark-submit application.)
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Sequence
from datetime import datetime, timezone
from typing import Any

from featurehub import FeatureStore
from featurehub.engines.runner import MaterializationError


def incremental_run(repo: str, views: Sequence[str] | None = None) -> dict[str, Any]:
    """Every view (or `views`) from its watermark up to now: the JSON summary."""
    end = datetime.now(timezone.utc)
    with FeatureStore(repo) as store:
        try:
            results = store.materialize_incremental(end, views or None)
            failures: dict[str, str] = {}
        except MaterializationError as exc:
            results, failures = exc.results, exc.failures
    return {
        "end": end.isoformat(),
        "results": [r.to_dict() for r in results],
        "failures": failures,
    }


def main() -> int:
    summary = incremental_run(os.environ.get("FEATUREHUB_REPO", "/repo"))
    print(json.dumps(summary, indent=2))
    return 1 if summary["failures"] else 0


if __name__ == "__main__":
    sys.exit(main())
