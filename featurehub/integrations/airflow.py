"""Airflow DAGs that run featurehub's materialization on each view's own schedule.

Put this in a file of Airflow's dags folder:

    from datetime import datetime, timezone
    from featurehub.integrations.airflow import featurehub_dags

    globals().update(featurehub_dags("/repo", start_date=datetime(2026, 1, 1, tzinfo=timezone.utc)))

One DAG per scheduled view, because that is the unit Airflow schedules, pauses, retries and
catches up: a DAG has one schedule and one catch-up setting, and a view has both. Views are
read from the registry (what `featurehub apply` published), not from the repo's Python files,
so the DAGs are what is deployed; a view without a schedule gets no DAG.

Each DAG has one BashOperator task running `featurehub materialize-incremental END --views
VIEW`, END being the run's data interval end, rather than a PythonOperator calling the SDK:
the run gets a process of its own (a Spark driver's JVM, DuckDB's memory and the registry's
connections end with it, never leaking into a long-lived Airflow worker), it is the same
command cron, Kubernetes and the compose scheduler run, its exit code (1 when the view
failed) is what Airflow retries on, and `featurehub_command` can point it at a featurehub
installed apart from Airflow (another venv, a container) when their dependencies clash.
The view's lease (taken by `materialize-incremental`) keeps an Airflow run and a `featurehub
schedule` from materializing one view at the same time.

Retries are the scheduler's (`scheduler.max_attempts`, `retry_wait_seconds`,
`retry_max_wait_seconds` in featurehub.yaml), with Airflow's exponential backoff; a view's
`catchup="all"` becomes `catchup=True` (each missed interval runs, tick to tick) and
"latest" (the default) `catchup=False` (one run, of the latest interval).

Airflow is imported when the DAGs are made, so this module's helpers import anywhere.
"""

from __future__ import annotations

import shlex
import sys
from collections.abc import Mapping
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from featurehub.config import RepoConfig, load_config
from featurehub.errors import ConfigError
from featurehub.registry.sql import SqlRegistry

# `featurehub schedule`'s defaults (SchedulerConfig), for a featurehub.yaml without the
# `scheduler:` section.
DEFAULT_MAX_ATTEMPTS = 3
DEFAULT_RETRY_WAIT_SECONDS = 5.0
DEFAULT_RETRY_MAX_WAIT_SECONDS = 300.0

# The end of the run's data interval, ISO 8601 with its offset. Under Airflow 3's cron
# trigger timetable it is the tick itself; under Airflow 2's cron intervals, the interval's
# end, when the run starts: in both, what the run is due to have materialized.
INTERVAL_END = "{{ data_interval_end.isoformat() }}"


def airflow_classes() -> tuple[Any, Any]:
    """Airflow's DAG and BashOperator, from where Airflow 3 or Airflow 2 keeps them."""
    try:  # Airflow 3
        from airflow.sdk import DAG
    except ImportError:  # Airflow 2
        from airflow import DAG
    try:  # Airflow 3, and Airflow 2 with apache-airflow-providers-standard
        from airflow.providers.standard.operators.bash import BashOperator
    except ImportError:  # Airflow 2
        from airflow.operators.bash import BashOperator
    return DAG, BashOperator


def dag_id_of(project: str, view: str) -> str:
    """The DAG of one view: its project in the id, so two repos' DAGs never collide."""
    return f"featurehub_{project}_{view}"


def materialize_command(featurehub_command: str, repo: Path, view: str) -> str:
    """The task's shell command: the view's incremental run up to the interval's end."""
    return (
        f"{featurehub_command} --repo {shlex.quote(str(repo))} materialize-incremental "
        f'"{INTERVAL_END}" --views {shlex.quote(view)} --json'
    )


def retry_arguments(scheduler: Any) -> dict[str, Any]:
    """Airflow's retry settings from featurehub.yaml's `scheduler:` section (None: absent):
    the same attempts and waits whichever scheduler runs the view."""
    attempts = getattr(scheduler, "max_attempts", DEFAULT_MAX_ATTEMPTS)
    wait = getattr(scheduler, "retry_wait_seconds", DEFAULT_RETRY_WAIT_SECONDS)
    max_wait = getattr(scheduler, "retry_max_wait_seconds", DEFAULT_RETRY_MAX_WAIT_SECONDS)
    return {
        "retries": attempts - 1,
        "retry_delay": timedelta(seconds=wait),
        "retry_exponential_backoff": True,
        "max_retry_delay": timedelta(seconds=max_wait),
    }


def dag_arguments(project: str, spec: Mapping[str, Any], scheduler: Any) -> dict[str, Any]:
    """The DAG of one view spec, as keyword arguments of Airflow's `DAG` (less start_date)."""
    return {
        "dag_id": dag_id_of(project, spec["name"]),
        "schedule": spec["schedule"],
        "catchup": spec.get("catchup", "latest") == "all",
        "max_active_runs": 1,  # a view's runs one after another, as its lease requires
        "default_args": {"owner": spec.get("owner") or "featurehub", **retry_arguments(scheduler)},
        "doc_md": spec.get("description") or None,
    }


def scheduled_views(config: RepoConfig) -> dict[str, Mapping[str, Any]]:
    """The registered views of the repo that have a schedule, by name."""
    registry = SqlRegistry(config.registry_url)
    try:
        specs = registry.specs(config.project).get("feature_view", {})
    finally:
        registry.close()
    return {name: spec for name, spec in sorted(specs.items()) if spec.get("schedule")}


def featurehub_dags(
    repo_path: str | Path,
    *,
    start_date: datetime,
    featurehub_command: str | None = None,
    tags: list[str] | None = None,
) -> dict[str, Any]:
    """One DAG per scheduled view of the repo's registry, by DAG id.

    `start_date` is the first interval's start, as in any DAG (timezone-aware; with
    catchup="all" every interval since it runs). `featurehub_command` is how a task runs
    featurehub (default: this interpreter's, `python -m featurehub`).
    """
    if start_date.tzinfo is None:
        raise ConfigError(
            "featurehub_dags: start_date has no timezone; pass an aware datetime, e.g. "
            "datetime(2026, 1, 1, tzinfo=timezone.utc)"
        )
    repo = Path(repo_path).resolve()
    command = featurehub_command or f"{shlex.quote(sys.executable)} -m featurehub"
    config = load_config(repo)
    # `scheduler:` (featurehub schedule's section) holds the retries; absent: its defaults.
    scheduler = getattr(config, "scheduler", None)
    dag_class, bash_operator = airflow_classes()
    dags: dict[str, Any] = {}
    for name, spec in scheduled_views(config).items():
        dag = dag_class(
            **dag_arguments(config.project, spec, scheduler),
            start_date=start_date,
            tags=["featurehub", config.project, *(tags or [])],
        )
        bash_operator(
            task_id="materialize_incremental",
            bash_command=materialize_command(command, repo, name),
            dag=dag,
        )
        dags[dag.dag_id] = dag
    return dags
