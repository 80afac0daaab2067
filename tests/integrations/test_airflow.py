"""The Airflow DAG factory, run by a real Airflow (its own venv, built by
scripts/ensure-airflow-venv.sh) with `dag.test()` against a copy of the example repo."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from featurehub import FeatureStore
from featurehub.integrations.airflow import dag_arguments, materialize_command
from tests.example_repo import END, copy_example_repo

ROOT = Path(__file__).parents[2]
RUNNER = Path(__file__).with_name("airflow_runner.py")
DAG_FILE = """\
from datetime import datetime, timezone

from featurehub.integrations.airflow import featurehub_dags

globals().update(
    featurehub_dags({repo!r}, start_date=datetime(2026, 2, 1, tzinfo=timezone.utc))
)
"""


@pytest.fixture(scope="session")
def airflow_python() -> Path:
    """The Airflow venv's interpreter; built once, then cached (a no-op when it is there)."""
    venv = ROOT / ".venv-airflow"
    done = subprocess.run(
        ["bash", str(ROOT / "scripts" / "ensure-airflow-venv.sh")],
        capture_output=True,
        text=True,
        timeout=1800,
        env={**os.environ, "PYTHON": os.environ.get("PYTHON", "python3")},
    )
    assert done.returncode == 0, f"could not build the Airflow venv:\n{done.stderr[-4000:]}"
    return venv / "bin" / "python"


def _airflow_env(home: Path, dags: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FEATUREHUB_")}
    return {
        **env,
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(dags),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "PYTHONPATH": str(ROOT),  # this checkout's featurehub, whatever the venv installed
    }


def _applied_repo_and_dags(tmp_path: Path) -> tuple[Path, Path]:
    """A copy of the example repo, applied, and a dags folder with featurehub_dags of it."""
    repo = copy_example_repo(tmp_path / "repo", rows=500)
    subprocess.run(
        [sys.executable, "-m", "featurehub", "--repo", str(repo), "apply"],
        check=True,
        capture_output=True,
    )
    dags = tmp_path / "dags"
    dags.mkdir()
    (dags / "featurehub_dags.py").write_text(DAG_FILE.format(repo=str(repo)))
    return repo, dags


def _dag_test(
    airflow_python: Path, dags: Path, at: datetime, only: str | None = None
) -> dict[str, Any]:
    """`dag.test()` of the DAGs (or the one named) in a fresh Airflow home: their results."""
    env = _airflow_env(dags.parent / "airflow", dags)
    airflow = airflow_python.parent / "airflow"
    migrated = subprocess.run(
        [str(airflow), "db", "migrate"], env=env, capture_output=True, text=True, timeout=300
    )
    assert migrated.returncode == 0, migrated.stderr[-4000:]
    ran = subprocess.run(
        [str(airflow_python), str(RUNNER), str(dags), at.isoformat(), *([only] if only else [])],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert ran.returncode == 0, (ran.stdout + ran.stderr)[-6000:]
    line = next(x for x in ran.stdout.splitlines() if x.startswith("RESULT "))
    return dict(json.loads(line.removeprefix("RESULT ")))


def test_dag_test_materializes_every_scheduled_view(airflow_python: Path, tmp_path: Path) -> None:
    repo, dags = _applied_repo_and_dags(tmp_path)
    result = _dag_test(airflow_python, dags, END)

    with FeatureStore(repo) as store:
        views = {view.name: view for view in store.list_feature_views()}
        latest = store.registry.runs(store.project).latest()
        watermarks = store.registry.runs(store.project).watermarks()
    scheduled = sorted(name for name, view in views.items() if view.schedule)
    assert sorted(result) == [f"featurehub_ride_hailing_{name}" for name in scheduled]
    for name in scheduled:
        dag = result[f"featurehub_ride_hailing_{name}"]
        assert dag["state"] == "success" and dag["tries"] == 1, (name, dag)
        assert dag["catchup"] is False  # the default policy, "latest"
        assert dag["max_active_runs"] == 1
        assert dag["retries"] == 2 and dag["retry_exponential_backoff"]
        assert "ride_hailing" in dag["tags"]
        assert "materialize-incremental" in dag["bash_command"]
        assert dag["bash_command"].endswith(f"--views {name} --json")
        # each view ran, as the DAG's own run, up to its data interval's end
        assert latest[name].status == "success" and latest[name].kind == "incremental"
        assert (latest[name].rows_written or 0) > 0
        assert watermarks[name] == END
        assert list((repo / "data" / "offline" / "ride_hailing" / name).rglob("*.parquet")), name


def test_a_failing_view_fails_its_dag_after_the_configured_retries(
    airflow_python: Path, tmp_path: Path
) -> None:
    repo, dags = _applied_repo_and_dags(tmp_path)
    (repo / "data" / "route_stats.parquet").unlink()  # its source is gone
    result = _dag_test(airflow_python, dags, END, only="featurehub_ride_hailing_route_stats")
    dag = result["featurehub_ride_hailing_route_stats"]
    assert dag["state"] == "failed"
    assert dag["tries"] == 3  # featurehub schedule's max_attempts: each try a failed run
    with FeatureStore(repo) as store:
        runs = store.registry.runs(store.project).list("route_stats")
    assert [run.status for run in runs] == ["failed"] * 3
    assert all("route_stats.parquet" in (run.error or "") for run in runs)


def test_each_view_is_scheduled_on_its_own_cron() -> None:
    spec = {"name": "driver_stats", "schedule": "0 */6 * * *", "owner": "", "description": ""}
    arguments = dag_arguments("ride_hailing", spec, None)
    assert arguments["dag_id"] == "featurehub_ride_hailing_driver_stats"
    assert arguments["schedule"] == "0 */6 * * *"
    assert arguments["catchup"] is False
    assert arguments["default_args"]["owner"] == "featurehub"
    assert arguments["default_args"]["retries"] == 2  # featurehub schedule's 3 attempts


def test_catchup_all_runs_every_missed_interval() -> None:
    spec = {"name": "v", "schedule": "@hourly", "catchup": "all", "owner": "ml"}
    assert dag_arguments("p", spec, None)["catchup"] is True
    assert dag_arguments("p", {**spec, "catchup": "latest"}, None)["catchup"] is False


def test_retries_follow_the_scheduler_section() -> None:
    scheduler = SimpleNamespace(max_attempts=5, retry_wait_seconds=2.0, retry_max_wait_seconds=60.0)
    default_args = dag_arguments("p", {"name": "v", "schedule": "@daily"}, scheduler)[
        "default_args"
    ]
    assert default_args["retries"] == 4
    assert default_args["retry_delay"] == timedelta(seconds=2)
    assert default_args["max_retry_delay"] == timedelta(seconds=60)
    assert default_args["retry_exponential_backoff"] is True


def test_the_command_quotes_the_repo_and_takes_the_interval_end() -> None:
    command = materialize_command("featurehub", Path("/my repo"), "driver_stats")
    assert command == (
        "featurehub --repo '/my repo' materialize-incremental "
        '"{{ data_interval_end.isoformat() }}" --views driver_stats --json'
    )


def test_a_naive_start_date_is_refused(repo: Path) -> None:
    from featurehub.errors import ConfigError
    from featurehub.integrations.airflow import featurehub_dags

    with pytest.raises(ConfigError, match="start_date has no timezone"):
        featurehub_dags(repo, start_date=datetime(2026, 1, 1))
