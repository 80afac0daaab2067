"""Rows are taken as they were known: late rows and rows stamped in the future.

A row becomes visible at max(event, created). The oracle: a run takes exactly the source rows
its window selects among those visible before its as_of; the offline store then holds the
union of what every run took, each row once, and the online store the newest of those per
key. Online equals the offline join at now, whatever mix of backfills and incremental runs,
as of whatever moments, came before. Checked by hypothesis on both online stores, and on a
fixed scenario with both engines.
"""

from __future__ import annotations

import math
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

import duckdb
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from featurehub import FeatureStore
from featurehub.cli import app
from featurehub.config import load_config
from tests.repos import BASE, DRIVER_DEFS, make_repo

MINUTE = timedelta(minutes=1)
KEYS = [1, 2, 3]
Row = tuple[int, datetime, datetime, float, int]  # key, event, created, conv_rate, trips


@dataclass(frozen=True)
class Run:
    """A backfill of event minutes [start, end), or an incremental run (start is None), as of
    minute `at`."""

    at: int
    start: int | None = None
    end: int | None = None


def source_table(rows: list[Row]) -> pa.Table:
    ts = pa.timestamp("us", tz="UTC")
    return pa.table(
        {
            "driver_id": pa.array([r[0] for r in rows], pa.int64()),
            "event_timestamp": pa.array([r[1] for r in rows], ts),
            "created": pa.array([r[2] for r in rows], ts),
            "conv_rate": pa.array([r[3] for r in rows], pa.float64()),
            "trips_today": pa.array([r[4] for r in rows], pa.int64()),
        }
    )


def build_store(root: Path, rows: list[Row], online_url: str) -> FeatureStore:
    repo = make_repo(root, data={"drivers": source_table(rows)})
    config = load_config(
        repo,
        env={
            "FEATUREHUB_REGISTRY_URL": f"sqlite:///{root / 'registry.db'}",
            "FEATUREHUB_OFFLINE_ROOT": str(root / "offline"),
            "FEATUREHUB_ONLINE_STORE_URL": online_url,
        },
    )
    config = config.model_copy(update={"project": f"arrival_{uuid.uuid4().hex[:12]}"})
    store = FeatureStore(config=config)
    store.apply()
    return store


def visible(row: Row) -> datetime:
    return max(row[1], row[2])


def taken(rows: list[Row], run: Run, watermark: datetime | None) -> set[int]:
    """The positions of the rows the run takes, by the documented rule, in plain Python."""
    as_of = BASE + run.at * MINUTE
    if run.start is not None:
        assert run.end is not None
        start, end = BASE + run.start * MINUTE, BASE + run.end * MINUTE
        return {i for i, r in enumerate(rows) if start <= r[1] < end and visible(r) < as_of}
    if watermark is None:
        return {i for i, r in enumerate(rows) if visible(r) < as_of}
    return {i for i, r in enumerate(rows) if watermark <= visible(r) < as_of}


def newest(rows: list[Row]) -> dict[int, Row]:
    """Per key the row the online store keeps: greatest (event, created, features...)."""
    best: dict[int, Row] = {}
    for row in sorted(rows, key=lambda r: (r[1], r[2], r[3], r[4])):
        best[row[0]] = row
    return best


def run_all(store: FeatureStore, runs: list[Run], engine: str = "local") -> None:
    for run in runs:
        as_of = BASE + run.at * MINUTE
        if run.start is None:
            store.materialize_incremental(as_of, engine=engine)
        else:
            assert run.end is not None
            store.materialize(
                BASE + run.start * MINUTE, BASE + run.end * MINUTE, engine=engine, as_of=as_of
            )


def expected_rows(rows: list[Row], runs: list[Run]) -> list[Row]:
    """Every source row some run took, once (source duplicates stay duplicates)."""
    held: set[int] = set()
    watermark: datetime | None = None
    for run in runs:
        held |= taken(rows, run, watermark)
        if run.start is None:
            watermark = BASE + run.at * MINUTE
    return [rows[i] for i in sorted(held)]


def offline_rows(store: FeatureStore) -> list[Row]:
    relation = store.offline_store.relation(store.get_feature_view("driver_stats"))
    if relation is None:
        return []
    found = duckdb.sql(
        "SELECT driver_id, event_timestamp, created_timestamp, conv_rate, trips_today "
        f"FROM {relation}"
    ).fetchall()
    return sorted(
        (k, e.astimezone(timezone.utc), c.astimezone(timezone.utc), v, t) for k, e, c, v, t in found
    )


def check_consistent(store: FeatureStore, rows: list[Row], runs: list[Run]) -> None:
    expected = expected_rows(rows, runs)
    assert offline_rows(store) == sorted(expected)  # each taken row exactly once
    view = store.get_feature_view("driver_stats")
    stored = store.online_store.read(view, [(k,) for k in KEYS], ["conv_rate", "trips_today"])
    best = newest(expected)
    for key, got in zip(KEYS, stored, strict=True):
        want = best.get(key)
        if want is None:
            assert got is None, (key, got)
            continue
        assert got is not None, (key, want)
        assert (got.event_timestamp, got.created_timestamp) == (want[1], want[2])
        assert (got.values["conv_rate"], got.values["trips_today"]) == (want[3], want[4])
    # And through the public API, with the TTL applied at now: online == offline at now.
    if not best:
        return
    entities = pd.DataFrame({"driver_id": KEYS})
    online = store.get_online_features(
        ["driver_stats:conv_rate", "driver_stats:trips_today"], entities.to_dict("records")
    )
    offline = store.get_historical_features(
        entities.assign(event_timestamp=pd.Timestamp(datetime.now(timezone.utc))),
        ["driver_stats:conv_rate", "driver_stats:trips_today"],
    ).to_arrow()
    for name in ("conv_rate", "trips_today"):
        for got, want in zip(online.values[name], offline[name].to_pylist(), strict=True):
            assert got == want or (
                isinstance(got, float) and math.isnan(got) and math.isnan(want)
            ), (name, got, want)


minutes = st.integers(0, 240)
source_rows = st.lists(
    st.tuples(
        st.sampled_from(KEYS),
        minutes,  # event minute
        st.sampled_from([0, 0, 1, 5, 30, 90, 200]),  # written this many minutes later
        st.sampled_from([0.5, 1.5, 2.5]),
        st.integers(0, 3),
    ),
    max_size=25,
)


@st.composite
def run_sequences(draw: st.DrawFn) -> list[Run]:
    """Runs at increasing moments: incremental ones, and backfills of random intervals
    (some reaching far beyond the runs' moments: rows stamped in their future)."""
    moments = sorted(set(draw(st.lists(st.integers(1, 300), min_size=1, max_size=6))))
    runs = []
    for at in moments:
        if draw(st.booleans()):
            runs.append(Run(at))
        else:
            start = draw(st.integers(-10, 250))
            runs.append(Run(at, start, start + draw(st.integers(1, 400))))
    return runs


def as_rows(drawn: list[tuple[int, int, int, float, int]]) -> list[Row]:
    return [
        (key, BASE + event * MINUTE, BASE + (event + delay) * MINUTE, rate, trips)
        for key, event, delay, rate, trips in drawn
    ]


@pytest.fixture(params=["sqlite", "redis"])
def online_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'online.db'}"
    return request.getfixturevalue("redis_url")


@settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(drawn=source_rows, runs=run_sequences())
def test_online_equals_offline_after_any_runs(
    tmp_path: Path, online_url: str, drawn: list[tuple[int, int, int, float, int]], runs: list[Run]
) -> None:
    check_random_runs(tmp_path, online_url, drawn, runs, "local")


@settings(
    max_examples=3,  # a Spark job per run: a few examples, the local engine takes the many
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(drawn=source_rows, runs=run_sequences())
def test_online_equals_offline_after_any_runs_on_spark(
    tmp_path: Path,
    redis_url: str,
    spark_session: object,
    drawn: list[tuple[int, int, int, float, int]],
    runs: list[Run],
) -> None:
    check_random_runs(tmp_path, redis_url, drawn, runs, "spark")


def check_random_runs(
    tmp_path: Path,
    online_url: str,
    drawn: list[tuple[int, int, int, float, int]],
    runs: list[Run],
    engine: str,
) -> None:
    rows = as_rows(drawn)
    root = tmp_path / uuid.uuid4().hex[:8]
    if online_url.startswith("sqlite"):
        online_url = f"sqlite:///{root / 'online.db'}"
    with build_store(root, rows, online_url) as store:
        run_all(store, runs, engine)
        check_consistent(store, rows, runs)


# -- fixed scenarios -------------------------------------------------------------------------


def scenario_rows() -> list[Row]:
    """Driver 1: an old row, a late correction of it written at minute 100, and one stamped
    in the future of the first runs (minute 150). Driver 2: a row written long after its
    event. Driver 3: only a row stamped after every run."""
    return [
        (1, BASE + 10 * MINUTE, BASE + 11 * MINUTE, 0.1, 1),
        (1, BASE + 20 * MINUTE, BASE + 21 * MINUTE, 0.2, 2),
        (1, BASE + 20 * MINUTE, BASE + 100 * MINUTE, 0.25, 2),  # late correction
        (1, BASE + 150 * MINUTE, BASE + 30 * MINUTE, 0.3, 3),  # written early, due later
        (2, BASE + 5 * MINUTE, BASE + 130 * MINUTE, 0.5, 5),  # late arrival
        (3, BASE + 10_000 * MINUTE, BASE + 40 * MINUTE, 0.9, 9),  # due after every run
    ]


SCENARIO = [Run(60), Run(90, 0, 100_000), Run(120), Run(200)]


@pytest.fixture(params=["local", "spark"])
def engine(request: pytest.FixtureRequest) -> str:
    if request.param == "spark":
        request.getfixturevalue("spark_session")
    return str(request.param)


def test_late_and_future_rows_on_both_engines(tmp_path: Path, online_url: str, engine: str) -> None:
    rows = scenario_rows()
    with build_store(tmp_path / "repo", rows, online_url) as store:
        for index in range(len(SCENARIO)):
            run_all(store, SCENARIO[index : index + 1], engine)
            check_consistent(store, rows, SCENARIO[: index + 1])
        results = store.runs()
        assert [r.kind for r in results] == [
            "incremental",
            "incremental",
            "backfill",
            "incremental",
        ]
        backfill = results[2]
        assert backfill.rows_pending == 4  # visible at 100, 130, 150 and 10,000 minutes
        assert backfill.as_of == BASE + 90 * MINUTE


def test_a_backfill_to_the_far_future_takes_only_what_is_due(
    tmp_path: Path, online_url: str
) -> None:
    now = datetime.now(timezone.utc)
    rows = [
        (1, now - timedelta(hours=2), now - timedelta(hours=2), 0.1, 1),
        (1, now + timedelta(days=1), now - timedelta(hours=1), 0.2, 2),  # tomorrow's, known now
    ]
    with build_store(tmp_path / "repo", rows, online_url) as store:
        [result] = store.materialize(
            now - timedelta(days=1), datetime(9999, 12, 31, tzinfo=timezone.utc)
        )
        assert (result.rows_written, result.rows_pending) == (1, 1)
        online = store.get_online_features(["driver_stats:conv_rate"], [{"driver_id": 1}])
        assert online.values["conv_rate"] == [0.1] and online.statuses["conv_rate"] == ["present"]
        assert store.registry.runs(store.project).watermark("driver_stats") is None
        # An incremental run takes it once it is due, not before.
        [result] = store.materialize_incremental()
        assert result.rows_written == 1 and result.rows_pending == 1


LOOKBACK_DEFS = DRIVER_DEFS.replace(
    'source=ParquetSource(path="data/drivers.parquet", created_timestamp_field="created"),',
    'source=ParquetSource(path="data/drivers.parquet"),',
).replace('schedule="@hourly",', 'schedule="@hourly",\n    lookback=timedelta(minutes=30),')


def test_lookback_takes_late_rows_of_a_source_without_created_times(tmp_path: Path) -> None:
    rows = [(1, BASE + 10 * MINUTE, BASE, 0.1, 1)]
    repo = make_repo(
        tmp_path / "repo",
        files={"defs.py": LOOKBACK_DEFS},
        data={"drivers": source_table(rows).drop(["created"])},
    )
    with FeatureStore(repo) as store:
        store.apply()
        store.materialize_incremental(BASE + 60 * MINUTE)
        # Two rows land after that run: one 20 minutes late (within the lookback), one 50.
        rows += [(1, BASE + 40 * MINUTE, BASE, 0.4, 4), (2, BASE + 5 * MINUTE, BASE, 0.5, 5)]
        pq.write_table(source_table(rows).drop(["created"]), repo / "data" / "drivers.parquet")
        [result] = store.materialize_incremental(BASE + 70 * MINUTE)
        assert result.start == BASE + 30 * MINUTE  # watermark - lookback
        assert [r[:2] for r in offline_rows(store)] == [
            (1, BASE + 10 * MINUTE),
            (1, BASE + 40 * MINUTE),
        ]
        view = store.get_feature_view("driver_stats")
        one, two = store.online_store.read(view, [(1,), (2,)], ["conv_rate"])
        assert one is not None and one.values == {"conv_rate": 0.4}
        assert two is None  # its row landed later than the lookback


def test_lookback_needs_a_source_without_created_times(tmp_path: Path) -> None:
    from featurehub.errors import DefinitionError

    with pytest.raises(DefinitionError, match="lookback is for sources without a created"):
        exec(
            DRIVER_DEFS.replace(
                'schedule="@hourly",', 'schedule="@hourly", lookback=timedelta(1),'
            ),
            {},
        )


def test_rows_without_an_event_time_are_counted_not_dropped_silently(
    tmp_path: Path, engine: str
) -> None:
    table = source_table(scenario_rows()[:2])
    events = pa.array(
        [None, *table["event_timestamp"].to_pylist()[1:]], table["event_timestamp"].type
    )
    table = table.set_column(1, "event_timestamp", events)
    repo = make_repo(tmp_path / "repo", data={"drivers": table})
    with FeatureStore(repo) as store:
        store.apply()
        [result] = store.materialize(BASE, BASE + 1000 * MINUTE, engine=engine)
        assert (result.rows_read, result.rows_skipped) == (1, 1)
        assert store.runs()[0].rows_skipped == 1
        printed = CliRunner().invoke(
            app, ["-r", str(repo), "materialize", "2026-01-01", "2026-01-02", "-e", engine]
        )
        assert printed.exit_code == 0, printed.output
        assert "1 source rows have no event timestamp" in printed.output
