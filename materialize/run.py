"""Deployable entry point of materialization: one incremental run of every view, up to now.

    python materialize/run.py            # the repo from FEATUREHUB_REPO (default /repo)

Meant to be started by a scheduler (cron, Kubernetes CronJob, Airflow): each start takes,
per view, every row that arrived since its watermark, up to now (late rows included). It
prints the JSON summary and exits 1 when a view failed, so the scheduler sees failures.
Stores and engine come from featurehub.yaml and the FEATUREHUB_* environment variables.
"""

from __future__ import annotations

import json
import os
import sys
from datetime import datetime, timezone

from featurehub import FeatureStore
from featurehub.engines.runner import MaterializationError


def main() -> int:
    repo = os.environ.get("FEATUREHUB_REPO", "/repo")
    end = datetime.now(timezone.utc)
    with FeatureStore(repo) as store:
        try:
            results = store.materialize_incremental(end)
            failures: dict[str, str] = {}
        except MaterializationError as exc:
            results, failures = exc.results, exc.failures
    summary = {
        "end": end.isoformat(),
        "results": [r.to_dict() for r in results],
        "failures": failures,
    }
    print(json.dumps(summary, indent=2))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
