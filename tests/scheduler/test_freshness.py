"""Freshness: staleness is now minus the newest materialized event (checked against the
offline rows themselves), the bound is FeatureView(freshness=...) or twice the schedule's
interval, `featurehub status` puts failing then stale views first and exits 1; a view that
keeps failing is retried up to max_attempts, then left until its next tick."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from pathlib import Path

import duckdb
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from featurehub import FeatureStore
from featurehub.cli import app
from featurehub.scheduler.loop import JobOutcome, Scheduler
from tests.repos import make_repo
from tests.scheduler.schedulers import HEADER, arrivals, this_hour

DEFS = (
    HEADER
    + """
from datetime import timedelta

broken_source = ParquetSource(path="data/other.parquet", created_timestamp_field="created")
features = [Field("conv_rate", Float64), Field("trips_today", Int64)]
fresh = FeatureView(
    name="fresh", entities=[driver], source=source, schema=features, schedule="@hourly"
)
strict = FeatureView(
    name="strict", entities=[driver], source=source, schema=features, schedule="@hourly",
    freshness=timedelta(seconds=1),
)
unscheduled = FeatureView(name="unscheduled", entities=[driver], source=source, schema=features)
never = FeatureView(
    name="never", entities=[driver], source=source, schema=features, schedule="@daily"
)
broken = FeatureView(
    name="broken", entities=[driver], source=broken_source, schema=features, schedule="@hourly"
)
"""
)


@pytest.fixture
def repo(tmp_path: Path, registry_url: str) -> Path:
    data = arrivals(hours=12)
    path = make_repo(
        tmp_path / "repo",
        files={"defs.py": DEFS},
        data={"drivers": data, "other": data},
        registry=registry_url,
    )
    with (path / "featurehub.yaml").open("a") as config:
        config.write(
            f"online_store: sqlite:///{tmp_path / 'online.db'}\n"
            "scheduler:\n  max_attempts: 2\n  retry_wait_seconds: 0.01\n"
        )
    return path


def test_status_reports_freshness_failing_and_stale_first(repo: Path) -> None:
    store = FeatureStore(repo)
    store.apply()
    (repo / "data" / "other.parquet").unlink()  # `broken` cannot read its source any more
    scheduler = Scheduler(store)
    now = this_hour() + timedelta(minutes=10)
    outcomes = {o.job: o for o in scheduler.run_once(now)}  # every scheduled view: never ran
    assert outcomes["view:broken"].status == "failed"
    assert {outcomes[f"view:{name}"].status for name in ("fresh", "strict", "never")} == {"ran"}
    store.materialize_incremental(now, ["unscheduled"])
    statuses = {s.view: s for s in store.status(now)}

    newest = {}
    for name in ("fresh", "strict", "never", "unscheduled"):
        relation = store.offline_store.relation(store.get_feature_view(name))
        [(newest[name],)] = duckdb.sql(f"SELECT max(event_timestamp) FROM {relation}").fetchall()
        assert statuses[name].newest_event == newest[name]  # the oracle: the rows themselves
        assert statuses[name].staleness_seconds == (now - newest[name]).total_seconds()
        assert statuses[name].last_success_at is not None
    assert statuses["fresh"].freshness_seconds == 2 * 3600  # twice @hourly
    assert statuses["never"].freshness_seconds == 2 * 86400  # twice @daily
    assert statuses["strict"].freshness_seconds == 1
    assert statuses["unscheduled"].freshness_seconds is None
    assert sorted(name for name, s in statuses.items() if s.stale) == ["broken", "strict"]
    assert statuses["broken"].failing and statuses["broken"].staleness_seconds is None
    assert [s.view for s in store.status(now)] == [
        "broken",  # failing
        "strict",  # stale
        "fresh",
        "never",
        "unscheduled",
    ]
    result = CliRunner().invoke(app, ["-r", str(repo), "status", "--json"])
    assert result.exit_code == 1, result.output
    listed = {item["view"]: item for item in json.loads(result.output)}
    assert listed["strict"]["stale"] is True
    assert listed["strict"]["problem"].startswith("stale: newest event")
    assert listed["broken"]["failing"] is True
    result = CliRunner().invoke(app, ["-r", str(repo), "status"])
    assert result.exit_code == 1 and "stale" in result.output and "broken" in result.output
    store.close()


def test_a_view_with_a_bound_and_nothing_materialized_is_stale(repo: Path) -> None:
    store = FeatureStore(repo)
    store.apply()
    statuses = {s.view: s for s in store.status()}
    assert statuses["fresh"].stale and statuses["fresh"].staleness_seconds is None
    assert "nothing materialized" in (statuses["fresh"].problem or "")
    assert not statuses["unscheduled"].stale
    store.close()


def test_a_failing_view_is_retried_then_left_until_its_next_tick(repo: Path) -> None:
    store = FeatureStore(repo)
    store.apply()
    (repo / "data" / "other.parquet").unlink()
    scheduler = Scheduler(store)
    at = this_hour() + timedelta(minutes=10)

    def broken_runs() -> list[str]:
        return [run.status for run in store.runs("broken", 100)]

    def broken_outcome(now: datetime) -> JobOutcome:
        [outcome] = [o for o in scheduler.run_once(now) if o.job == "view:broken"]
        return outcome

    outcome = broken_outcome(at)
    assert outcome.status == "failed" and "broken" in outcome.detail
    assert broken_runs() == ["failed", "failed"]  # max_attempts: 2
    assert scheduler.failing["view:broken"]
    outcome = broken_outcome(at + timedelta(minutes=20))
    assert outcome.status == "failing" and broken_runs() == ["failed", "failed"]
    data = pq.read_table(repo / "data" / "drivers.parquet")
    pq.write_table(data, repo / "data" / "other.parquet")  # fixed before its next tick
    outcome = broken_outcome(at + timedelta(hours=1))
    assert outcome.status == "ran" and broken_runs() == ["success", "failed", "failed"]
    assert "view:broken" not in scheduler.failing
    (repo / "data" / "other.parquet").unlink()
    later = (at + timedelta(hours=2)).isoformat()
    result = CliRunner().invoke(app, ["-r", str(repo), "schedule", "--once", "--at", later])
    assert result.exit_code == 1 and "view:broken: failed" in result.output
    store.close()
