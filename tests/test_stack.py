"""The deployable stack without Docker, end to end: a real redis-server (online store),
PostgreSQL (registry), a Spark standalone master and worker, the feature server and two
`featurehub schedule` processes on loopback, all configured through featurehub.yaml and
FEATUREHUB_* variables only. The example repo runs on a one-minute cron: the schedulers
materialize it, the server serves (and logs) requests, the service's monitor checks them at
the next tick and its failure reaches a real webhook; one scheduler is killed with -9 in
the middle of its runs (it runs every view at once) and the other takes them over and
carries on.

One scheduler runs the Spark engine on the cluster, the other the local engine (the one
killed): two Spark drivers on a two-core machine would make the test minutes slower and
prove nothing more about leases (docs/orchestration.md, "The stack without Docker")."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from pathlib import Path

import duckdb
import httpx
import pyarrow as pa
import pytest

from featurehub import FeatureStore
from featurehub.offline.base import offline_schema
from tests.conftest import _fresh_schema
from tests.example_repo import copy_example_repo
from tests.monitoring.listener import Listener
from tests.redis_server import free_port
from tests.scheduler.schedulers import overlapping, run_rows
from tests.spark_cluster import standalone_cluster

pytestmark = pytest.mark.spark
ROOT = Path(__file__).parents[1]
SERVICE = "trip_completion_v1"
CORRUPTED = "conv_rate"  # of one served driver, written wrong online: the monitor's catch


def wait_for(condition: Callable[[], object], what: str, timeout: float = 240.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


def every_minute(repo: Path, hook: str) -> None:
    """The example repo on a one-minute cron, with a monitor on its service and a webhook."""
    features = repo / "features.py"
    features.write_text(re.sub(r'schedule="[^"]*"', 'schedule="* * * * *"', features.read_text()))
    services = repo / "services.py"
    services.write_text(
        services.read_text()
        .replace(
            "from featurehub import FeatureService",
            "from featurehub import FeatureService, Monitor\nfrom datetime import timedelta",
        )
        .replace(
            'description="Predicts whether a requested trip is completed",',
            'description="Predicts whether a requested trip is completed",\n'
            '    monitor=Monitor(schedule="* * * * *", window=timedelta(minutes=30)),',
        )
    )
    with (repo / "featurehub.yaml").open("a") as config:
        config.write(
            "scheduler:\n  lease_seconds: 5\n  poll_seconds: 0.5\n  retry_wait_seconds: 0.5\n"
            "serving_log:\n  flush_seconds: 0.5\n"
            "monitoring:\n  alerts:\n    backoff_seconds: 0.1\n    webhooks:\n"
            f"      - url: {hook}\n        events: [skew_check_failed]\n"
        )


def start(command: list[str], log: Path, env: dict[str, str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        command, cwd=ROOT, env=env, stdout=log.open("wb"), stderr=subprocess.STDOUT
    )


def test_the_stack_materializes_serves_monitors_and_survives_a_kill_9(
    tmp_path: Path, postgres_server: str, redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    now = datetime.now(timezone.utc)
    repo = copy_example_repo(tmp_path / "repo", rows=2_000, end=now - timedelta(minutes=5))
    registry = _fresh_schema(postgres_server)
    env = {
        **os.environ,
        "FEATUREHUB_REGISTRY_URL": registry,
        "FEATUREHUB_ONLINE_STORE_URL": redis_url,
        "FEATUREHUB_OFFLINE_ROOT": str(tmp_path / "offline"),
    }
    for name in (
        "FEATUREHUB_REGISTRY_URL",
        "FEATUREHUB_ONLINE_STORE_URL",
        "FEATUREHUB_OFFLINE_ROOT",
    ):
        monkeypatch.setenv(name, env[name])  # this process's FeatureStore: the same stack
    cli = [sys.executable, "-m", "featurehub", "-r", str(repo)]
    processes: list[subprocess.Popen[bytes]] = []
    began = time.monotonic()
    with Listener() as hook, standalone_cluster() as master:
        every_minute(repo, hook.url)
        subprocess.run([*cli, "apply"], cwd=ROOT, env=env, check=True, capture_output=True)
        store = FeatureStore(repo)
        views = sorted(view.name for view in store.list_feature_views() if view.schedule)
        try:
            # The victim first: a scheduler runs every view due at once (scheduler.max_parallel),
            # so the first to poll takes them all; its runs pause until it is killed.
            victim_env = {**env, "FEATUREHUB_PAUSE_AT": "online_written:120"}
            victim = start([*cli, "schedule"], tmp_path / "local-scheduler.log", victim_env)
            processes.append(victim)

            def victim_is_running() -> bool:
                return any(
                    row["pid"] == victim.pid and row["status"] == "running"
                    for row in run_rows(registry)
                )

            wait_for(victim_is_running, "the local scheduler to run the views")
            spark = {**env, "FEATUREHUB_ENGINE": "spark", "FEATUREHUB_SPARK_MASTER": master}
            survivor_log = tmp_path / "spark-scheduler.log"
            survivor = start([*cli, "schedule"], survivor_log, spark)
            port = free_port()
            server = start([*cli, "serve", "--port", str(port)], tmp_path / "server.log", env)
            processes += [survivor, server]
            wait_for(lambda: " started (" in survivor_log.read_text(), "the Spark scheduler's loop")
            victim.send_signal(signal.SIGKILL)
            victim.wait()
            killed_at = time.time()
            runs = store.registry.runs(store.project)
            wait_for(
                lambda: all(runs.watermark(view) is not None for view in views),
                "every view's first run",
            )
            url = f"http://127.0.0.1:{port}"
            wait_for(lambda: _ready(url), "the feature server's /readyz")
            if datetime.now(timezone.utc).second > 45:  # serve well before the next tick
                time.sleep(61 - datetime.now(timezone.utc).second)
            served = _entities(repo)
            _corrupt_one_driver(store, int(served["driver_id"][0]))
            with httpx.Client(base_url=url, timeout=30) as client:
                for _ in range(3):
                    answer = client.post(
                        "/v1/features", json={"feature_service": SERVICE, "entities": served}
                    )
                    assert answer.status_code == 200, answer.text
            served_at = datetime.now(timezone.utc)
            next_tick = served_at.replace(second=0, microsecond=0) + timedelta(minutes=1)

            [event] = hook.wait_for(1, timeout=150)  # the monitor's check at the next tick
            assert event["kind"] == "skew_check_failed" and event["subject"] == SERVICE
            wait_for(
                lambda: all(runs.watermark(view) >= next_tick for view in views),  # type: ignore[operator]
                "the surviving scheduler's runs at the next tick",
            )
        finally:
            for process in processes:
                process.send_signal(signal.SIGTERM)
            for process in processes:
                process.wait(120)

    print(f"stack test: {time.monotonic() - began:.1f}s from the cluster's start")  # a figure
    rows = run_rows(registry)
    assert overlapping(rows) == []  # no view ran twice at once
    killed = [row for row in rows if row["pid"] == victim.pid and row["status"] != "success"]
    assert killed  # the runs it was in, one per view
    for run in killed:
        assert "abandoned" in (run["error"] or "")
        after = [row for row in rows if row["view"] == run["view"] and row["id"] > run["id"]]
        assert after and after[0]["pid"] == survivor.pid  # taken over
        taken_over = after[0]["started_at"].timestamp() - killed_at
        print(f"{run['view']} taken over {taken_over:.2f}s after the kill")  # a figure
    for row in rows:  # figures: who ran what, on which engine, how long
        took = (row["finished_at"] or row["started_at"]) - row["started_at"]
        print(row["view"], row["engine"], row["pid"], row["status"], f"{took.total_seconds():.1f}s")
    later = [row for row in rows if row["started_at"] >= next_tick and row["status"] == "success"]
    assert {row["view"] for row in later} == set(views)  # the survivor carried on
    assert {(row["pid"], row["engine"]) for row in later} == {(survivor.pid, "spark")}
    checks = store.skew_checks.history(SERVICE)  # one per tick since the serving
    assert checks and all(check.window_end >= next_tick for check in checks)
    for check in checks:
        assert check.rows_served == 3 * len(served["driver_id"]) and not check.passed
        # Nothing lost: every served feature matched the offline store but the one corrupted.
        assert {failed.feature for failed in check.failed_features} == {f"driver_stats:{CORRUPTED}"}
    assert store.leases.list() == []
    store.close()


def _ready(url: str) -> bool:
    try:
        return httpx.get(f"{url}/readyz", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def _entities(repo: Path) -> dict[str, list[object]]:
    """Ten trips' keys, as the service's request takes them."""
    keys = "driver_id, customer_id, pickup_zone, dropoff_zone"
    frame = duckdb.sql(
        f"SELECT DISTINCT ON (driver_id) {keys} FROM '{repo}/data/trips.parquet' "
        "ORDER BY driver_id LIMIT 10"
    ).fetchnumpy()
    return {key: frame[key].tolist() for key in keys.split(", ")}


def _corrupt_one_driver(store: FeatureStore, driver_id: int) -> None:
    """That driver's online conv_rate becomes -1 with its row's timestamps: the skew a
    broken writer would leave, which only a replay against the offline store can see."""
    view = store.get_feature_view("driver_stats")
    relation = store.offline_store.relation(view)
    names = offline_schema(view).names
    row = duckdb.sql(
        f"SELECT {', '.join(names)} FROM {relation} WHERE driver_id = {driver_id} "
        "ORDER BY event_timestamp DESC, created_timestamp DESC LIMIT 1"
    ).to_arrow_table()
    wrong = row.set_column(names.index(CORRUPTED), CORRUPTED, pa.array([-1.0]))
    store.online_store.write(view, wrong)
