"""Several `featurehub schedule` processes against one registry (SQLite, PostgreSQL), one of
them killed with -9 in the middle of its runs (it runs several views at once): the others
take its views over, no view runs twice at once (the runs' [started, finished] never
overlap), and nothing is lost or doubled (each view's offline rows are exactly the rows that
arrived before its watermark, once)."""

from __future__ import annotations

import json
import signal
import subprocess
import time
from pathlib import Path

import duckdb

from featurehub import FeatureStore
from tests.scheduler.schedulers import (
    ROOT,
    featurehub,
    hours_ago,
    overlapping,
    run_rows,
    scheduled_repo,
    start_scheduler,
    this_hour,
)

VIEWS = ["stats_a", "stats_b", "stats_c"]
HOURS = 10


def wait_for(condition: object, what: str, timeout: float = 300.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


def test_schedulers_share_views_and_survive_a_kill_9(
    tmp_path: Path, registry_url: str, redis_url: str
) -> None:
    repo = scheduled_repo(
        tmp_path / "repo", registry_url, redis_url, VIEWS, hours=HOURS + 2, catchup="all"
    )
    store = FeatureStore(repo)
    store.apply()
    store.materialize_incremental(hours_ago(HOURS))  # every view's watermark: 10 hours ago
    target = this_hour()
    pause = "online_written:0.4"  # each run takes a little while: the kill lands in one
    logs = [tmp_path / f"scheduler{i}.log" for i in range(3)]
    schedulers = [start_scheduler(repo, log, pause=pause) for log in logs]
    wait_for(lambda: all(" started (" in log.read_text() for log in logs), "every scheduler's loop")
    running: list[subprocess.Popen[bytes]] = []  # the scheduler in the middle of a run

    def a_scheduler_is_running() -> bool:
        pids = {row["pid"] for row in run_rows(registry_url) if row["status"] == "running"}
        running[:] = [scheduler for scheduler in schedulers if scheduler.pid in pids]
        return bool(running)

    wait_for(a_scheduler_is_running, "a scheduler to run a view")
    victim = running[0]
    victim.send_signal(signal.SIGKILL)
    victim.wait()
    killed_at = time.time()
    survivors = [scheduler for scheduler in schedulers if scheduler is not victim]
    runs = store.registry.runs(store.project)

    def caught_up() -> bool:
        marks = runs.watermarks()
        return all(marks.get(view) is not None and marks[view] >= target for view in VIEWS)

    wait_for(caught_up, "the surviving schedulers to catch every view up")
    for survivor in survivors:
        survivor.send_signal(signal.SIGTERM)
    for survivor, log in zip(schedulers, logs, strict=True):
        if survivor is not victim:
            assert survivor.wait(timeout=120) == 0, log.read_text()[-3000:]

    rows = run_rows(registry_url)
    assert overlapping(rows) == []
    killed = [row for row in rows if row["pid"] == victim.pid and row["status"] != "success"]
    assert killed  # the runs it was in, one per view it was running
    for run in killed:
        assert "abandoned" in (run["error"] or "")
        after = [row for row in rows if row["view"] == run["view"] and row["id"] > run["id"]]
        assert after and all(row["pid"] != victim.pid for row in after)  # taken over
        taken_over = after[0]["started_at"].timestamp() - killed_at
        print(f"{run['view']} taken over {taken_over:.2f}s after the kill")  # a figure
    # Each view took every interval once: its rows are those that arrived before its
    # watermark, each once.
    source = repo / "data" / "drivers.parquet"
    for name in VIEWS:
        view = store.get_feature_view(name)
        watermark = runs.watermark(name)
        assert watermark is not None
        cutoff = f"TIMESTAMPTZ '{watermark.isoformat()}'"
        [(expected,)] = duckdb.sql(
            f"SELECT count(*) FROM '{source}' WHERE created < {cutoff}"
        ).fetchall()
        relation = store.offline_store.relation(view)
        [(stored, distinct)] = duckdb.sql(
            f"SELECT count(*), count(DISTINCT driver_id) FROM {relation}"
        ).fetchall()
        assert 0 < expected == stored == distinct
        successes = [r for r in rows if r["view"] == name and r["status"] == "success"]
        assert len(successes) >= HOURS + 1  # the first run, then one per missed hour
    assert store.leases.list() == []  # every lease released or taken and released
    store.close()


def test_sigterm_lets_the_running_materialization_finish(
    tmp_path: Path, registry_url: str, redis_url: str
) -> None:
    repo = scheduled_repo(tmp_path / "repo", registry_url, redis_url, ["stats_a"], hours=6)
    store = FeatureStore(repo)
    store.apply()
    store.materialize_incremental(hours_ago(4))
    health = tmp_path / "health.json"
    scheduler = start_scheduler(
        repo, tmp_path / "scheduler.log", "--health-file", str(health), pause="online_written:2"
    )

    def running() -> bool:
        return any(row["status"] == "running" for row in run_rows(registry_url))

    wait_for(running, "the scheduler to start a run")
    scheduler.send_signal(signal.SIGTERM)
    assert scheduler.wait(timeout=60) == 0, (tmp_path / "scheduler.log").read_text()[-3000:]
    rows = run_rows(registry_url)
    assert [row["status"] for row in rows] == ["success", "success"]  # finished; no other began
    assert store.leases.list() == []
    assert json.loads(health.read_text())["pid"] == scheduler.pid  # written after its pass
    store.close()


def test_a_second_incremental_run_of_a_view_says_who_holds_it(
    tmp_path: Path, registry_url: str, redis_url: str
) -> None:
    repo = scheduled_repo(tmp_path / "repo", registry_url, redis_url, ["stats_a"], hours=3)
    store = FeatureStore(repo)
    store.apply()
    with store.leases.hold(["view:stats_a"]):  # as a running scheduler would
        done = subprocess.run(
            featurehub(repo, "materialize-incremental"),
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=120,
        )
    assert done.returncode == 1
    assert "another run of 'stats_a' is in progress: pid" in done.stderr
    assert run_rows(registry_url) == []
    store.close()


def test_once_at_runs_what_is_due_then_exits(
    tmp_path: Path, registry_url: str, redis_url: str
) -> None:
    repo = scheduled_repo(tmp_path / "repo", registry_url, redis_url, ["stats_a"], hours=6)
    store = FeatureStore(repo)
    store.apply()
    store.materialize_incremental(hours_ago(5))
    at = hours_ago(2).replace(minute=30)

    def once(moment: str) -> subprocess.CompletedProcess[str]:
        log = tmp_path / "once.log"
        child = start_scheduler(repo, log, "--once", "--at", moment, "--json")
        child.wait(timeout=120)
        return subprocess.CompletedProcess(child.args, child.returncode, log.read_text(), "")

    done = once(at.isoformat())
    assert done.returncode == 0, done.stdout
    # catchup "all": the ticks 4, 3 and 2 hours ago, each its own interval; 2:30 waits
    ends = [row["interval_end"] for row in run_rows(registry_url)][1:]
    assert len(ends) == 3
    assert store.registry.runs(store.project).watermark("stats_a") == hours_ago(2)
    assert once(at.isoformat()).returncode == 0
    assert len(run_rows(registry_url)) == 4  # nothing more was due
    store.close()
