"""`featurehub skew` end to end: materialize, save the training set, serve over HTTP (the
deployable server, uvicorn on loopback) so the server logs, inject one skew, and run the
command: its exit code and its JSON name the feature and the cause (issue 10, "Proven, not
assumed").

One trained repo is built per module; each case works on a copy of it, so the cases share the
slow part and none sees another's skew.
"""

from __future__ import annotations

import json
import shutil
import signal
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from featurehub import FeatureStore
from featurehub.cli import app
from featurehub.offline.base import offline_schema
from tests.redis_server import free_port
from tests.repos import make_repo
from tests.server.test_shutdown import start

NOW = datetime.now(timezone.utc).replace(microsecond=0)
UPDATED = NOW - timedelta(hours=3)  # when the source's rows were computed
DRIVERS = 400  # the distribution check needs monitoring.min_rows (100 here) served values
SERVICE = "dispatch"
DATASET = "dispatch_training"
FEATURES = ("conv_rate", "trips_today", "city")
DEFS = """
from datetime import timedelta
from featurehub import Entity, FeatureService, FeatureView, Field, ParquetSource
from featurehub.types import Float64, Int64, String

driver = Entity(name="driver", join_keys=["driver_id"])
stats = FeatureView(
    name="driver_stats",
    entities=[driver],
    source=ParquetSource(path="data/drivers.parquet", created_timestamp_field="created"),
    schema=[Field("conv_rate", Float64), Field("trips_today", Int64), Field("city", String)],
    ttl=timedelta(days=2),
)
dispatch = FeatureService(name="dispatch", features=[stats])
"""
CONFIG = """project: skew_e2e
registry: sqlite:///data/registry.db
serving_log: {flush_seconds: 3600, batch_rows: 1000000}
monitoring: {min_rows: 100}
"""


def drivers(at: datetime, conv_shift: float = 0.0, rows: int = DRIVERS) -> pa.Table:
    """One row per driver at `at`; `conv_shift` moves conv_rate's distribution only."""
    ts = pa.timestamp("us", tz="UTC")
    conv = np.random.default_rng(7).normal(0.5, 0.1, rows) + conv_shift
    return pa.table(
        {
            "driver_id": pa.array(range(rows), pa.int64()),
            "event_timestamp": pa.array([at] * rows, ts),
            "created": pa.array([at] * rows, ts),
            "conv_rate": conv,
            "trips_today": pa.array([i % 7 for i in range(rows)], pa.int64()),
            "city": [("north", "south", "east")[i % 3] for i in range(rows)],
        }
    )


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A repo materialized up to now, with its training set saved: nothing served yet."""
    repo = make_repo(
        tmp_path_factory.mktemp("skew_e2e") / "trained",
        files={"defs.py": DEFS},
        data={"drivers": drivers(UPDATED)},
    )
    (repo / "featurehub.yaml").write_text(CONFIG)
    with FeatureStore(repo) as store:
        store.apply()
        store.materialize(NOW - timedelta(days=10), datetime.now(timezone.utc))
        entities = pd.DataFrame({"driver_id": range(DRIVERS), "event_timestamp": NOW})
        store.get_historical_features(entities, SERVICE).save(DATASET)
    return repo


@pytest.fixture
def repo(trained: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(trained, tmp_path / "repo"))


def serve_over_http(repo: Path, full_feature_names: bool = False) -> tuple[datetime, datetime]:
    """Every driver once, in requests of 100 rows, through the server; returns the window
    that holds what it logged (a graceful stop commits the log)."""
    began = datetime.now(timezone.utc)
    process = start(repo, port := free_port())
    try:
        for first in range(0, DRIVERS, 100):
            keys = {"driver_id": [*range(first, first + 100)]}
            body = {"feature_service": SERVICE, "entities": keys}
            body["full_feature_names"] = full_feature_names
            answer = httpx.post(f"http://127.0.0.1:{port}/v1/features", json=body, timeout=30)
            assert answer.status_code == 200, answer.text
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(60) in (0, -signal.SIGTERM)
    return began, datetime.now(timezone.utc)


def skew(repo: Path, *args: str) -> tuple[int, str, str]:
    """`featurehub -r REPO skew SERVICE ARGS...`: exit code, stdout, stderr."""
    result = CliRunner().invoke(app, ["-r", str(repo), "skew", *args])
    return result.exit_code, result.stdout, result.stderr


def check(
    repo: Path, window: tuple[datetime, datetime], against: str = DATASET
) -> tuple[int, dict[str, Any]]:
    """The whole check of what was served in `window`, against a training set, as JSON."""
    began, ended = window
    code, out, err = skew(
        repo, SERVICE, "--start", began.isoformat(), "--end", ended.isoformat(),
        "--against", against, "--json",
    )  # fmt: skip
    assert code in (0, 1), err
    return code, json.loads(out)


def replayed(report: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {f["feature"]: f for f in report["replay"]["features"]}


def compared(report: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {f["feature"]: f for f in report["distribution"]["features"]}


def causes(report: dict[str, Any]) -> dict[str, dict[str, int]]:
    """Per feature, its replay's causes that counted."""
    return {
        name: {cause: n for cause, n in feature["causes"].items() if n}
        for name, feature in replayed(report).items()
    }


def write_online(repo: Path, change: Callable[[pa.Table], pa.Table]) -> None:
    """Write `change` of the materialized rows straight into the online store, under the same
    event and created times: what a buggy writer would leave there."""
    with FeatureStore(repo) as store:
        view = store.get_feature_view("driver_stats")
        rows = pq.read_table(repo / "data" / "drivers.parquet")
        rows = change(
            rows.rename_columns(
                ["created_timestamp" if c == "created" else c for c in rows.column_names]
            )
        )
        store.online_store.write(view, rows.select(offline_schema(view).names))


def test_a_healthy_system_passes(repo: Path) -> None:
    code, report = check(repo, serve_over_http(repo))
    assert code == 0 and report["passed"] is True
    assert report["replay"]["rows"] == DRIVERS
    for name, feature in replayed(report).items():
        assert feature["rows_compared"] == DRIVERS, name
        assert feature["mismatches"] == 0 and feature["causes"]["value_skew"] == 0
    assert report["distribution"]["served_rows"] == DRIVERS
    for name, drift in compared(report).items():
        assert drift["status"] == "pass", (name, drift["reasons"])
        assert drift["null_rate_served"] == 0.0
    assert compared(report)["conv_rate"]["psi"] == pytest.approx(0.0, abs=1e-9)  # same values


def test_features_served_by_their_full_names_are_checked_too(repo: Path) -> None:
    """A service asking for `driver_stats__conv_rate`: the log holds the full names, one
    training set the short ones, another the full ones."""
    with FeatureStore(repo) as store:
        entities = pd.DataFrame({"driver_id": range(DRIVERS), "event_timestamp": NOW})
        job = store.get_historical_features(entities, SERVICE, full_feature_names=True)
        job.save("dispatch_full_names")
    window = serve_over_http(repo, full_feature_names=True)
    for against in (DATASET, "dispatch_full_names"):
        code, report = check(repo, window, against)
        assert code == 0, report
        assert all(f["mismatches"] == 0 for f in replayed(report).values())
        drifts = compared(report)
        for name, drift in drifts.items():
            assert drift["status"] == "pass" and drift["null_rate_served"] == 0.0, (name, drift)
        assert len(drifts) == len(FEATURES)


def test_materialization_stopped_is_stale(repo: Path) -> None:
    # newer rows for a tenth of the drivers reach the offline store; the online write stopped
    newer = drivers(NOW - timedelta(hours=1), conv_shift=0.01, rows=DRIVERS // 10)
    newer = newer.set_column(4, "trips_today", pc.add(newer["trips_today"], 1))
    source = pq.read_table(repo / "data" / "drivers.parquet")
    pq.write_table(pa.concat_tables([source, newer]), repo / "data" / "drivers.parquet")
    with FeatureStore(repo) as store:
        store.materialize(NOW - timedelta(days=10), datetime.now(timezone.utc), online=False)
    code, report = check(repo, serve_over_http(repo))
    assert code == 1 and report["replay"]["passed"] is False
    stale = {"stale": DRIVERS // 10}
    # a stale row whose value did not change (a driver's city) is no mismatch
    assert causes(report) == {"conv_rate": stale, "trips_today": stale, "city": {}}
    conv = replayed(report)["conv_rate"]
    assert conv["stale_rate"] == pytest.approx(0.1)
    assert conv["lag"]["min_seconds"] == conv["lag"]["max_seconds"] == 2 * 3600
    example = conv["examples"][0]
    assert example["cause"] == "stale" and example["keys"]["driver_id"] < DRIVERS // 10
    assert example["served_value"] != example["offline_value"]
    assert report["distribution"]["passed"] is True  # it served what training saw


def test_an_online_value_written_differently_is_value_skew(repo: Path) -> None:
    def wrong_conv_rate(rows: pa.Table) -> pa.Table:  # a writer that rounds to one decimal
        rows = rows.slice(0, 40)
        rounded = [round(x + 0.05, 1) for x in rows["conv_rate"].to_pylist()]
        return rows.set_column(
            rows.schema.get_field_index("conv_rate"), "conv_rate", pa.array(rounded)
        )

    write_online(repo, wrong_conv_rate)
    code, report = check(repo, serve_over_http(repo))
    assert code == 1 and report["replay"]["passed"] is False
    assert causes(report) == {"conv_rate": {"value_skew": 40}, "trips_today": {}, "city": {}}
    conv = replayed(report)["conv_rate"]
    assert conv["value_mismatches"] == 40 and conv["value_mismatch_rate"] == pytest.approx(0.1)
    assert conv["mean_absolute_difference"] > 0
    example = conv["examples"][0]
    assert example["served_event_timestamp"] == example["offline_event_timestamp"]
    assert example["served_value"] == round(example["offline_value"] + 0.05, 1)


def test_a_ttl_changed_after_serving_is_a_status_disagreement(repo: Path) -> None:
    window = serve_over_http(repo)  # served under the 2-day TTL: every value present
    (repo / "defs.py").write_text(DEFS.replace("timedelta(days=2)", "timedelta(hours=1)"))
    assert CliRunner().invoke(app, ["-r", str(repo), "apply"]).exit_code == 0
    code, report = check(repo, window)
    assert code == 1 and report["replay"]["passed"] is False
    # offline, under the new TTL, the 3-hour-old rows had expired when they were served
    assert causes(report) == {name: {"ttl_or_status": DRIVERS} for name in FEATURES}
    for feature in replayed(report).values():
        assert feature["offline_missing"] == DRIVERS and feature["served_missing"] == 0
        assert feature["examples"][0]["served_status"] == "present"
        assert feature["examples"][0]["offline_value"] is None


def test_a_ttl_shortened_before_serving_shows_in_the_null_rates(repo: Path) -> None:
    """Online and offline apply the same (current) TTL, so the replay agrees with what was
    served; the model, trained under the old TTL, now gets nulls: the distribution check
    says so."""
    (repo / "defs.py").write_text(DEFS.replace("timedelta(days=2)", "timedelta(hours=1)"))
    assert CliRunner().invoke(app, ["-r", str(repo), "apply"]).exit_code == 0
    code, report = check(repo, serve_over_http(repo))
    assert code == 1 and report["replay"]["passed"] is True
    assert all(f["mismatches"] == 0 for f in replayed(report).values())
    for name, drift in compared(report).items():
        assert drift["status"] == "fail" and drift["null_rate_shift"] == 1.0, name
        assert any(
            "null rate 100.0% served against 0.0% in training" in r for r in drift["reasons"]
        )


def test_a_source_shifted_after_training_fails_the_distribution(repo: Path) -> None:
    # new rows an hour ago: conv_rate moved up by three standard deviations, the rest is as it was
    shifted = drivers(NOW - timedelta(hours=1), conv_shift=0.3)
    source = pq.read_table(repo / "data" / "drivers.parquet")
    pq.write_table(pa.concat_tables([source, shifted]), repo / "data" / "drivers.parquet")
    with FeatureStore(repo) as store:
        store.materialize(NOW - timedelta(days=10), datetime.now(timezone.utc))
    code, report = check(repo, serve_over_http(repo))
    assert code == 1
    assert report["replay"]["passed"] is True  # online equals offline: no row-level skew
    drifts = compared(report)
    assert drifts["conv_rate"]["status"] == "fail" and drifts["conv_rate"]["psi"] > 0.25
    assert any(r.startswith("PSI") for r in drifts["conv_rate"]["reasons"])
    assert drifts["conv_rate"]["ks_pvalue"] < 1e-6
    assert drifts["trips_today"]["status"] == "pass" and drifts["trips_today"]["psi"] == 0
    assert drifts["city"]["status"] == "pass" and drifts["city"]["js_distance"] == 0
    assert report["distribution"]["features"][0]["feature"] == "conv_rate"  # failing first


def test_a_feature_null_when_served_fails_its_null_rate(repo: Path) -> None:
    def city_lost(rows: pa.Table) -> pa.Table:  # a writer that drops a quarter of the cities
        rows = rows.slice(0, DRIVERS // 4)
        index = rows.schema.get_field_index("city")
        return rows.set_column(index, "city", pa.nulls(rows.num_rows, pa.string()))

    write_online(repo, city_lost)
    code, report = check(repo, serve_over_http(repo))
    assert code == 1
    drifts = compared(report)
    assert drifts["city"]["status"] == "fail"
    assert drifts["city"]["null_rate_served"] == 0.25 and drifts["city"]["null_rate_training"] == 0
    assert "null rate 25.0% served against 0.0% in training" in drifts["city"]["reasons"][0]
    assert drifts["conv_rate"]["status"] == drifts["trips_today"]["status"] == "pass"
    # the replay: the row was there (status present, same event time) with a null value
    assert causes(report) == {"conv_rate": {}, "trips_today": {}, "city": {"value_skew": 100}}
    example = replayed(report)["city"]["examples"][0]
    assert example["served_status"] == "present" and example["served_value"] is None
    assert example["offline_value"] in ("north", "south", "east")


@pytest.fixture(scope="module")
def served(trained: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, datetime]:
    """A copy of the trained repo that served once; the end of that window."""
    repo = Path(shutil.copytree(trained, tmp_path_factory.mktemp("served") / "repo"))
    return repo, serve_over_http(repo)[1]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["nope", "--since", "1h"], "feature service 'nope'"),
        ([SERVICE, "--since", "1h", "--against", "nope"], "no dataset named 'nope'"),
        ([SERVICE, "--since", "1h", "--against", "dispatch_trainin"], "dispatch_training"),
        ([SERVICE], "give the window: --since 24h, or --start TIME [--end TIME]"),
        ([SERVICE, "--since", "1h", "--sample", "0"], "sample must be a fraction in (0, 1]"),
        # malformed options: the check did not run, which is no "skew found" (exit 1)
        ([SERVICE, "--since", "a day"], "--since 'a day' is not a duration; write e.g. 90s"),
        ([SERVICE, "--start", "yesterday"], "--start 'yesterday' is not an ISO 8601 time"),
        ([SERVICE, "--since", "1h", "--end", "now"], "--end 'now' is not an ISO 8601 time"),
    ],
)
def test_could_not_run_exits_2_and_says_what_to_do(
    served: tuple[Path, datetime], args: list[str], message: str
) -> None:
    code, out, err = skew(served[0], *args)
    assert code == 2 and out == "", (out, err)
    assert err.startswith("error: ") and message in " ".join(err.split()), err


def test_a_training_set_of_other_features_exits_2(repo: Path) -> None:
    """A dataset with a feature the service does not serve is not its model's training set:
    every value of that feature would read as null, a false alarm."""
    with FeatureStore(repo) as store:
        entities = pd.DataFrame({"driver_id": range(10), "event_timestamp": NOW})
        features = ["driver_stats:conv_rate", "driver_stats:trips_today"]
        store.get_historical_features(entities, features).save("two_features")
    services = (repo / "defs.py").read_text() + 'small = FeatureService(name="small", '
    (repo / "defs.py").write_text(services + 'features=[stats[["conv_rate"]]])\n')
    assert CliRunner().invoke(app, ["-r", str(repo), "apply"]).exit_code == 0
    code, out, err = skew(repo, "small", "--since", "1h", "--against", "two_features")
    assert code == 2 and out == "", (out, err)
    said = " ".join(err.split())
    assert "dataset 'two_features' holds driver_stats:trips_today" in said, said
    assert "feature service 'small' does not serve" in said


def test_a_folder_that_is_no_repo_exits_2(tmp_path: Path) -> None:
    code, out, err = skew(tmp_path, SERVICE, "--since", "1h")
    assert code == 2 and out == "" and err.startswith("error: ") and "featurehub.yaml" in err


def test_an_empty_window_exits_2_and_says_what_to_do(served: tuple[Path, datetime]) -> None:
    repo, ended = served
    after = ended + timedelta(seconds=1)
    for begin, end, why in (
        (after, after + timedelta(seconds=1), "no row in the window"),  # a day with a log
        (NOW - timedelta(days=5), NOW - timedelta(days=4), "no log file of those days"),
    ):
        args = ["--start", begin.isoformat(), "--end", end.isoformat(), "--against", DATASET]
        code, out, err = skew(repo, SERVICE, *args)
        assert code == 2 and out == "", (out, err)
        said = " ".join(err.split())
        assert "nothing to replay for feature service 'dispatch'" in said and why in said
        assert "widen the window" in said
