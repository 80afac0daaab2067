"""Hand-picked point-in-time join cases: each rule of docs/point-in-time.md, readable."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from typing import Any

import duckdb
import pyarrow as pa
import pytest

from featurehub.offline.pit import ViewQuery, point_in_time_join

T0 = datetime(2024, 1, 1, tzinfo=timezone.utc)
TS = pa.timestamp("us", tz="UTC")
US = timedelta(microseconds=1)


def at(hours: float = 0, minutes: float = 0) -> datetime:
    return T0 + timedelta(hours=hours, minutes=minutes)


@pytest.fixture
def con() -> Iterator[duckdb.DuckDBPyConnection]:
    connection = duckdb.connect()
    yield connection
    connection.close()


def view_table(rows: list[tuple[Any, ...]], keys: tuple[str, ...] = ("driver_id",)) -> pa.Table:
    """Rows of (keys..., event, created, trips, rating)."""
    names = [*keys, "event_timestamp", "created_timestamp", "trips", "rating"]
    columns = list(zip(*rows, strict=True)) if rows else [[] for _ in names]
    types = [pa.int64()] * len(keys) + [TS, TS, pa.int64(), pa.float64()]
    return pa.table([pa.array(c, t) for c, t in zip(columns, types, strict=True)], names=names)


def entity_table(rows: list[tuple[Any, datetime | None]], ts_type: pa.DataType = TS) -> pa.Table:
    """Rows of (driver_id, timestamp), plus a label column numbering them."""
    return pa.table(
        {
            "driver_id": pa.array([r[0] for r in rows], pa.int64()),
            "event_timestamp": pa.array([r[1] for r in rows], ts_type),
            "label": pa.array(range(len(rows)), pa.int64()),
        }
    )


def join(
    con: duckdb.DuckDBPyConnection,
    entity: pa.Table,
    rows: list[tuple[Any, ...]],
    ttl: timedelta | None = None,
    **kwargs: Any,
) -> pa.Table:
    con.register("driver_rows", view_table(rows))
    view = ViewQuery("driver_stats", ("driver_id",), ("trips", "rating"), "driver_rows", ttl)
    return point_in_time_join(con, entity, [view], **kwargs)


# driver 1: rows at 0:00, 3:00, 6:00 (created 5 minutes later); driver 2: one row at 1:00.
HISTORY = [
    (1, at(0), at(0, 5), 10, 1.0),
    (1, at(3), at(3, 5), 13, 1.3),
    (1, at(6), at(6, 5), 16, 1.6),
    (2, at(1), at(1, 5), 21, 2.1),
]


def test_latest_row_at_or_before_each_entity_time(con: duckdb.DuckDBPyConnection) -> None:
    entity = entity_table([(1, at(4)), (1, at(7)), (2, at(5)), (1, at(-1)), (3, at(4))])
    result = join(con, entity, HISTORY)
    assert result.column("trips").to_pylist() == [13, 16, 21, None, None]
    assert result.column("rating").to_pylist() == [1.3, 1.6, 2.1, None, None]


def test_output_keeps_entity_rows_columns_and_order(con: duckdb.DuckDBPyConnection) -> None:
    entity = entity_table([(2, at(5)), (1, at(4)), (2, at(5)), (1, at(4))])
    result = join(con, entity, HISTORY)
    assert result.column_names == ["driver_id", "event_timestamp", "label", "trips", "rating"]
    assert result.select(entity.column_names).equals(entity)
    assert result.column("trips").to_pylist() == [21, 13, 21, 13]


def test_full_feature_names(con: duckdb.DuckDBPyConnection) -> None:
    result = join(con, entity_table([(1, at(4))]), HISTORY, full_feature_names=True)
    assert result.column_names[-2:] == ["driver_stats__trips", "driver_stats__rating"]


def test_created_cutoff_hides_rows_written_after_the_entity_time(
    con: duckdb.DuckDBPyConnection,
) -> None:
    # At 3:02 the 3:00 row exists but was written at 3:05: what was known then is the 0:00 row.
    entity = entity_table([(1, at(3, 2)), (1, at(3, 5))])
    assert join(con, entity, HISTORY).column("trips").to_pylist() == [10, 13]
    feast_like = join(con, entity, HISTORY, created_cutoff=False)
    assert feast_like.column("trips").to_pylist() == [13, 13]


def test_backfill_never_leaks_into_the_past(con: duckdb.DuckDBPyConnection) -> None:
    backfilled = [(1, at(h), at(100), h, None) for h in range(5)]  # all written at 100:00
    entity = entity_table([(1, at(4)), (1, at(100))])
    assert join(con, entity, backfilled).column("trips").to_pylist() == [None, 4]
    assert join(con, entity, backfilled, created_cutoff=False).column("trips").to_pylist() == [4, 4]


def test_ttl_edges_to_the_microsecond(con: duckdb.DuckDBPyConnection) -> None:
    ttl = timedelta(hours=1)
    t = at(10)
    rows = [(1, t, t, 1, None), (2, t - ttl, t - ttl, 2, None), (3, t - ttl + US, t, 3, None)]
    entity = entity_table([(1, t), (2, t), (3, t), (1, t - US)])
    result = join(con, entity, rows, ttl=ttl)
    # e == t is in; e == t - ttl is out; e == t - ttl + 1us is in; e > t is out.
    assert result.column("trips").to_pylist() == [1, None, 3, None]


def test_ttl_does_not_fall_back_to_an_older_row(con: duckdb.DuckDBPyConnection) -> None:
    rows = [(1, at(0), at(0), 1, None), (1, at(5), at(5), 2, None)]
    result = join(con, entity_table([(1, at(5, 30)), (1, at(7))]), rows, ttl=timedelta(hours=1))
    assert result.column("trips").to_pylist() == [2, None]


def test_null_value_in_the_winning_row_stays_null(con: duckdb.DuckDBPyConnection) -> None:
    rows = [(1, at(0), at(0), 10, 1.0), (1, at(1), at(1), None, None)]
    result = join(con, entity_table([(1, at(2))]), rows)
    assert result.column("trips").to_pylist() == [None]
    assert result.column("rating").to_pylist() == [None]


def test_equal_event_times_go_to_the_latest_created(con: duckdb.DuckDBPyConnection) -> None:
    rows = [(1, at(1), at(1), 1, None), (1, at(1), at(2), 2, None), (1, at(1), at(1, 30), 3, None)]
    entity = entity_table([(1, at(3)), (1, at(1, 45))])
    assert join(con, entity, rows).column("trips").to_pylist() == [2, 3]
    assert join(con, entity, rows, created_cutoff=False).column("trips").to_pylist() == [2, 2]


@pytest.mark.parametrize("reverse", [False, True])
def test_full_ties_break_on_feature_values(con: duckdb.DuckDBPyConnection, reverse: bool) -> None:
    # Same key, event and created: the greatest trips wins, nulls last; then the greatest rating.
    rows = [
        (1, at(1), at(1), None, 9.0),
        (1, at(1), at(1), 5, 1.0),
        (1, at(1), at(1), 5, None),
        (1, at(1), at(1), 5, 2.0),
        (1, at(1), at(1), 4, 8.0),
    ]
    result = join(con, entity_table([(1, at(2))]), rows[::-1] if reverse else rows)
    assert result.select(["trips", "rating"]).to_pylist() == [{"trips": 5, "rating": 2.0}]


def test_entity_time_zone_is_converted_and_kept(con: duckdb.DuckDBPyConnection) -> None:
    kolkata = timezone(timedelta(hours=5, minutes=30))
    zoned_type = pa.timestamp("us", tz="+05:30")
    # 08:30 in Kolkata is 03:00 UTC: the 3:00 row (created 3:05) is not known yet.
    zoned = entity_table([(1, at(3).astimezone(kolkata)), (1, at(3, 5))], zoned_type)
    result = join(con, zoned, HISTORY)
    assert result.schema.field("event_timestamp").type == zoned_type
    assert result.column("trips").to_pylist() == [10, 13]
    naive = entity_table([(1, at(3).replace(tzinfo=None))], pa.timestamp("us"))
    naive_result = join(con, naive, HISTORY)
    assert naive_result.schema.field("event_timestamp").type == pa.timestamp("us")
    assert naive_result.column("trips").to_pylist() == [10]


def test_nanosecond_entity_times_compare_exactly(con: duckdb.DuckDBPyConnection) -> None:
    e = 1_704_067_200_000_000  # 2024-01-01 00:00 UTC in microseconds
    rows = [(1, at(0), at(0), 1, None)]
    nanos = [e * 1000 - 1, e * 1000, e * 1000 + 999]
    entity = pa.table(
        {
            "driver_id": [1, 1, 1],
            "event_timestamp": pa.array(nanos, pa.timestamp("ns", tz="UTC")),
        }
    )
    assert join(con, entity, rows).column("trips").to_pylist() == [None, 1, 1]


def test_composite_keys_and_null_keys(con: duckdb.DuckDBPyConnection) -> None:
    keys = ("driver_id", "rider_id")
    rows = [(1, 7, at(0), at(0), 17, None), (1, 8, at(0), at(0), 18, None)]
    con.register("pairs", view_table(rows, keys))
    entity = pa.table(
        {
            "driver_id": pa.array([1, 1, None, 1], pa.int64()),
            "rider_id": pa.array([8, 7, 7, None], pa.int64()),
            "event_timestamp": pa.array([at(1)] * 4, TS),
        }
    )
    view = ViewQuery("pairs", keys, ("trips",), "pairs")
    result = point_in_time_join(con, entity, [view])
    assert result.column("trips").to_pylist() == [18, 17, None, None]


def test_several_views_with_different_keys(con: duckdb.DuckDBPyConnection) -> None:
    con.register("drivers", view_table(HISTORY))
    riders = pa.table(
        {
            "rider_id": pa.array([7], pa.int64()),
            "event_timestamp": pa.array([at(2)], TS),
            "created_timestamp": pa.array([at(2)], TS),
            "spend": [99.5],
        }
    )
    con.register("riders", riders)
    entity = pa.table(
        {
            "driver_id": pa.array([1, 2], pa.int64()),
            "rider_id": pa.array([7, 7], pa.int64()),
            "event_timestamp": pa.array([at(4), at(1, 30)], TS),
        }
    )
    views = [
        ViewQuery("riders", ("rider_id",), ("spend",), "riders"),
        ViewQuery("drivers", ("driver_id",), ("trips",), "(SELECT * FROM drivers)"),
    ]
    result = point_in_time_join(con, entity, views)
    assert result.column_names == ["driver_id", "rider_id", "event_timestamp", "spend", "trips"]
    assert result.column("spend").to_pylist() == [99.5, None]
    assert result.column("trips").to_pylist() == [13, 21]


def test_name_clash_says_to_use_full_feature_names(con: duckdb.DuckDBPyConnection) -> None:
    con.register("driver_rows", view_table(HISTORY))
    entity = entity_table([(1, at(4))]).append_column("trips", pa.array([0]))
    view = ViewQuery("driver_stats", ("driver_id",), ("trips",), "driver_rows")
    with pytest.raises(ValueError, match="full_feature_names=True"):
        point_in_time_join(con, entity, [view])
    a = ViewQuery("a", ("driver_id",), ("rating",), "driver_rows")
    b = ViewQuery("b", ("driver_id",), ("rating",), "driver_rows")
    with pytest.raises(ValueError, match="full_feature_names=True"):
        point_in_time_join(con, entity, [a, b])
    result = point_in_time_join(con, entity, [view], full_feature_names=True)
    assert result.column_names[-1] == "driver_stats__trips"


def test_empty_entity_table_gives_typed_empty_columns(con: duckdb.DuckDBPyConnection) -> None:
    result = join(con, entity_table([]), HISTORY)
    assert result.num_rows == 0
    assert result.schema.field("trips").type == pa.int64()
    assert result.schema.field("rating").type == pa.float64()


def test_no_history_at_all_gives_nulls(con: duckdb.DuckDBPyConnection) -> None:
    result = join(con, entity_table([(1, at(1)), (1, None)]), [])
    assert result.column("trips").to_pylist() == [None, None]


def test_bad_input_is_a_clear_error(con: duckdb.DuckDBPyConnection) -> None:
    entity = entity_table([(1, at(4))])
    with pytest.raises(ValueError, match="no timestamp column 'ts'"):
        join(con, entity, HISTORY, timestamp_column="ts")
    with pytest.raises(ValueError, match=r"lacks join key\(s\) \['rider_id'\]"):
        point_in_time_join(con, entity, [ViewQuery("v", ("rider_id",), ("x",), "driver_rows")])
    with pytest.raises(ValueError, match=r"no column\(s\) \['speed'\]"):
        point_in_time_join(con, entity, [ViewQuery("v", ("driver_id",), ("speed",), "driver_rows")])
    with pytest.raises(TypeError, match="must be a timestamp"):
        join(con, entity, HISTORY, timestamp_column="label")


def test_nothing_stays_registered(con: duckdb.DuckDBPyConnection) -> None:
    def names() -> set[str]:
        return {row[0] for row in con.sql("SELECT view_name FROM duckdb_views()").fetchall()}

    before = names()
    join(con, entity_table([(1, at(4))]), HISTORY)
    with pytest.raises(ValueError):
        point_in_time_join(
            con, entity_table([(1, at(4))]), [ViewQuery("v", ("driver_id",), ("x",), "driver_rows")]
        )
    assert names() == before | {"driver_rows"}


@pytest.mark.parametrize("slow", [False, True])
def test_full_ties_break_on_all_features_whichever_are_asked(
    con: duckdb.DuckDBPyConnection, slow: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Schema order (trips, rating) breaks the tie even when only rating is asked for: the
    # row with trips 5 wins, as the online store (latest_per_key) chooses it.
    import featurehub.offline.pit as pit

    if slow:  # the exact range join, which the search sends late rows to
        monkeypatch.setattr(pit, "_MAX_LATE", 0)
    rows = [(1, at(1), at(1), 4, 9.0), (1, at(1), at(1), 5, 1.0), (1, at(1), at(1), None, 7.0)]
    con.register("driver_rows", view_table(rows))
    asked = ViewQuery(
        "driver_stats", ("driver_id",), ("rating",), "driver_rows", tie_features=("trips", "rating")
    )
    entity = entity_table([(1, at(2)), (1, at(1, 30))])
    result = point_in_time_join(con, entity, [asked], created_cutoff=not slow)
    assert result.column("rating").to_pylist() == [1.0, 1.0]
