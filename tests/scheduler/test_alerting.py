"""The scheduler runs the feature services' monitors and alerts: a monitor's skew check runs
once per tick under its lease and its failure reaches a real webhook on loopback; a view
whose materialization keeps failing raises `materialization_failed` (docs/alerts.md)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path

from featurehub import FeatureStore
from featurehub.scheduler.jobs import monitor_jobs, view_jobs
from featurehub.scheduler.loop import Scheduler
from tests.monitoring.listener import Listener
from tests.monitoring.test_monitors import inject_value_skew, monitored
from tests.server.conftest import DEFS, materialize
from tests.skew.test_replay import serve


def with_alerts(repo: Path, url: str, events: str) -> None:
    with (repo / "featurehub.yaml").open("a") as config:
        config.write(
            "scheduler:\n  max_attempts: 2\n  retry_wait_seconds: 0.01\n"
            "monitoring:\n  alerts:\n    backoff_seconds: 0.01\n    webhooks:\n"
            f"      - url: {url}\n        events: [{events}]\n"
        )


def test_the_scheduler_runs_a_monitor_once_per_tick_and_alerts_when_it_fails(
    tmp_path: Path,
) -> None:
    config = materialize(tmp_path / "repo")
    repo = config.repo_path
    (repo / "defs.py").write_text(monitored(DEFS, "*/5 * * * *"))
    with Listener() as hook:
        with_alerts(repo, hook.url, "skew_check_failed")
        with FeatureStore(repo) as store:
            store.apply()
            inject_value_skew(store)
        serve(config)
        at = datetime.now(timezone.utc) + timedelta(minutes=6)  # a tick after the serving
        with FeatureStore(repo) as store:
            scheduler = Scheduler(store, job_sources=(monitor_jobs,))
            [outcome] = scheduler.run_once(at)
            assert (outcome.job, outcome.status) == ("monitor:driver_service", "ran")
            assert "failed (1 alert(s))" in outcome.detail
            [again] = scheduler.run_once(at)  # that tick is checked
            assert again.status == "not_due"
            [checked] = store.skew_checks.history("driver_service")
            assert not checked.passed
        [event] = hook.wait_for(1)
        assert event["kind"] == "skew_check_failed" and event["subject"] == "driver_service"
        assert event["details"]["check_id"] == checked.id


def test_a_view_that_keeps_failing_alerts_materialization_failed(tmp_path: Path) -> None:
    config = materialize(tmp_path / "repo")
    repo = config.repo_path
    (repo / "defs.py").write_text(
        DEFS.replace("ttl=timedelta(days=2),", 'ttl=timedelta(days=2), schedule="@hourly",')
    )
    with Listener() as hook:
        with_alerts(repo, hook.url, "materialization_failed")
        with FeatureStore(repo) as store:
            store.apply()
        (repo / "data" / "drivers.parquet").unlink()  # its source is gone
        with FeatureStore(repo) as store:
            outcomes = Scheduler(store, job_sources=(view_jobs,)).run_once()
        [failed] = [o for o in outcomes if o.job == "view:driver_stats"]
        assert failed.status == "failed"
        [event] = hook.wait_for(1)
    assert event["kind"] == "materialization_failed" and event["subject"] == "driver_stats"
    assert event["details"]["attempts"] == 2
    assert "drivers.parquet" in event["details"]["error"]


def test_a_view_past_its_freshness_alerts_view_stale_once_per_episode(tmp_path: Path) -> None:
    config = materialize(tmp_path / "repo")  # driver rows up to NOW - 3 h or so
    repo = config.repo_path
    (repo / "defs.py").write_text(
        DEFS.replace(
            "ttl=timedelta(days=2),",
            'ttl=timedelta(days=2), schedule="@daily", freshness=timedelta(hours=1),',
        )
    )
    with Listener() as hook:
        with_alerts(repo, hook.url, "view_stale")
        with FeatureStore(repo) as store:
            store.apply()
            newest = store.freshness()["driver_stats"].newest_event
            assert newest is not None
            scheduler = Scheduler(store, job_sources=())  # no job: only the freshness pass
            fresh = newest + timedelta(minutes=30)
            scheduler.run_once(fresh)  # within the bound: nothing
            stale = newest + timedelta(hours=2)
            scheduler.run_once(stale)
            scheduler.run_once(stale + timedelta(minutes=5))  # the same episode: no second
            scheduler.run_once(fresh)  # fresh again ...
            scheduler.run_once(stale)  # ... then stale: a new episode
        events = hook.wait_for(2)
    assert [(e["kind"], e["subject"]) for e in events] == [("view_stale", "driver_stats")] * 2
    assert events[0]["details"]["freshness_seconds"] == 3600
    assert events[0]["details"]["staleness_seconds"] == 7200
