"""Per-feature thresholds (`Field(skew=...)`) on the real path, through `store.check_skew`:
a feature passes or fails where `monitoring:` alone would judge it otherwise, in the replay
and in the distribution check; and every check that ran is in `featurehub skew history`."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from typer.testing import CliRunner

from featurehub import FeatureStore
from featurehub.cli import app
from featurehub.config import load_config
from featurehub.offline.base import offline_schema
from tests.repos import make_repo
from tests.server.conftest import DEFS, NOW, materialize, tables
from tests.skew import test_distribution_check as drift
from tests.skew.test_replay import serve, window

CONV = 'Field("conv_rate", Float64)'


def redefine(repo: Path, defs: str, yaml: str = "") -> None:
    """New definitions (applied) and `monitoring:` settings for the repo."""
    (repo / "defs.py").write_text(defs)
    if yaml:
        with (repo / "featurehub.yaml").open("a") as config:
            config.write(yaml)
    with FeatureStore(repo) as store:
        store.apply()


def test_a_stricter_stale_rate_fails_one_feature_and_is_recorded(tmp_path: Path) -> None:
    config = materialize(tmp_path / "repo")
    repo = config.repo_path
    strict = 'Field("conv_rate", Float64, skew={"max_stale_rate": 0.1})'
    redefine(repo, DEFS.replace(CONV, strict), "monitoring:\n  max_stale_rate: 0.5\n")
    serve(load_config(repo))
    # Newer rows for 1001 reach the offline store only: 1 key in 4 is served stale (25 %).
    later = pa.table(
        {
            "driver_id": pa.array([1001], pa.int64()),
            "event_timestamp": pa.array([NOW - timedelta(hours=1)], pa.timestamp("us", "UTC")),
            "created": pa.array([NOW - timedelta(hours=1)], pa.timestamp("us", "UTC")),
            "conv_rate": [0.125],
            "trips_today": pa.array([6], pa.int64()),
        }
    )
    pq.write_table(pa.concat_tables([tables()["drivers"], later]), repo / "data/drivers.parquet")
    start, end = window()
    with FeatureStore(repo) as store:
        store.materialize(NOW - timedelta(days=10), NOW + timedelta(hours=1), online=False)
        report = store.check_skew("driver_service", start=start, end=end)
        conv, trips = report.replay.feature("conv_rate"), report.replay.feature("trips_today")
        assert conv.causes["stale"] == trips.causes["stale"] == 3  # the same rows, ...
        assert not conv.passed and trips.passed  # ... judged by 0.1 and by monitoring's 0.5
        assert not report.passed
        judged = {f["feature"]: f for f in report.to_dict()["replay"]["features"]}
        assert judged["conv_rate"]["thresholds"]["max_stale_rate"] == 0.1
        assert judged["trips_today"]["thresholds"]["max_stale_rate"] == 0.5
        assert judged["conv_rate"]["failures"] == [
            "stale 3 of 12 rows (25.00%) > max_stale_rate 0.1"
        ]
        latest = store.skew_checks.latest("driver_service")
        assert latest is not None and latest.passed is False and latest.rows_served == 12
        assert [(f.feature, f.check) for f in latest.failed_features] == [
            ("driver_stats:conv_rate", "replay")
        ]
        assert latest.result == json.loads(json.dumps(report.to_dict(), default=str))
        assert (latest.window_start, latest.window_end, latest.dataset) == (start, end, None)

    runner = CliRunner()
    base = ["-r", str(repo), "skew"]
    span = ["--start", start.isoformat(), "--end", end.isoformat()]
    checked = runner.invoke(app, [*base, "driver_service", *span])  # the check, by default
    assert checked.exit_code == 1, checked.output
    explicit = runner.invoke(app, [*base, "check", "driver_service", *span, "--json"])
    assert explicit.exit_code == 1 and json.loads(explicit.output)["passed"] is False
    past = [
        "--start",
        (NOW - timedelta(days=3)).isoformat(),
        "--end",
        (NOW - timedelta(days=2)).isoformat(),
    ]
    nothing = runner.invoke(app, [*base, "driver_service", *past])
    assert nothing.exit_code == 2 and "nothing to replay" in nothing.output  # records nothing
    history = runner.invoke(app, [*base, "history", "driver_service", "--json"])
    assert history.exit_code == 0, history.output
    records = json.loads(history.output)
    assert len(records) == 3 and records[0]["id"] > records[1]["id"] > records[2]["id"]
    assert records[0]["failed_features"][0]["figure"].startswith("stale 3 of 12 rows")
    table = runner.invoke(app, [*base, "history", "driver_service", "--limit", "2"])
    assert table.exit_code == 0, table.output
    text = " ".join(table.output.split())
    assert "skew checks of driver_service, newest first" in text
    assert "max_stale_rate 0.1" in text and text.count("(replay):") == 2  # --limit 2
    assert text.count("driver_stats:conv_rate") == 2
    unknown = runner.invoke(app, [*base, "history", "driver_servic"])
    assert unknown.exit_code == 2
    assert "no feature service named 'driver_servic'" in " ".join(unknown.output.split())
    empty = runner.invoke(app, [*base, "history", "dispatch"])
    assert empty.exit_code == 0 and "no skew check of dispatch recorded yet" in empty.output
    helped = runner.invoke(app, [*base, "--help"])
    assert helped.exit_code == 0
    assert "featurehub skew history SERVICE" in helped.output and "check" in helped.output


def test_a_looser_value_skew_rate_passes_one_feature(tmp_path: Path) -> None:
    config = materialize(tmp_path / "repo")
    repo = config.repo_path
    loose = 'Field("conv_rate", Float64, skew={"max_value_skew_rate": 0.3})'
    redefine(repo, DEFS.replace(CONV, loose))
    with FeatureStore(repo) as store:
        view = store.get_feature_view("driver_stats")
        row = tables()["drivers"].slice(0, 1)  # driver 1001, same timestamps, another value
        wrong = pa.table(
            {
                "driver_id": row["driver_id"],
                "event_timestamp": row["event_timestamp"],
                "created_timestamp": row["created"],
                "conv_rate": [0.9],
                "trips_today": row["trips_today"],
            }
        )
        store.online_store.write(view, wrong.select(offline_schema(view).names))
    serve(load_config(repo), requests=2)
    with FeatureStore(repo) as store:
        report = store.check_skew("driver_service", since=timedelta(hours=1))
        conv = report.replay.feature("conv_rate")
        assert conv.causes["value_skew"] == 2 and conv.rate(2) == 0.25
        assert conv.passed and report.passed  # 25 % allowed; monitoring: allows none
        redefine(repo, DEFS)
        assert not store.check_skew("driver_service", since=timedelta(hours=1)).passed
        assert [c.passed for c in store.skew_checks.history("driver_service")] == [False, True]


def test_distribution_thresholds_per_feature(tmp_path: Path) -> None:
    """A small shift of conv_rate (PSI between warn 0.1 and fail 0.25) fails under its own
    psi_fail 0.1; renamed cities (Jensen-Shannon 0.82) pass under their own js_fail 0.9."""
    now = datetime.now(timezone.utc)
    defs = drift.DEFS.replace(CONV, 'Field("conv_rate", Float64, skew={"psi_fail": 0.1})')
    defs = defs.replace(
        'Field("city", String)', 'Field("city", String, skew={"js_warn": 0.5, "js_fail": 0.9})'
    )
    repo = make_repo(
        tmp_path / "repo",
        files={"defs.py": drift.DEFS},
        data={"drivers": drift.source(now - timedelta(hours=2), 0.0, seed=1)},
    )
    with (repo / "featurehub.yaml").open("a") as config:
        config.write("monitoring:\n  min_rows: 200\n")
    with FeatureStore(repo) as store:
        store.apply()
        store.materialize_incremental()
        entities = pd.DataFrame({"driver_id": range(drift.DRIVERS), "event_timestamp": now})
        store.get_historical_features(entities, "dispatch").save("dispatch_training")
        shifted = drift.source(now - timedelta(hours=1), 0.04, seed=2)
        table = pa.concat_tables([pq.read_table(repo / "data" / "drivers.parquet"), shifted])
        pq.write_table(table, repo / "data" / "drivers.parquet")
        store.materialize(now - timedelta(days=1), datetime.now(timezone.utc))
        start = datetime.now(timezone.utc)
        drift.serve(store)
    end = datetime.now(timezone.utc)
    with FeatureStore(repo) as store:  # the log of the first store is committed (closed)
        default = store.check_skew("dispatch", against="dispatch_training", start=start, end=end)
        judged = {d.feature: d for d in default.distribution.features}  # type: ignore[union-attr]
        assert 0.1 < (judged["conv_rate"].psi or 0) < 0.25
        assert (judged["conv_rate"].status, judged["city"].status) == ("warn", "fail")
        assert default.replay.passed
        redefine(repo, defs)
        own = store.check_skew("dispatch", against="dispatch_training", start=start, end=end)
        assert own.distribution is not None
        judged = {d.feature: d for d in own.distribution.features}
        assert (judged["conv_rate"].status, judged["city"].status) == ("fail", "warn")
        assert judged["active"].status == "pass"
        assert judged["conv_rate"].thresholds == {
            "psi_warn": 0.1,
            "psi_fail": 0.1,  # the feature's own; warn moved down with it
            "null_rate_shift_fail": 0.1,
            "min_rows": 200,
        }
        assert judged["city"].to_dict()["thresholds"]["js_fail"] == 0.9
        latest = store.skew_checks.latest("dispatch")
        assert latest is not None and latest.dataset == "dispatch_training"
        assert [(f.feature, f.check) for f in latest.failed_features] == [
            ("driver_stats:conv_rate", "distribution")
        ]
        assert "PSI" in latest.failed_features[0].figure
