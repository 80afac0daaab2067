"""Replay: logged serving rows through the offline join, against a brute-force comparison
(hypothesis) and on the real path (materialize, serve over HTTP, log, replay) with injected
skews caught under the right cause."""

from __future__ import annotations

import hashlib
import json
import math
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from featurehub import FeatureStore, types
from featurehub.config import MonitoringConfig, RepoConfig, ServerConfig
from featurehub.errors import FeaturehubError
from featurehub.monitoring import LogWriter, ServedAnswer
from featurehub.monitoring.log_format import TIMESTAMP
from featurehub.offline.base import offline_schema
from featurehub.offline.connection import duckdb_connection
from featurehub.offline.pit import ViewQuery
from featurehub.server import create_app
from featurehub.skew.replay import ReplayError, replay, replay_log
from featurehub.skew.replay_result import STALE, TTL_OR_STATUS, UNEXPLAINED, VALUE_SKEW
from featurehub.skew.served_rows import ServedFeature
from tests.offline.oracle import OracleView, winner
from tests.server.conftest import DEFS, NOW, materialize, tables

DRIVERS = [1001, 1002, 1003, 1004]  # fresh, fresh, expired (3 days old, TTL 2 days), unknown


def serve(config: RepoConfig, requests: int = 3, drivers: list[int] = DRIVERS) -> None:
    """Serve `requests` requests of driver_service over HTTP; the log is flushed on exit."""
    with FeatureStore(config=config) as store:
        app = create_app(store, ServerConfig())  # the log goes to config.serving_log_root
        with TestClient(app) as client:
            for _ in range(requests):
                answer = client.post(
                    "/v1/features",
                    json={"feature_service": "driver_service", "entities": {"driver_id": drivers}},
                )
                assert answer.status_code == 200, answer.text


def window() -> tuple[datetime, datetime]:
    now = datetime.now(timezone.utc)
    return now - timedelta(hours=1), now + timedelta(minutes=1)


def replay_of(config: RepoConfig, **options: Any) -> Any:
    with FeatureStore(config=config) as store:
        return replay(store, "driver_service", *window(), **options)


def test_a_healthy_system_replays_without_mismatch(tmp_path: Path) -> None:
    config = materialize(tmp_path / "repo")
    serve(config)
    result = replay_of(config)
    assert result.rows == 3 * len(DRIVERS)
    assert result.passed
    assert [f.name for f in result.features] == [
        "driver_stats:conv_rate",
        "driver_stats:trips_today",
    ]
    for feature in result.features:
        assert feature.rows_compared == result.rows
        assert feature.mismatches == 0
        assert feature.examples == ()
    assert result.feature("conv_rate").mean_absolute_difference == 0.0
    frame = result.to_pandas()
    assert list(frame["name"]) == ["driver_stats:conv_rate", "driver_stats:trips_today"]
    assert result.to_dict()["passed"] is True


def test_two_views_string_keys_and_full_feature_names(tmp_path: Path) -> None:
    """dispatch: driver_stats (integer key) and zone_stats (string key, 1 hour TTL), asked
    for with and without full feature names."""
    config = materialize(tmp_path / "repo")
    with FeatureStore(config=config) as store:
        app = create_app(store, ServerConfig())  # the log goes to config.serving_log_root
        with TestClient(app) as client:
            for full in (False, True):
                body = {
                    "feature_service": "dispatch",
                    "entities": {"driver_id": [1001, 1003, 1004], "zone": ["a", "b", "c"]},
                    "full_feature_names": full,
                }
                assert client.post("/v1/features", json=body).status_code == 200
    with FeatureStore(config=config) as store:
        result = replay(store, "dispatch", *window())
    assert result.rows == 6
    assert [f.name for f in result.features] == [
        "driver_stats:conv_rate",
        "zone_stats:demand",
        "zone_stats:label",
    ]
    assert all(f.rows_compared == 6 and f.mismatches == 0 for f in result.features)
    assert result.passed
    assert result.feature("label").mean_absolute_difference is None  # not a number


def test_materialization_stopped_is_stale(tmp_path: Path) -> None:
    config = materialize(tmp_path / "repo")
    serve(config)
    # newer rows arrived before serving, but only the offline store got them
    newer = tables()["drivers"]
    ts = pa.timestamp("us", tz="UTC")
    later = pa.table(
        {
            "driver_id": pa.array([1001], pa.int64()),
            "event_timestamp": pa.array([NOW - timedelta(hours=1)], ts),
            "created": pa.array([NOW - timedelta(hours=1)], ts),
            "conv_rate": [0.125],
            "trips_today": pa.array([6], pa.int64()),
        }
    )
    pq.write_table(pa.concat_tables([newer, later]), config.repo_path / "data/drivers.parquet")
    with FeatureStore(config=config) as store:
        store.materialize(NOW - timedelta(days=10), NOW + timedelta(hours=1), online=False)
    result = replay_of(config)
    assert not result.passed  # 1 key in 4 is stale: above the default 1 %
    for feature in result.features:
        assert feature.causes == {STALE: 3, VALUE_SKEW: 0, TTL_OR_STATUS: 0, "unexplained": 0}
        assert feature.value_mismatches == 3
        assert feature.lag is not None
        assert feature.lag.min_seconds == feature.lag.max_seconds == 2 * 3600
        example = feature.examples[0]
        assert example.keys == {"driver_id": 1001}
        assert example.offline_event_timestamp == NOW - timedelta(hours=1)
        assert example.served_event_timestamp == NOW - timedelta(hours=3)
    assert result.feature("conv_rate").examples[0].offline_value == 0.125
    assert result.feature("conv_rate").examples[0].served_value == 0.5
    assert replay_of(config, monitoring=MonitoringConfig(max_stale_rate=0.25)).passed


def test_an_online_value_written_differently_is_value_skew(tmp_path: Path) -> None:
    config = materialize(tmp_path / "repo")
    with FeatureStore(config=config) as store:
        view = store.get_feature_view("driver_stats")
        row = tables()["drivers"].slice(0, 1)  # driver 1001, same timestamps
        wrong = pa.table(
            {
                "driver_id": row["driver_id"],
                "event_timestamp": row["event_timestamp"],
                "created_timestamp": row["created"],
                "conv_rate": [0.9],  # offline holds 0.5
                "trips_today": row["trips_today"],
            }
        )
        store.online_store.write(view, wrong.select(offline_schema(view).names))
    serve(config, requests=2)
    result = replay_of(config)
    assert not result.passed
    conv = result.feature("conv_rate")
    assert conv.causes[VALUE_SKEW] == 2
    assert conv.value_mismatches == 2 and conv.mismatches == 2
    assert conv.mean_absolute_difference == pytest.approx(0.4 * 2 / 4)  # 1001 and 1002, twice
    assert conv.examples[0].served_value == 0.9 and conv.examples[0].offline_value == 0.5
    assert result.feature("trips_today").mismatches == 0


def test_a_changed_ttl_is_a_status_disagreement(tmp_path: Path) -> None:
    config = materialize(tmp_path / "repo")
    serve(config, requests=1)
    shorter = DEFS.replace("ttl=timedelta(days=2)", "ttl=timedelta(hours=1)")
    (config.repo_path / "defs.py").write_text(shorter)
    with FeatureStore(config=config) as store:
        store.apply()
    result = replay_of(config)
    assert not result.passed
    for feature in result.features:
        # 1001 and 1002 (3 hours old) were served; offline they are now expired
        assert feature.offline_missing == 2
        assert feature.causes[TTL_OR_STATUS] == 2
        assert {e.keys["driver_id"] for e in feature.examples} == {1001, 1002}


def test_a_sample_keeps_whole_keys_the_same_in_every_run(tmp_path: Path) -> None:
    config = materialize(tmp_path / "repo")
    serve(config, requests=4, drivers=list(range(1000, 1040)))
    with FeatureStore(config=config) as store:
        first = replay(store, "driver_service", *window(), sample=0.5)
        start, end = first.start, first.end
    with FeatureStore(config=config) as store:  # another store: nothing is cached
        assert replay(store, "driver_service", start, end, sample=0.5) == first
    assert 0 < first.rows < 160 and first.rows % 4 == 0  # whole keys: all 4 rows of each


def test_no_logged_rows_says_what_to_do(tmp_path: Path) -> None:
    config = materialize(tmp_path / "repo")
    with FeatureStore(config=config) as store, pytest.raises(ReplayError, match="widen"):
        replay(store, "driver_service", *window())
    serve(config, requests=1)
    with FeatureStore(config=config) as store:
        with pytest.raises(ReplayError, match="nothing to replay"):
            replay(store, "driver_service", NOW - timedelta(days=3), NOW - timedelta(days=2))
        with pytest.raises(ReplayError, match="no row kept by sample=1e-12"):
            replay(store, "driver_service", *window(), sample=1e-12)
        with pytest.raises(FeaturehubError, match="sample"):
            replay(store, "driver_service", *window(), sample=0)


# -- the computation against a brute-force comparison in plain Python -----------------------

BASE = datetime(2026, 3, 1, 22, tzinfo=timezone.utc)  # the hours cross midnight: two partitions
FEATURES = {"x": types.Float64, "n": types.Int64, "s": types.String, "b": types.Bool}
VALUES: dict[str, list[Any]] = {
    "x": [None, 0.0, 0.5, -1.25, 3.0, math.nan, math.inf, -math.inf],
    "n": [None, 0, 1, 2, -7],
    "s": [None, "", "a", "b"],
    "b": [None, True, False],
}
TOLERANCE = 1e-9


def hour(i: int) -> datetime:
    return BASE + timedelta(hours=i)


@st.composite
def view_rows(draw: st.DrawFn) -> list[dict[str, Any]]:
    rows = []
    for _ in range(draw(st.integers(0, 10))):
        event = draw(st.integers(0, 5))
        row = {
            "k": draw(st.integers(1, 3)),
            "event_timestamp": hour(event),
            "created_timestamp": hour(event)
            + timedelta(minutes=draw(st.sampled_from([0, 30, 90]))),
        }
        row.update({name: draw(st.sampled_from(VALUES[name])) for name in FEATURES})
        rows.append(row)
    return rows


@st.composite
def log_rows(draw: st.DrawFn, view: OracleView) -> list[dict[str, Any]]:
    """Logged rows: some serve what the offline join picks (perhaps nudged within or beyond
    the tolerance), the others anything at all."""
    rows = []
    for i in range(draw(st.integers(1, 14))):
        served_at = hour(0) + timedelta(minutes=draw(st.integers(0, 7 * 60)))
        key = draw(st.integers(1, 4))
        truth = winner({"k": key, "t": served_at}, view, "t", True)
        full = draw(st.booleans())  # the request asked for full feature names
        values, statuses, events = {}, {}, {}
        mode = draw(st.sampled_from(["truth", "nudge", "random"]))
        # the features of a view share their status and event time, as the look-up gives them
        any_status = draw(st.sampled_from(["present", "not_found", "expired"]))
        any_event = draw(st.sampled_from([None, *(hour(e) for e in range(6))]))
        for name in FEATURES:
            logged = f"v__{name}" if full else name
            if mode != "random":
                value = None if truth is None else truth[name]
                status = "not_found" if truth is None else "present"
                event = None if truth is None else truth["event_timestamp"]
                if mode == "nudge" and name == "x" and isinstance(value, float):
                    value *= 1 + draw(st.sampled_from([1e-12, -1e-12, 1e-6]))
            else:
                value = draw(st.sampled_from(VALUES[name]))
                status, event = any_status, any_event
            if isinstance(value, float) and not math.isfinite(value):
                value = None  # JSON has no NaN nor infinity: the writer logs null
            values[logged], statuses[logged], events[logged] = value, status, event
        rows.append(
            {
                "request_id": f"r{i:03d}",
                "row": 0,
                "served_at": served_at,
                "k": key,
                "values": values,
                "statuses": statuses,
                "events": events,
            }
        )
    return rows


def dumps(value: Any) -> str:
    return orjson.dumps(value, option=orjson.OPT_UTC_Z).decode()


def write_log(
    root: Path, rows: list[dict[str, Any]], formats: tuple[int, ...] = (2,)
) -> list[Path]:
    """The rows as the log's Parquet files, one per day, the days in `formats` in turn:
    format 2 through the real writer (each row a request of one entity row), format 1 as it
    was written (JSON text), with an extra column a later writer might add."""
    files = []
    for number, day in enumerate(sorted({row["served_at"].date() for row in rows})):
        part = [row for row in rows if row["served_at"].date() == day]
        if formats[number % len(formats)] == 2:
            files += LogWriter(root).commit([logged_answer(row) for row in part])
            continue
        table = pa.table(
            {
                "request_id": [row["request_id"] for row in part],
                "row": pa.array([row["row"] for row in part], pa.int32()),
                "served_at": pa.array([row["served_at"] for row in part], TIMESTAMP),
                "model_version": pa.nulls(len(part), pa.string()),
                "entity_keys": [dumps({"k": row["k"]}) for row in part],
                "feature_values": [dumps(row["values"]) for row in part],
                "statuses": [dumps(row["statuses"]) for row in part],
                "event_timestamps": [dumps(row["events"]) for row in part],
                "source": ["sdk"] * len(part),
            }
        )
        folder = root / "feature_service=svc" / f"date={day.isoformat()}"
        folder.mkdir(parents=True, exist_ok=True)
        pq.write_table(table, folder / "part-0.parquet")
        files.append(folder / "part-0.parquet")
    return files


def logged_answer(row: dict[str, Any]) -> ServedAnswer:
    """A logged row as the answer the server hands its log: one entity row."""
    features = {
        name: {
            "values": [value],
            "statuses": [row["statuses"][name]],
            "event_timestamps": [row["events"][name]],
        }
        for name, value in row["values"].items()
    }
    body = orjson.dumps({"keys": {"k": [row["k"]]}, "features": features}, option=orjson.OPT_UTC_Z)
    return ServedAnswer(row["request_id"], row["served_at"].timestamp(), "svc", 1, body, "sdk")


def kept_by_sample(key: int, fraction: float | None) -> bool:
    if fraction is None:
        return True
    digest = hashlib.md5("\x1f".join([str(key)]).encode()).hexdigest()
    return int(digest[:15], 16) < int(fraction * 16**15)


def values_equal(name: str, served: Any, offline: Any) -> bool:
    if FEATURES[name] is not types.Float64:
        return served == offline and type(served) is type(offline)
    if served is None or offline is None:
        return served is None and (offline is None or not math.isfinite(offline))
    if served == offline:
        return True
    return math.isfinite(offline) and abs(served - offline) <= TOLERANCE * max(
        abs(served), abs(offline)
    )


def nearest_rank(ordered: list[float], q: float) -> float:
    return ordered[max(math.ceil(q * len(ordered)), 1) - 1]


def brute_replay(
    rows: list[dict[str, Any]], view: OracleView, start: datetime, end: datetime, sample: Any
) -> dict[str, dict[str, Any]]:
    """What the replay must find, feature by feature, written out plainly."""
    kept = [r for r in rows if start <= r["served_at"] < end and kept_by_sample(r["k"], sample)]
    kept.sort(key=lambda r: (r["served_at"], r["request_id"], r["row"]))
    result = {}
    for name in FEATURES:
        figures: dict[str, Any] = {
            "rows_compared": 0,
            "value_mismatches": 0,
            "served_missing": 0,
            "offline_missing": 0,
            "causes": {STALE: 0, VALUE_SKEW: 0, TTL_OR_STATUS: 0, UNEXPLAINED: 0},
            "lags": [],
            "differences": [],
            "smapes": [],
            "examples": [],
            "served_at": [],
        }
        for row in kept:
            logged = name if name in row["statuses"] else f"v__{name}"
            status, served = row["statuses"][logged], row["values"][logged]
            served_event = row["events"][logged]
            best = winner({"k": row["k"], "t": row["served_at"]}, view, "t", True)
            offline = None if best is None else best[name]
            offline_event = None if best is None else best["event_timestamp"]
            online_has, offline_has = status == "present", best is not None
            figures["rows_compared"] += 1
            figures["served_at"].append(row["served_at"])
            if online_has and offline_has:
                outcome = "match" if values_equal(name, served, offline) else "value_mismatches"
                if (
                    name in ("x", "n")
                    and served is not None
                    and offline is not None
                    and math.isfinite(served)
                    and math.isfinite(offline)
                ):
                    a, b = float(served), float(offline)
                    figures["differences"].append(abs(a - b))
                    figures["smapes"].append(
                        0.0 if a == b == 0 else 2 * abs(a - b) / (abs(a) + abs(b))
                    )
            elif online_has:
                outcome = "offline_missing"
            elif offline_has:
                outcome = "served_missing"
            else:
                outcome = "match"
            if outcome == "match":
                continue
            figures[outcome] += 1
            both = served_event is not None and offline_event is not None
            if both and served_event < offline_event:
                cause = STALE
                figures["lags"].append((offline_event - served_event).total_seconds())
            elif both and served_event > offline_event:
                cause = UNEXPLAINED
            elif online_has != offline_has:
                cause = TTL_OR_STATUS
            else:
                cause = VALUE_SKEW
            figures["causes"][cause] += 1
            figures["examples"].append((row["k"], row["served_at"], cause))
        result[name] = figures
    return result


def run_replay(
    root: Path,
    rows: list[dict[str, Any]],
    logged: list[dict[str, Any]],
    ttl: timedelta | None,
    start: datetime,
    end: datetime,
    sample: float | None = None,
    formats: tuple[int, ...] = (2,),
) -> Any:
    """`replay_log` on the view `rows` and the `logged` rows, written as Parquet under `root`
    in `formats` (`write_log`)."""
    files = write_log(root / "logs", logged, formats)
    data_file = root / "view.parquet"
    schema = pa.schema(
        [
            ("k", pa.int64()),
            ("event_timestamp", pa.timestamp("us", tz="UTC")),
            ("created_timestamp", pa.timestamp("us", tz="UTC")),
            *((name, value_type.arrow) for name, value_type in FEATURES.items()),
        ]
    )
    pq.write_table(pa.Table.from_pylist(rows, schema), data_file)
    relation = f"read_parquet('{data_file}')"
    query = ViewQuery("v", ("k",), tuple(FEATURES), relation, ttl, tuple(FEATURES))
    features = [ServedFeature("v", name, value_type) for name, value_type in FEATURES.items()]
    con = duckdb_connection()
    try:
        return replay_log(
            con,
            files,
            "svc",
            [query],
            {"k": types.Int64},
            features,
            start,
            end,
            sample=sample,
            monitoring=MonitoringConfig(float_tolerance=TOLERANCE, max_stale_rate=1.0),
            examples=100,
        )
    finally:
        con.close()


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data(), rows=view_rows())
def test_replay_equals_a_brute_force_comparison(
    tmp_path_factory: pytest.TempPathFactory, data: st.DataObject, rows: list[dict[str, Any]]
) -> None:
    ttl = data.draw(st.sampled_from([None, timedelta(hours=2), timedelta(minutes=90)]))
    view = OracleView("v", ("k",), tuple(FEATURES), rows, ttl, tuple(FEATURES))
    logged = data.draw(log_rows(view))
    start = hour(0) + timedelta(minutes=data.draw(st.sampled_from([0, 60, 150])))
    end = start + timedelta(hours=data.draw(st.sampled_from([1, 3, 8])))
    sample = data.draw(st.sampled_from([None, 0.3, 0.7, 1.0]))
    formats = data.draw(st.sampled_from([(1,), (2,), (1, 2), (2, 1)]))  # old logs still check
    expected = brute_replay(logged, view, start, end, sample)
    root = tmp_path_factory.mktemp("replay")
    if not any(figures["rows_compared"] for figures in expected.values()):
        with pytest.raises(ReplayError, match="nothing to replay"):
            run_replay(root, rows, logged, ttl, start, end, sample, formats)
        return
    result = run_replay(root, rows, logged, ttl, start, end, sample, formats)
    for name, figures in expected.items():
        found = result.feature(name)
        assert found.rows_compared == figures["rows_compared"]
        assert found.value_mismatches == figures["value_mismatches"]
        assert found.served_missing == figures["served_missing"]
        assert found.offline_missing == figures["offline_missing"]
        assert found.causes == figures["causes"]
        assert [(e.keys["k"], e.served_at, e.cause) for e in found.examples] == figures["examples"]
        lags = sorted(figures["lags"])
        if lags:
            assert found.lag is not None
            assert (found.lag.count, found.lag.min_seconds, found.lag.max_seconds) == (
                len(lags),
                lags[0],
                lags[-1],
            )
            assert found.lag.median_seconds == nearest_rank(lags, 0.5)
            assert found.lag.p95_seconds == nearest_rank(lags, 0.95)
        else:
            assert found.lag is None
        for measure, terms in (("mean_absolute_difference", "differences"), ("smape", "smapes")):
            value = getattr(found, measure)
            if not figures[terms]:
                assert value is None
            else:
                assert value == pytest.approx(sum(figures[terms]) / len(figures[terms]))
        assert_timeline(found, figures, start, end)
        assert_lag_histogram(found, lags)
        feature_passed = not any(
            figures["causes"][c] for c in (VALUE_SKEW, TTL_OR_STATUS, UNEXPLAINED)
        )
        assert found.passed == feature_passed  # stale rows allowed: max_stale_rate 1
    json.dumps(result.to_dict())  # JSON-ready


def assert_timeline(found: Any, figures: dict[str, Any], start: datetime, end: datetime) -> None:
    """Rows and mismatches by cause per bucket, bucket = (served_at - start) // width."""
    timeline = found.timeline
    width = timedelta(seconds=timeline.bucket_seconds)
    count = math.ceil((end - start) / width)
    assert timeline.start == start and 24 < count <= 60 and len(timeline.rows) == count
    expected_rows = [0] * count
    for served_at in figures["served_at"]:
        expected_rows[(served_at - start) // width] += 1
    assert timeline.rows == expected_rows
    for cause in (STALE, VALUE_SKEW, TTL_OR_STATUS, UNEXPLAINED):
        expected = [0] * count
        for _, served_at, why in figures["examples"]:
            if why == cause:
                expected[(served_at - start) // width] += 1
        assert timeline.causes[cause] == expected, cause


def assert_lag_histogram(found: Any, lags: list[float]) -> None:
    """Every stale lag in its bin: [edge i, edge i + 1), the last bin closed."""
    if not lags:
        assert found.lag_histogram is None
        return
    edges, counts = found.lag_histogram.edges_seconds, found.lag_histogram.counts
    assert len(edges) == len(counts) + 1 and edges[0] <= lags[0] and lags[-1] <= edges[-1]
    expected = [0] * len(counts)
    for lag in lags:
        inside = [i for i in range(len(counts)) if edges[i] <= lag < edges[i + 1]]
        expected[inside[0] if inside else len(counts) - 1] += 1
    assert counts == expected


def test_a_nan_offline_matches_the_null_it_was_logged_as(tmp_path: Path) -> None:
    """JSON has no NaN: the log holds null for a served NaN, which the replay accepts for a
    NaN offline; a number served against a NaN is a mismatch."""
    row = {"k": 1, "event_timestamp": hour(0), "created_timestamp": hour(0)}
    row.update({"x": math.nan, "n": 1, "s": "a", "b": True})
    served = {"x": None, "n": 1, "s": "a", "b": True}
    logged = [
        {
            "request_id": f"r{i}",
            "row": 0,
            "served_at": hour(1),
            "k": 1,
            "values": {**served, "x": x},
            "statuses": dict.fromkeys(FEATURES, "present"),
            "events": dict.fromkeys(FEATURES, hour(0)),
        }
        for i, x in enumerate([None, 0.0])
    ]
    result = run_replay(tmp_path, [row], logged, None, hour(0), hour(2))
    x = result.feature("x")
    assert (x.rows_compared, x.value_mismatches, x.causes[VALUE_SKEW]) == (2, 1, 1)
    assert x.examples[0].served_value == 0.0 and math.isnan(x.examples[0].offline_value)
    assert x.mean_absolute_difference is None  # no pair of finite numbers
    assert result.feature("n").mismatches == 0
