"""A run is visible offline exactly when it is recorded a success, and its record is true.

An unreachable online store fails the run and publishes nothing offline; a process killed at
any step of the protocol leaves either nothing published (and says so) or the whole run; the
next run completes it. An online store that lost its data is noticed and rebuilt from the
offline store.
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from datetime import datetime, timedelta
from pathlib import Path

import duckdb
import pytest
from typer.testing import CliRunner

from featurehub import FeatureStore
from featurehub.cli import app
from featurehub.engines.runner import MaterializationError
from tests.redis_server import RedisServer
from tests.repos import BASE, DRIVER_DEFS, make_repo

ROOT = Path(__file__).parents[2]
END = BASE + timedelta(hours=6)


def offline_count(store: FeatureStore) -> int:
    relation = store.offline_store.relation(store.get_feature_view("driver_stats"))
    if relation is None:
        return 0
    return duckdb.sql(f"SELECT count(*) FROM {relation}").fetchall()[0][0]


def online_events(store: FeatureStore) -> list[datetime | None]:
    view = store.get_feature_view("driver_stats")
    rows = store.online_store.read(view, [(1000,), (1001,), (1002,)], ["conv_rate"])
    return [None if row is None else row.event_timestamp for row in rows]


def repo_with_online(tmp_path: Path, online_url: str) -> Path:
    # The data is from BASE, long ago: a freshness bound of a century keeps `status` about
    # the online store here (tests/scheduler/test_freshness.py checks staleness).
    defs = DRIVER_DEFS.replace(
        'schedule="@hourly"', 'schedule="@hourly", freshness=timedelta(days=36500)'
    )
    repo = make_repo(
        tmp_path / "repo", files={"defs.py": defs}, project=f"publish_{uuid.uuid4().hex[:10]}"
    )
    with (repo / "featurehub.yaml").open("a") as config:
        config.write(f"online_store:\n  url: {online_url}\n  timeout_seconds: 0.2\n")
    return repo


@pytest.fixture(params=["sqlite", "redis"])
def online_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'online.db'}"
    return str(request.getfixturevalue("redis_url"))


def test_an_unreachable_online_store_publishes_nothing_offline(tmp_path: Path) -> None:
    repo = repo_with_online(tmp_path, "redis://127.0.0.1:1/0")  # nothing listens there
    with FeatureStore(repo) as store:
        store.apply()
        with pytest.raises(MaterializationError, match="unavailable") as caught:
            store.materialize_incremental(END)
        assert caught.value.results == []
        assert offline_count(store) == 0  # training cannot read what serving does not have
        [run] = store.runs()
        assert run.status == "failed"
        assert "nothing of it was published offline" in (run.error or "")
        assert store.registry.runs(store.project).watermark("driver_stats") is None
        assert not list((store.offline_store.root).rglob("*.parquet"))  # staging removed
        # Who means it can write the offline store alone; the run says so.
        [result] = store.materialize(BASE, END, online=False)
        assert (result.rows_written, result.online_rows_written) == (6, 0)
        assert offline_count(store) == 6
        assert store.runs()[0].targets == "offline"


def run_cli(repo: Path, *args: str, kill_at: str | None = None) -> subprocess.CompletedProcess:
    env = {key: value for key, value in os.environ.items() if key != "FEATUREHUB_KILL_AT"}
    if kill_at:
        env["FEATUREHUB_KILL_AT"] = kill_at
    return subprocess.run(
        [sys.executable, "-m", "featurehub", "-r", str(repo), *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.parametrize("kill_at", ["online_written", "sealed", "published"])
def test_a_kill_at_any_step_leaves_a_true_record(
    tmp_path: Path, online_url: str, kill_at: str
) -> None:
    repo = repo_with_online(tmp_path, online_url)
    with FeatureStore(repo) as store:
        store.apply()
        store.materialize_incremental(BASE + timedelta(hours=3))
        assert offline_count(store) == 3
        killed = run_cli(repo, "materialize-incremental", END.isoformat(), kill_at=kill_at)
        assert killed.returncode == -9, killed.stderr
        [run, _] = store.runs()  # the killed run is seen abandoned: its pid is gone
        runs = store.registry.runs(store.project)
        if kill_at == "published":
            assert run.status == "success" and offline_count(store) == 6
            assert runs.watermark("driver_stats") == END
        else:
            assert run.status == "failed" and "abandoned" in (run.error or "")
            assert "nothing of it was published offline" in (run.error or "")
            assert offline_count(store) == 3
            assert runs.watermark("driver_stats") == BASE + timedelta(hours=3)
            # The online store is ahead (it took the run's rows), never behind.
            assert online_events(store) == [BASE + timedelta(hours=h) for h in (3, 4, 5)]
        done = run_cli(repo, "materialize-incremental", END.isoformat())
        assert done.returncode == 0, done.stderr
        assert offline_count(store) == 6  # completed, nothing twice
        assert online_events(store) == [BASE + timedelta(hours=h) for h in (3, 4, 5)]
        assert runs.watermark("driver_stats") == END


def test_an_online_store_that_lost_its_data_is_noticed_and_rebuilt(tmp_path: Path) -> None:
    with RedisServer() as server:
        repo = repo_with_online(tmp_path, server.url)
        with FeatureStore(repo) as store:
            store.apply()
            store.materialize(BASE, END)
            assert store.lost_online_views() == {}
            before = online_events(store)
            server.stop()
            server.start()  # no persistence: it comes back empty
            lost = store.lost_online_views()
            assert list(lost) == ["driver_stats"]
            assert (
                "featurehub materialize --online-only --views driver_stats" in lost["driver_stats"]
            )
            assert online_events(store) == [None, None, None]
            # Incremental runs would not bring it back: nothing new arrived.
            result = CliRunner().invoke(app, ["-r", str(repo), "status"])
            assert result.exit_code == 1 and "lost" in result.output
            result = CliRunner().invoke(app, ["-r", str(repo), "materialize", "--online-only"])
            assert result.exit_code == 0, result.output
            assert online_events(store) == before
            assert store.lost_online_views() == {}
            rebuild = store.runs()[0]
            assert (rebuild.kind, rebuild.targets, rebuild.online_rows_written) == (
                "online_rebuild",
                "online",
                3,
            )
            result = CliRunner().invoke(app, ["-r", str(repo), "status", "--json"])
            assert result.exit_code == 0, result.output
            # The rebuild moved no watermark and read no source.
            assert store.registry.runs(store.project).watermark("driver_stats") is None


def test_online_only_takes_no_interval(tmp_path: Path) -> None:
    repo = repo_with_online(tmp_path, f"sqlite:///{tmp_path / 'online.db'}")
    runner = CliRunner()
    runner.invoke(app, ["-r", str(repo), "apply"])
    result = runner.invoke(
        app, ["-r", str(repo), "materialize", "2026-01-01", "2026-01-02", "--online-only"]
    )
    assert result.exit_code == 1 and "drop START and END" in result.output
    result = runner.invoke(app, ["-r", str(repo), "materialize", "--offline-only", "--online-only"])
    assert result.exit_code == 1 and "exclude each other" in result.output
    result = runner.invoke(app, ["-r", str(repo), "materialize"])
    assert result.exit_code == 1 and "needs START and END" in result.output


def test_a_run_declared_abandoned_while_it_ran_publishes_nothing(tmp_path: Path) -> None:
    repo = repo_with_online(tmp_path, f"sqlite:///{tmp_path / 'online.db'}")
    with FeatureStore(repo) as store:
        store.apply()
        runs = store.registry.runs(store.project)
        run_id = runs.start("driver_stats", BASE, END, "local")
        runs.fail(run_id, "abandoned: test")
        from featurehub.registry.runs import RunNotRunning

        with pytest.raises(RunNotRunning, match="nothing of it was published"):
            runs.succeed(run_id, 1, 1, 0)
        assert [r.status for r in store.runs()] == ["failed"]


def test_status_says_when_an_offline_only_run_left_the_online_store_behind(
    tmp_path: Path,
) -> None:
    repo = repo_with_online(tmp_path, f"sqlite:///{tmp_path / 'online.db'}")
    runner = CliRunner()
    with FeatureStore(repo) as store:
        store.apply()
        store.materialize(BASE, BASE + timedelta(hours=3))
        assert runner.invoke(app, ["-r", str(repo), "status"]).exit_code == 0
        store.materialize(BASE, END, online=False)
        [status] = store.status()
        assert status.online == "behind" and "--online-only" in (status.problem or "")
        result = runner.invoke(app, ["-r", str(repo), "status"])
        assert result.exit_code == 1 and "behind" in result.output
        store.rebuild_online()
        [status] = store.status()
        assert (status.online, status.problem) == ("ok", None)
        assert online_events(store) == [BASE + timedelta(hours=h) for h in (3, 4, 5)]


def test_what_a_failed_run_left_behind_is_said_by_the_stores_it_targets() -> None:
    from featurehub.registry.runs import not_published

    assert "the online store may already hold" in not_published("offline+online")
    assert "it writes nothing online" in not_published("offline")
    assert "writes only the online store" in not_published("online")
    assert all("Re-run it" in not_published(t) for t in ("offline+online", "offline", "online"))
