"""Run inside the Airflow venv: load a dags folder, `dag.test()` every DAG (or the one named)
at one logical date, print one line `RESULT {json}` with each DAG's settings, its run's state
and the tries its task took."""

from __future__ import annotations

import json
import sys
from datetime import datetime

from airflow.models.dagbag import DagBag


def main(dags_folder: str, logical_date: str, only: str | None = None) -> None:
    bag = DagBag(dags_folder, include_examples=False)
    if bag.import_errors:
        raise SystemExit(f"DAG import errors: {bag.import_errors}")
    at = datetime.fromisoformat(logical_date)
    result = {}
    for dag_id, dag in sorted(bag.dags.items()):
        if only is not None and dag_id != only:
            continue
        run = dag.test(logical_date=at)
        task = dag.get_task("materialize_incremental")
        [instance] = run.get_task_instances()
        result[dag_id] = {
            "state": str(run.state),
            "tries": instance.try_number,
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
    main(*sys.argv[1:])
