"""Run inside the Airflow venv: load a dags folder, `dag.test()` every DAG at one logical
date, print one line `RESULT {json}` with each DAG's settings and run state."""

from __future__ import annotations

import json
import sys
from datetime import datetime

from airflow.models.dagbag import DagBag


def main(dags_folder: str, logical_date: str) -> None:
    bag = DagBag(dags_folder, include_examples=False)
    if bag.import_errors:
        raise SystemExit(f"DAG import errors: {bag.import_errors}")
    at = datetime.fromisoformat(logical_date)
    result = {}
    for dag_id, dag in sorted(bag.dags.items()):
        run = dag.test(logical_date=at)
        task = dag.get_task("materialize_incremental")
        result[dag_id] = {
            "state": str(run.state),
            "cron": dag.timetable.summary,
            "catchup": dag.catchup,
            "max_active_runs": dag.max_active_runs,
            "retries": task.retries,
            "retry_exponential_backoff": bool(task.retry_exponential_backoff),
            "owner": task.owner,
            "tags": sorted(dag.tags),
            "bash_command": task.bash_command,
        }
    print("RESULT " + json.dumps(result))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
