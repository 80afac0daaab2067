"""The OnlineStore contract, run on every implementation (SQLite and Redis).

A new store passes this file by adding its scheme to the `store_factory` fixture.
"""

from __future__ import annotations

import itertools
import math
import struct
from datetime import datetime, timezone
from typing import Any

import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from featurehub import Field
from featurehub import types as t
from featurehub.errors import DefinitionError
from featurehub.online import OnlineRow, OnlineStore
from featurehub.online.base import EPOCH, MICROSECOND, ColumnarRead, ReadRequest
from tests.online import ALL_TYPES, at, make_rows, make_view
from tests.online.conftest import StoreFactory


def values(rows: list[OnlineRow | None], feature: str = "value") -> list[Any]:
    return [None if row is None else row.values[feature] for row in rows]


def float32(x: float) -> float:
    return pa.array([x], pa.float32()).to_pylist()[0]


def same_bits(a: float | None, b: float | None) -> bool:
    if a is None or b is None:
        return a is b
    return struct.pack("<d", a) == struct.pack("<d", b)


# -- values ------------------------------------------------------------------------------------

EXTREME_TIME = datetime(1900, 1, 1, 0, 0, 0, 1, tzinfo=timezone.utc)
TYPED_ROWS: list[dict[str, Any]] = [
    {
        "driver_id": 1,
        "f_int64": -(2**63),
        "f_int32": 2**31 - 1,
        "f_float64": 0.1,
        "f_float32": 0.1,
        "f_string": "",
        "f_bool": True,
        "f_bytes": b"\x00\xff",
        "f_timestamp": EXTREME_TIME,
    },
    {
        "driver_id": 2,
        "f_int64": 2**63 - 1,
        "f_int32": -(2**31),
        "f_float64": math.nan,
        "f_float32": 3.4e38,
        "f_string": "héllo, 世界 \x00",
        "f_bool": False,
        "f_bytes": b"",
        "f_timestamp": at(1.5),
    },
    {"driver_id": 3},  # every feature null
    {"driver_id": 4, "f_float64": -0.0, "f_float32": -math.inf, "f_string": "x" * 5000},
    {"driver_id": 5, "f_float64": 5e-324, "f_float32": 1e-45, "f_bool": None},
]


def test_every_type_round_trips_exactly_including_nulls(online_store: OnlineStore) -> None:
    view = make_view(schema=ALL_TYPES)
    table = make_rows(view, TYPED_ROWS)
    assert online_store.write(view, table) == len(TYPED_ROWS)

    keys = [(row["driver_id"],) for row in TYPED_ROWS]
    found = online_store.read(view, keys, view.feature_names)
    expected = table.to_pylist()
    for row, want in zip(found, expected, strict=True):
        assert row is not None
        assert row.event_timestamp == want["event_timestamp"]
        assert row.created_timestamp == want["created_timestamp"]
        assert row.event_timestamp.tzinfo is not None
        for name in view.feature_names:
            got = row.values[name]
            if name == "f_float64":
                assert same_bits(got, want[name]), (got, want[name])
            else:
                assert got == want[name] and type(got) is type(want[name]), (name, got)
    assert found[0] is not None and found[0].values["f_float32"] == float32(0.1)
    assert found[1] is not None and isinstance(found[1].values["f_timestamp"], datetime)


def test_read_restricts_to_the_requested_features_in_their_order(
    online_store: OnlineStore,
) -> None:
    view = make_view(schema=ALL_TYPES)
    online_store.write(view, make_rows(view, TYPED_ROWS))
    (row,) = online_store.read(view, [(2,)], ["f_string", "f_int64"])
    assert row is not None
    assert list(row.values) == ["f_string", "f_int64"]
    assert row.values == {"f_string": "héllo, 世界 \x00", "f_int64": 2**63 - 1}
    (only_timestamps,) = online_store.read(view, [(2,)], [])
    assert only_timestamps is not None and only_timestamps.values == {}


def test_unknown_feature_is_a_clear_error(online_store: OnlineStore) -> None:
    view = make_view()
    with pytest.raises(DefinitionError, match="no feature 'valeu'.*'value'"):
        online_store.read(view, [(1,)], ["valeu"])


# -- newest wins -------------------------------------------------------------------------------


def test_newest_row_per_key_wins_within_one_write(online_store: OnlineStore) -> None:
    view = make_view()
    table = make_rows(
        view,
        [
            {"driver_id": 1, "event": 5, "value": 15},
            {"driver_id": 1, "event": 9, "created": 1, "value": 191},
            {"driver_id": 2, "event": 1, "value": 21},
            {"driver_id": 1, "event": 9, "created": 3, "value": 193},  # same event, later created
            {"driver_id": 1, "event": 2, "value": 12},
            {"driver_id": 2, "event": 1, "value": 22},  # exact tie: the later row wins
        ],
    )
    assert online_store.write(view, table) == 2
    found = online_store.read(view, [(1,), (2,)], ["value"])
    assert values(found) == [193, 22]
    assert found[0] is not None
    assert (found[0].event_timestamp, found[0].created_timestamp) == (at(9), at(3))


def test_an_older_write_never_overwrites_a_newer_stored_row(online_store: OnlineStore) -> None:
    view = make_view()
    online_store.write(view, make_rows(view, [{"driver_id": 1, "event": 10, "value": 1}]))
    backfill = [
        {"driver_id": 1, "event": 3, "value": 2},  # older event
        {"driver_id": 1, "event": 10, "created": 9, "value": 3},  # same event, older created
    ]
    for row in backfill:
        assert online_store.write(view, make_rows(view, [row])) == 0
    assert values(online_store.read(view, [(1,)], ["value"])) == [1]

    newer = {"driver_id": 1, "event": 10, "created": 11, "value": 4}
    assert online_store.write(view, make_rows(view, [newer])) == 1
    assert values(online_store.read(view, [(1,)], ["value"])) == [4]


def test_an_exact_tie_lets_the_incoming_row_win(online_store: OnlineStore) -> None:
    view = make_view()
    online_store.write(view, make_rows(view, [{"driver_id": 1, "event": 4, "value": 1}]))
    assert online_store.write(view, make_rows(view, [{"driver_id": 1, "event": 4, "value": 2}]))
    assert values(online_store.read(view, [(1,)], ["value"])) == [2]


def test_write_counts_only_rows_stored(online_store: OnlineStore) -> None:
    view = make_view()
    online_store.write(view, make_rows(view, [{"driver_id": 1, "event": 5, "value": 1}]))
    table = make_rows(
        view,
        [
            {"driver_id": 1, "event": 1, "value": 2},  # older than stored: skipped
            {"driver_id": 2, "event": 1, "value": 3},
            {"driver_id": 2, "event": 2, "value": 4},
            {"driver_id": None, "event": 2, "value": 5},  # null key: skipped
        ],
    )
    assert online_store.write(view, table) == 1
    assert online_store.write(view, make_rows(view, [])) == 0
    assert values(online_store.read(view, [(1,), (2,), (None,)], ["value"])) == [1, 4, None]


def test_a_large_write_spans_batches(online_store: OnlineStore) -> None:
    view = make_view()
    rows = [{"driver_id": i % 4500, "event": i // 4500, "value": i} for i in range(9000)]
    assert online_store.write(view, make_rows(view, rows[::-1])) == 4500
    found = online_store.read(view, [(i,) for i in range(4500)], ["value"])
    assert values(found) == [4500 + i for i in range(4500)]


# -- keys --------------------------------------------------------------------------------------


def test_unknown_keys_read_as_none_and_no_keys_as_empty(online_store: OnlineStore) -> None:
    view = make_view()
    assert online_store.read(view, [(1,), (2,)], ["value"]) == [None, None]
    assert online_store.read(view, [], ["value"]) == []
    online_store.write(view, make_rows(view, [{"driver_id": 1, "value": 7}]))
    assert values(online_store.read(view, [(2,), (1,)], ["value"])) == [None, 7]


def test_read_follows_the_order_of_keys_including_duplicates(online_store: OnlineStore) -> None:
    view = make_view()
    rows = [{"driver_id": i, "value": i * 10} for i in range(5)]
    online_store.write(view, make_rows(view, rows))
    keys = [(3,), (1,), (3,), (9,), (0,), (1,)]
    assert values(online_store.read(view, keys, ["value"])) == [30, 10, 30, None, 0, 10]


def test_composite_keys_with_mixed_types(online_store: OnlineStore) -> None:
    view = make_view(keys=[("driver_id", t.Int64), ("city", t.String)])
    rows = [
        {"driver_id": 1, "city": "paris", "value": 1},
        {"driver_id": 1, "city": "lyon", "value": 2},
        {"driver_id": 2, "city": "paris", "value": 3},
        {"driver_id": 12, "city": "3", "value": 4},
        {"driver_id": 1, "city": "23", "value": 5},  # "1"+"23" must not collide with "12"+"3"
    ]
    online_store.write(view, make_rows(view, rows))
    keys = [(1, "paris"), (1, "lyon"), (2, "paris"), (2, "lyon"), (12, "3"), (1, "23")]
    assert values(online_store.read(view, keys, ["value"])) == [1, 2, 3, None, 4, 5]


def test_a_view_without_entities_holds_one_row(online_store: OnlineStore) -> None:
    view = make_view(keys=[])
    rows = [{"event": 2, "value": 2}, {"event": 3, "value": 3}, {"event": 1, "value": 1}]
    assert online_store.write(view, make_rows(view, rows)) == 1
    assert values(online_store.read(view, [()], ["value"])) == [3]


def test_int_and_string_keys_are_different_entities(online_store: OnlineStore) -> None:
    by_int = make_view("by_int")
    by_str = make_view("by_str", keys=[("driver_id", t.String)])
    online_store.write(by_int, make_rows(by_int, [{"driver_id": 12, "value": 1}]))
    online_store.write(by_str, make_rows(by_str, [{"driver_id": "12", "value": 2}]))
    assert values(online_store.read(by_int, [(12,), ("12",)], ["value"])) == [1, None]
    assert values(online_store.read(by_str, [("12",), (12,)], ["value"])) == [2, None]


def test_other_key_types(online_store: OnlineStore) -> None:
    view = make_view(keys=[("k_bytes", t.Bytes), ("k_bool", t.Bool), ("k_time", t.Timestamp)])
    rows = [
        {"k_bytes": b"a:b", "k_bool": True, "k_time": at(1), "value": 1},
        {"k_bytes": b"a:b", "k_bool": False, "k_time": at(1), "value": 2},
        {"k_bytes": b"", "k_bool": True, "k_time": at(2), "value": 3},
    ]
    online_store.write(view, make_rows(view, rows))
    keys = [(b"a:b", True, at(1)), (b"a:b", False, at(1)), (b"", True, at(2)), (b"", 1, at(2))]
    assert values(online_store.read(view, keys, ["value"])) == [1, 2, 3, None]


# -- views and projects ------------------------------------------------------------------------


def test_projects_are_isolated(store_factory: StoreFactory) -> None:
    one, two = store_factory("project_one"), store_factory("project_two")
    view = make_view()
    one.write(view, make_rows(view, [{"driver_id": 1, "value": 1}]))
    two.write(view, make_rows(view, [{"driver_id": 2, "value": 2}]))
    assert values(one.read(view, [(1,), (2,)], ["value"])) == [1, None]
    assert values(two.read(view, [(1,), (2,)], ["value"])) == [None, 2]
    two.delete_view(view.name)
    assert values(one.read(view, [(1,)], ["value"])) == [1]


def test_delete_view_drops_only_that_view(online_store: OnlineStore) -> None:
    kept, dropped = make_view("kept"), make_view("dropped")
    for view in (kept, dropped):
        online_store.write(view, make_rows(view, [{"driver_id": i, "value": i} for i in range(3)]))
    online_store.delete_view("dropped")
    online_store.delete_view("never_written")
    assert values(online_store.read(dropped, [(0,), (1,)], ["value"])) == [None, None]
    assert values(online_store.read(kept, [(0,), (1,)], ["value"])) == [0, 1]


def test_read_many_equals_one_read_per_view(online_store: OnlineStore) -> None:
    first = make_view("first")
    second = make_view("second", schema=[Field("name", t.String)], keys=[("user", t.String)])
    online_store.write(first, make_rows(first, [{"driver_id": 1, "value": 1}]))
    online_store.write(second, make_rows(second, [{"user": "ann", "name": "Ann"}]))
    requests: list[ReadRequest] = [
        (first, [(1,), (2,)], ["value"]),
        (second, [("bob",), ("ann",)], ["name"]),
        (first, [], ["value"]),
    ]
    assert online_store.read_many(requests) == [online_store.read(*r) for r in requests]
    assert online_store.read_many([]) == []


def test_rows_of_a_changed_schema_are_never_misread(online_store: OnlineStore) -> None:
    old = make_view(schema=[Field("value", t.Int64)])
    new = make_view(schema=[Field("value", t.Float64)])
    online_store.write(old, make_rows(old, [{"driver_id": 1, "event": 5, "value": 7}]))
    assert online_store.read(new, [(1,)], ["value"]) == [None]
    # A row of the current schema replaces it even when older: the stored one is unreadable.
    assert online_store.write(new, make_rows(new, [{"driver_id": 1, "event": 1, "value": 0.5}]))
    assert values(online_store.read(new, [(1,)], ["value"])) == [0.5]


# -- property: any sequence of writes reads back as the brute-force newest row -----------------

_view_names = (f"prop_{i}" for i in itertools.count())
_row = st.tuples(st.integers(0, 3), st.integers(0, 3), st.integers(0, 2))  # key, event, created


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(writes=st.lists(st.lists(_row, max_size=8), min_size=1, max_size=4))
def test_any_writes_read_back_as_the_newest_row_per_key(
    online_store: OnlineStore, writes: list[list[tuple[int, int, int]]]
) -> None:
    view = make_view(next(_view_names))
    oracle: dict[int, tuple[int, int, int]] = {}  # key -> (event, created, value)
    serial = itertools.count()
    for batch in writes:
        rows = []
        for key, event, created in batch:
            value = next(serial)
            rows.append({"driver_id": key, "event": event, "created": created, "value": value})
            best = oracle.get(key)
            if best is None or (event, created) >= best[:2]:
                oracle[key] = (event, created, value)
        online_store.write(view, make_rows(view, rows))

    keys = list(range(5))
    found = online_store.read(view, [(k,) for k in keys], ["value"])
    for key, row in zip(keys, found, strict=True):
        if key not in oracle:
            assert row is None
            continue
        event, created, value = oracle[key]
        assert row is not None
        assert (row.values["value"], row.event_timestamp, row.created_timestamp) == (
            value,
            at(event),
            at(created),
        )
    read = online_store.read_columns(view, [(k,) for k in keys], ["value"])
    assert read.rows() == found
    assert read.event_us == [micros(at(oracle[k][0])) if k in oracle else None for k in keys]


# -- columnar reads ----------------------------------------------------------------------------


def micros(moment: datetime) -> int:
    return (moment - EPOCH) // MICROSECOND


def same_value(got: Any, want: Any) -> bool:
    if isinstance(want, float):
        return type(got) is float and same_bits(got, want)
    return bool(got == want) and type(got) is type(want)


def test_read_columns_of_every_type_with_nulls_unknown_keys_and_duplicates(
    online_store: OnlineStore,
) -> None:
    view = make_view(schema=ALL_TYPES)
    table = make_rows(view, TYPED_ROWS)
    online_store.write(view, table)
    stored = {row["driver_id"]: row for row in table.to_pylist()}
    ids = [1, 99, 2, 3, 1, 4, 5, 98, 2]
    read = online_store.read_columns(view, [(i,) for i in ids], view.feature_names)
    assert isinstance(read, ColumnarRead) and len(read) == len(ids)
    assert list(read.values) == view.feature_names
    for position, key in enumerate(ids):
        want = stored.get(key)
        if want is None:
            assert read.event_us[position] is None and read.created_us[position] is None
            assert all(read.values[name][position] is None for name in view.feature_names)
            continue
        assert read.event_us[position] == micros(want["event_timestamp"])
        assert read.created_us[position] == micros(want["created_timestamp"])
        assert type(read.event_us[position]) is int
        for name in view.feature_names:
            got = read.values[name][position]
            if name == "f_float32" and want[name] is not None:
                assert got == float32(want[name]) and type(got) is float
            elif want[name] is None:
                assert got is None, (name, key, got)
            else:
                assert same_value(got, want[name]), (name, key, got, want[name])
    assert read.values["f_timestamp"][0] == EXTREME_TIME
    assert read.values["f_timestamp"][0].tzinfo is not None
    # read() is the same read, one OnlineRow per key (repr: NaN != NaN)
    rows = online_store.read(view, [(i,) for i in ids], view.feature_names)
    assert repr(rows) == repr(read.rows())


def test_read_columns_restricts_features_keeps_their_order_and_reads_no_keys(
    online_store: OnlineStore,
) -> None:
    view = make_view(schema=ALL_TYPES)
    online_store.write(view, make_rows(view, TYPED_ROWS))
    read = online_store.read_columns(view, [(2,), (7,)], ["f_string", "f_int64"])
    assert read.values == {"f_string": ["héllo, 世界 \x00", None], "f_int64": [2**63 - 1, None]}
    assert list(read.values) == ["f_string", "f_int64"]
    only_timestamps = online_store.read_columns(view, [(2,), (7,)], [])
    assert only_timestamps.values == {} and only_timestamps.event_us[1] is None
    assert only_timestamps.event_us[0] == micros(at(0))
    empty = online_store.read_columns(view, [], ["f_int64"])
    assert (empty.event_us, empty.created_us, empty.values) == ([], [], {"f_int64": []})
    with pytest.raises(DefinitionError, match="no feature 'f_int46'"):
        online_store.read_columns(view, [], ["f_int46"])


def test_read_columns_of_fixed_width_views_with_and_without_gaps(
    online_store: OnlineStore,
) -> None:
    """Every key found (one struct for all rows) and some missing (row by row) agree."""
    schema = [Field("a", t.Int64), Field("b", t.Float32), Field("c", t.Bool), Field("d", t.Int32)]
    view = make_view(schema=schema)
    rows = [
        {"driver_id": k, "event": k, "a": k * 3, "b": k / 3, "c": k % 2 == 0, "d": -k}
        if k % 4
        else {"driver_id": k, "event": k}  # all nulls
        for k in range(40)
    ]
    online_store.write(view, make_rows(view, rows))
    features = ["d", "c", "a", "b"]

    def expected(key: int) -> list[Any]:
        if key >= 40:
            return [None] * 4
        if key % 4 == 0:
            return [None] * 4
        return [-key, key % 2 == 0, key * 3, float32(key / 3)]

    for ids in (list(range(40)), [5, 41, 5, 0, 39, 40], [*range(39, -1, -1), 100]):
        read = online_store.read_columns(view, [(k,) for k in ids], features)
        got = [[read.values[name][i] for name in features] for i in range(len(ids))]
        assert got == [expected(k) for k in ids]
        assert [type(v) for v in read.values["c"] if v is not None] == [bool] * sum(
            1 for k in ids if k < 40 and k % 4
        )
        assert read.event_us == [micros(at(k)) if k < 40 else None for k in ids]


def test_read_many_columns_equals_one_read_columns_per_view(online_store: OnlineStore) -> None:
    first = make_view("first")
    second = make_view("second", schema=[Field("name", t.String)], keys=[("user", t.String)])
    online_store.write(first, make_rows(first, [{"driver_id": 1, "value": 1}]))
    online_store.write(second, make_rows(second, [{"user": "ann", "name": "Ann"}]))
    requests: list[ReadRequest] = [
        (first, [(1,), (2,), (1,)], ["value", "score"]),
        (second, [("bob",), ("ann",)], ["name"]),
        (first, [], ["value"]),
    ]
    many = online_store.read_many_columns(requests)
    assert many == [online_store.read_columns(*r) for r in requests]
    assert many[0].values == {"value": [1, None, 1], "score": [None, None, None]}
    assert many[1].values == {"name": [None, "Ann"]}
    assert online_store.read_many_columns([]) == []


def test_read_columns_never_misreads_rows_of_a_changed_schema(online_store: OnlineStore) -> None:
    old = make_view(schema=[Field("value", t.Int64)])
    new = make_view(schema=[Field("value", t.Float64)])
    online_store.write(old, make_rows(old, [{"driver_id": k, "value": k} for k in range(4)]))
    online_store.write(new, make_rows(new, [{"driver_id": 2, "event": 1, "value": 0.5}]))
    read = online_store.read_columns(new, [(k,) for k in range(5)], ["value"])
    assert read.values == {"value": [None, None, 0.5, None, None]}
    assert read.event_us == [None, None, micros(at(1)), None, None]


_TYPED_VALUES: dict[str, st.SearchStrategy[Any]] = {
    "f_int64": st.integers(-(2**63), 2**63 - 1),
    "f_int32": st.integers(-(2**31), 2**31 - 1),
    "f_float64": st.floats(),
    "f_float32": st.floats(width=32),
    "f_string": st.text(max_size=5),
    "f_bool": st.booleans(),
    "f_bytes": st.binary(max_size=5),
    "f_timestamp": st.datetimes(
        min_value=datetime(1900, 1, 1),
        max_value=datetime(2200, 1, 1),
        timezones=st.just(timezone.utc),
    ),
}
_typed_row = st.fixed_dictionaries(
    {}, optional={name: st.none() | values for name, values in _TYPED_VALUES.items()}
)


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    rows=st.lists(_typed_row, max_size=6),
    ids=st.lists(st.integers(0, 7), max_size=12),
    features=st.lists(st.sampled_from(sorted(_TYPED_VALUES)), unique=True),
)
def test_read_columns_returns_what_was_written_for_any_values(
    online_store: OnlineStore, rows: list[dict[str, Any]], ids: list[int], features: list[str]
) -> None:
    view = make_view(next(_view_names), schema=ALL_TYPES)
    written = [{"driver_id": key, "event": key, **row} for key, row in enumerate(rows)]
    online_store.write(view, make_rows(view, written))
    read = online_store.read_columns(view, [(k,) for k in ids], features)
    assert read.event_us == [micros(at(k)) if k < len(rows) else None for k in ids]
    assert read.created_us == read.event_us
    for name in features:
        for key, got in zip(ids, read.values[name], strict=True):
            want = rows[key].get(name) if key < len(rows) else None
            if name == "f_float32" and want is not None and math.isnan(want):
                assert type(got) is float and math.isnan(got)  # float32 NaN payloads may change
                continue
            assert same_value(got, want), (name, key, got, want)
