"""Property tests: point_in_time_join equals the brute-force oracle on random small tables.

Times are drawn from a small grid of whole seconds, each nudged by -1, 0 or +1 microsecond, and
TTLs are whole seconds, so random draws keep hitting the edges: e == t, e == t - ttl (excluded),
e == t - ttl + 1us (included), equal event times, created before or after t. Keys and feature
values come from tiny domains so ties, duplicates, nulls and entities without history are
common. Each example also picks the entity timestamp's unit and time zone.
"""

from __future__ import annotations

import math
import uuid
from datetime import datetime, timedelta, timezone
from typing import Any
from unittest import mock
from zoneinfo import ZoneInfo

import duckdb
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from featurehub.offline import pit
from featurehub.offline.pit import ViewQuery, point_in_time_join
from tests.offline.oracle import OracleView, Row, oracle_join

# One connection for the whole module, in a time zone other than UTC: the join must not
# depend on the session's TimeZone setting.
CON = duckdb.connect()
CON.execute("SET TimeZone = 'America/Los_Angeles'")

BASE = datetime(2024, 3, 10, 6, 59, 55, tzinfo=timezone.utc)  # New York's DST switch is at 7:00
UTC_TS = pa.timestamp("us", tz="UTC")
ENTITY_ZONES: dict[str | None, Any] = {
    None: None,
    "UTC": timezone.utc,
    "+05:30": timezone(timedelta(hours=5, minutes=30)),
    "America/New_York": ZoneInfo("America/New_York"),
}


def moment(tick: int, jitter_us: int) -> datetime:
    return BASE + timedelta(seconds=tick, microseconds=jitter_us)


def micros(n: int) -> timedelta:
    return timedelta(microseconds=n)


jitters = st.sampled_from([-1, 0, 1])
times = st.builds(moment, st.integers(0, 6), jitters)
delays = st.builds(lambda s, us: timedelta(seconds=s) + micros(us), st.integers(-1, 3), jitters)
ttls = st.none() | st.integers(1, 3).map(lambda s: timedelta(seconds=s))
entity_drivers = st.none() | st.integers(0, 2)  # driver 2 has no feature rows
entity_riders = st.none() | st.sampled_from(["a", "b", "c"])  # nor has rider c
ints = st.none() | st.integers(-1, 1)
floats = st.none() | st.sampled_from([-1.5, 0.0, 2.25, math.inf, math.nan])
texts = st.none() | st.sampled_from(["", "a", "b", "é"])

VIEW_SHAPES: dict[str, tuple[dict[str, st.SearchStrategy], dict[str, st.SearchStrategy]]] = {
    "drivers": ({"driver_id": st.integers(0, 1)}, {"trips": ints, "rating": floats}),
    "pairs": (
        {"driver_id": st.integers(0, 1), "rider_id": st.sampled_from(["a", "b"])},
        {"note": texts, "count": ints},
    ),
    "riders": ({"rider_id": st.none() | st.sampled_from(["a", "b"])}, {"spend": floats}),
}
COLUMN_TYPES = {
    "driver_id": pa.int64(),
    "rider_id": pa.string(),
    "event_timestamp": UTC_TS,
    "created_timestamp": UTC_TS,
    "trips": pa.int64(),
    "rating": pa.float64(),
    "note": pa.string(),
    "count": pa.int64(),
    "spend": pa.float64(),
}
FIXED = ("event_timestamp", "created_timestamp")


@st.composite
def view_rows(draw: st.DrawFn, name: str) -> list[Row]:
    """Feature rows of one view shape. Some rows copy another's keys and event time with new
    feature values, keeping its created time (a full tie) or not (a tie on event only)."""
    keys, features = VIEW_SHAPES[name]
    rows = []
    for _ in range(draw(st.integers(0, 12))):
        event = draw(times)
        row = {key: draw(strategy) for key, strategy in keys.items()}
        row |= {"event_timestamp": event, "created_timestamp": event + draw(delays)}
        row |= {feature: draw(strategy) for feature, strategy in features.items()}
        rows.append(row)
    for _ in range(draw(st.integers(0, 4)) if rows else 0):
        copy = dict(draw(st.sampled_from(rows)))
        copy |= {feature: draw(strategy) for feature, strategy in features.items()}
        if draw(st.booleans()):
            copy["created_timestamp"] = copy["event_timestamp"] + draw(delays)
        rows.append(copy)
    return draw(st.permutations(rows))


@st.composite
def oracle_views(draw: st.DrawFn, max_views: int) -> list[OracleView]:
    """One to `max_views` of the view shapes, in random order, each with rows and a TTL."""
    names = draw(st.permutations(list(VIEW_SHAPES)))[: draw(st.integers(1, max_views))]
    views = []
    for name in names:
        keys, features = VIEW_SHAPES[name]
        rows = draw(view_rows(name))
        # Asked for: some of the features in any order; ties are broken by all of them in
        # schema order all the same (what the online store does).
        asked = draw(st.permutations(list(features)))[: draw(st.integers(1, len(features)))]
        views.append(OracleView(name, tuple(keys), tuple(asked), rows, draw(ttls), tuple(features)))
    return views


def edge_times(views: list[OracleView]) -> list[datetime]:
    """Entity times at the edges of the feature rows: an event time, a created time, an event
    time plus the TTL, each also one microsecond either side."""
    anchors = []
    for view in views:
        for row in view.rows:
            anchors += [row["event_timestamp"], row["created_timestamp"]]
            if view.ttl is not None:
                anchors.append(row["event_timestamp"] + view.ttl)
    return sorted({anchor + micros(n) for anchor in anchors for n in (-1, 0, 1)})


@st.composite
def entity_tables(
    draw: st.DrawFn,
    views: list[OracleView],
    drivers: st.SearchStrategy = entity_drivers,
    only_edges: bool = False,
) -> tuple[pa.Table, list[Row]]:
    """An entity table (some rows repeated) in a random unit and time zone, and its rows."""
    zone_name = draw(st.sampled_from(list(ENTITY_ZONES)))
    zone = ENTITY_ZONES[zone_name]
    edges = st.sampled_from(edge_times(views) or [BASE])
    instants = edges if only_edges else st.none() | times | edges
    rows = []
    for label in range(draw(st.integers(0, 10))):
        instant = draw(instants)
        local = None if instant is None else instant.astimezone(zone or timezone.utc)
        if local is not None and zone is None:
            local = local.replace(tzinfo=None)  # naive: the UTC wall time
        driver, rider = draw(drivers), draw(entity_riders)
        rows.append({"driver_id": driver, "rider_id": rider, "ts": local, "label": label})
    if rows:
        rows += [dict(draw(st.sampled_from(rows))) for _ in range(draw(st.integers(0, 3)))]
    unit = draw(st.sampled_from(["us", "ns"]))
    schema = pa.schema(
        [
            ("driver_id", pa.int64()),
            ("rider_id", pa.string()),
            ("ts", pa.timestamp(unit, tz=zone_name)),
            ("label", pa.int64()),
        ]
    )
    return pa.Table.from_pylist(rows, schema=schema), rows


@st.composite
def scenarios(draw: st.DrawFn, max_views: int) -> tuple[list[OracleView], pa.Table, list[Row]]:
    """Views first, then an entity table whose times aim at the views' edges."""
    views = draw(oracle_views(max_views))
    table, rows = draw(entity_tables(views))
    return views, table, rows


@st.composite
def sparse_scenarios(
    draw: st.DrawFn, max_rows: int = 4, ttl: st.SearchStrategy = ttls.filter(bool)
) -> tuple[list[OracleView], pa.Table, list[Row]]:
    """One key, a few rows, entity times only at the edges: the row at an edge is then often
    the newest one, which is when its edge decides the answer."""
    rows = [row | {"driver_id": 0} for row in draw(view_rows("drivers"))[:max_rows]]
    view = OracleView("drivers", ("driver_id",), ("trips", "rating"), rows, draw(ttl))
    table, entity_rows = draw(entity_tables([view], st.sampled_from([0, 0, 0, 2]), True))
    return [view], table, entity_rows


def register(view: OracleView, how: str) -> tuple[str, list[str]]:
    """Put a view's rows in DuckDB; the relation text reads them as one table, a subquery, or
    a UNION ALL of two halves (like two files)."""
    columns = (*view.join_keys, *FIXED, *view.columns)
    schema = pa.schema([(column, COLUMN_TYPES[column]) for column in columns])
    table = pa.Table.from_pylist(view.rows, schema=schema)
    half = table.num_rows // 2
    parts = [table.slice(0, half), table.slice(half)] if how == "union" else [table]
    names = [f"t_{uuid.uuid4().hex}" for _ in parts]
    for name, part in zip(names, parts, strict=True):
        CON.register(name, part)
    if how == "table":
        return f'"{names[0]}"', names
    return "(" + " UNION ALL ".join(f'SELECT * FROM "{n}"' for n in names) + ")", names


def same(left: Any, right: Any) -> bool:
    """Equality where NaN equals NaN."""
    if isinstance(left, float) and isinstance(right, float) and math.isnan(left):
        return math.isnan(right)
    return left == right and type(left) is type(right)


def check_against_oracle(
    views: list[OracleView],
    table: pa.Table,
    rows: list[Row],
    *,
    full_feature_names: bool,
    created_cutoff: bool,
    how: str,
) -> None:
    """Run the real join and the oracle on the same input; demand identical output."""
    registered: list[str] = []
    queries = []
    try:
        for view in views:
            relation, names = register(view, how)
            registered += names
            queries.append(
                ViewQuery(
                    view.name, view.join_keys, view.features, relation, view.ttl, view.tie_features
                )
            )
        result = point_in_time_join(
            CON,
            table,
            queries,
            timestamp_column="ts",
            full_feature_names=full_feature_names,
            created_cutoff=created_cutoff,
        )
    finally:
        for name in registered:
            CON.unregister(name)
    expected = oracle_join(
        rows,
        views,
        timestamp_column="ts",
        full_feature_names=full_feature_names,
        created_cutoff=created_cutoff,
    )
    feature_names = [
        f"{view.name}__{feature}" if full_feature_names else feature
        for view in views
        for feature in view.features
    ]
    assert result.column_names == table.column_names + feature_names
    assert result.select(table.column_names).equals(table)
    actual = result.select(feature_names).to_pylist()
    for got, want in zip(actual, expected, strict=True):
        for name in feature_names:
            assert same(got[name], want[name]), (name, got, want)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scenarios(max_views=1), st.booleans())
def test_one_view_matches_oracle(
    scenario: tuple[list[OracleView], pa.Table, list[Row]], created_cutoff: bool
) -> None:
    """Many cheap examples on one view: the edges of time, TTL, created and ties."""
    views, table, rows = scenario
    check_against_oracle(
        views, table, rows, full_feature_names=False, created_cutoff=created_cutoff, how="table"
    )


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(sparse_scenarios(), st.booleans())
def test_sparse_edges_match_oracle(
    scenario: tuple[list[OracleView], pa.Table, list[Row]], created_cutoff: bool
) -> None:
    views, table, rows = scenario
    check_against_oracle(
        views, table, rows, full_feature_names=False, created_cutoff=created_cutoff, how="table"
    )


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    scenarios(max_views=3),
    st.booleans(),
    st.booleans(),
    st.sampled_from(["table", "subquery", "union"]),
    st.booleans(),
)
def test_several_views_match_oracle(
    scenario: tuple[list[OracleView], pa.Table, list[Row]],
    full_feature_names: bool,
    created_cutoff: bool,
    how: str,
    integer_ids: bool,
) -> None:
    """Up to three views with different keys in one query, read in different shapes; integer
    keys numbered by value (the fast path) or, forced, by the general dense numbering."""
    views, table, rows = scenario
    slack = pit._RANGE_SLACK if integer_ids else -(1 << 62)
    with mock.patch.object(pit, "_RANGE_SLACK", slack):
        check_against_oracle(
            views,
            table,
            rows,
            full_feature_names=full_feature_names,
            created_cutoff=created_cutoff,
            how=how,
        )


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    sparse_scenarios(max_rows=12, ttl=ttls),
    st.booleans(),
    st.sampled_from([0, 1, 2]),
    st.integers(18, 23),
)
def test_search_fallbacks_match_oracle(
    scenario: tuple[list[OracleView], pa.Table, list[Row]],
    created_cutoff: bool,
    max_late: int,
    shift: int,
) -> None:
    """The paths big data rarely takes, forced: queries with late rows go to the range join,
    and a packing of 2**18..2**23 us (0.3 to 8 s) leaves the oldest rows without exact times."""
    views, table, rows = scenario

    def narrow(id_count: int, latest: int) -> pit._Packing:
        return pit._Packing(shift, latest - (1 << shift) + 2)

    with (
        mock.patch.object(pit, "_MAX_LATE", max_late),
        mock.patch.object(pit._Packing, "fit", staticmethod(narrow)),
    ):
        check_against_oracle(
            views, table, rows, full_feature_names=False, created_cutoff=created_cutoff, how="union"
        )


@pytest.mark.parametrize("unit", ["s", "ms", "us", "ns"])
def test_units_round_trip(unit: str) -> None:
    """Entity timestamps in any unit compare as the same instants."""
    from featurehub.offline.pit import entity_times_us

    instant = datetime(2024, 1, 2, 3, 4, 5, tzinfo=timezone.utc)
    column = pa.array([instant, None], pa.timestamp(unit, tz="UTC"))
    got = entity_times_us(column)
    assert got[0] == 1_704_164_645_000_000 and got.mask.tolist() == [False, True]
