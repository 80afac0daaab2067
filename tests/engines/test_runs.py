"""Materialization runs: recorded in the registry, watermarks, incremental runs, failures."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import duckdb
import pytest
from typer.testing import CliRunner

from featurehub import FeatureStore
from featurehub.cli import app
from featurehub.engines.runner import MaterializationError
from tests.repos import BASE


def offline_count(store: FeatureStore) -> int:
    relation = store.offline_store.relation(store.get_feature_view("driver_stats"))
    return (
        0 if relation is None else duckdb.sql(f"SELECT count(*) FROM {relation}").fetchall()[0][0]
    )


def test_runs_are_recorded_and_incremental_starts_at_the_watermark(store: FeatureStore) -> None:
    # Row i has event time BASE + i h and was written 5 minutes later.
    runs = store.registry.runs(store.project)
    assert runs.watermark("driver_stats") is None
    [first] = store.materialize_incremental(BASE + timedelta(hours=4))
    assert (first.window, first.rows_written, first.rows_pending) == ("event", 4, 6)
    assert runs.watermark("driver_stats") == BASE + timedelta(hours=4)
    assert offline_count(store) == 4
    [result] = store.materialize_incremental(BASE + timedelta(hours=8))
    assert (result.start, result.end, result.window, result.rows_written) == (
        BASE + timedelta(hours=4),
        BASE + timedelta(hours=8),
        "arrival",
        4,
    )
    assert offline_count(store) == 8
    assert store.materialize_incremental(BASE + timedelta(hours=8)) == []  # up to date
    # Backfills, even to a far future END, leave the watermark alone and duplicate nothing.
    store.materialize(BASE, BASE + timedelta(hours=2))
    store.materialize(BASE, datetime(9999, 12, 31, tzinfo=timezone.utc))
    assert runs.watermark("driver_stats") == BASE + timedelta(hours=8)
    assert offline_count(store) == 10
    [late] = store.materialize_incremental(BASE + timedelta(hours=12))
    assert (late.start, late.rows_written) == (BASE + timedelta(hours=8), 2)
    assert offline_count(store) == 10
    listed = store.runs()
    assert [r.status for r in listed] == ["success"] * 5
    assert [r.kind for r in listed] == ["incremental", "backfill", "backfill"] + ["incremental"] * 2
    assert listed[0].engine == "local" and listed[0].duration_seconds is not None


def test_incremental_end_is_never_after_now(store: FeatureStore) -> None:
    far = datetime(9999, 12, 31, tzinfo=timezone.utc)
    before = datetime.now(timezone.utc)
    [result] = store.materialize_incremental(far)
    watermark = store.registry.runs(store.project).watermark("driver_stats")
    assert watermark is not None and before <= watermark <= datetime.now(timezone.utc)
    assert result.end == watermark and result.as_of == watermark


def test_first_incremental_run_takes_all_history(store: FeatureStore) -> None:
    store.materialize_incremental()
    assert offline_count(store) == 10


def test_failed_run_is_recorded_and_keeps_the_watermark(store: FeatureStore) -> None:
    store.materialize_incremental(BASE + timedelta(hours=4))
    (store.repo_path / "data" / "drivers.parquet").unlink()
    with pytest.raises(MaterializationError, match="driver_stats: .*no Parquet file") as caught:
        store.materialize_incremental(BASE + timedelta(hours=8))
    assert caught.value.results == []
    latest = store.runs()[0]
    assert latest.status == "failed" and "no Parquet file" in (latest.error or "")
    assert "nothing of it was published offline" in (latest.error or "")
    assert store.registry.runs(store.project).watermark("driver_stats") == BASE + timedelta(hours=4)
    assert offline_count(store) == 4


def test_cli_materialize_json_and_runs(store: FeatureStore) -> None:
    runner = CliRunner()
    repo = str(store.repo_path)
    result = runner.invoke(app, ["-r", repo, "materialize", "2026-01-01", "2026-01-02", "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output)
    assert summary["results"][0]["rows_written"] == 10 and summary["failures"] == {}
    result = runner.invoke(app, ["-r", repo, "materialize-incremental", "2026-01-01T04:00"])
    assert result.exit_code == 0, result.output
    assert "driver_stats" in result.output
    result = runner.invoke(app, ["-r", repo, "runs", "--json"])
    listed = json.loads(result.output)
    assert [r["status"] for r in listed] == ["success", "success"]
    result = runner.invoke(app, ["-r", repo, "materialize", "tomorrow", "2026-01-03"])
    assert result.exit_code == 1 and "not an ISO 8601 time" in result.output
    result = runner.invoke(
        app, ["-r", repo, "materialize", "2026-01-01", "2026-01-02", "-v", "nope"]
    )
    assert result.exit_code == 1 and "unknown feature view 'nope'" in result.output


def _set_owner(store: FeatureStore, run_id: int, **values: object) -> None:
    from featurehub.registry.tables import materialization_runs

    with store.registry.engine.begin() as conn:
        conn.execute(
            materialization_runs.update()
            .where(materialization_runs.c.id == run_id)
            .values(**values)
        )


def test_runs_whose_process_died_are_reported_failed(store: FeatureStore) -> None:
    import subprocess
    import sys
    from datetime import datetime, timezone

    from featurehub.registry import runs as runs_module

    runs = store.registry.runs(store.project)
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        check=True,
    )
    killed = runs.start("driver_stats", BASE, BASE + timedelta(hours=1), "local")
    _set_owner(store, killed, pid=int(dead.stdout))  # a process of this host that is gone
    silent = runs.start("driver_stats", BASE, BASE + timedelta(hours=2), "local")
    stale = datetime.now(timezone.utc) - runs_module.STALE_AFTER - timedelta(seconds=1)
    _set_owner(store, silent, host="elsewhere", pid=1, heartbeat_at=stale)  # heartbeat stopped
    alive = runs.start("driver_stats", BASE, BASE + timedelta(hours=3), "local")  # this process

    listed = {run.id: run for run in runs.list()}
    assert listed[killed].status == "failed"
    assert "abandoned" in (listed[killed].error or "")
    assert f"pid {int(dead.stdout)}" in (listed[killed].error or "")
    assert listed[silent].status == "failed"
    assert listed[alive].status == "running"
    assert runs.watermark("driver_stats") is None  # abandoned runs never move it


def test_heartbeat_keeps_a_long_run_alive(store: FeatureStore, monkeypatch) -> None:
    import time

    from featurehub.registry import runs as runs_module

    monkeypatch.setattr(runs_module, "HEARTBEAT_SECONDS", 0.05)
    runs = store.registry.runs(store.project)
    run_id = runs.start("driver_stats", BASE, BASE + timedelta(hours=1), "local")
    _set_owner(store, run_id, host="elsewhere", heartbeat_at=BASE)  # looks stale...
    with runs.heartbeat(run_id):
        time.sleep(0.5)  # ...until the owner's next beat
    [run] = [run for run in runs.list() if run.id == run_id]
    assert run.status == "running"
