"""`lookup`: entity rows in, the columnar response out, TTL applied at read time, on both
stores."""

from __future__ import annotations

import dataclasses
from datetime import datetime, timedelta, timezone
from enum import IntEnum
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from featurehub import Entity, Field
from featurehub import types as t
from featurehub.definitions import FeatureView, FeatureViewProjection
from featurehub.online import OnlineStore
from featurehub.online.lookup import (
    EXPIRED,
    NOT_FOUND,
    PRESENT,
    EntityKeyError,
    entity_keys,
    entity_rows_of,
    lookup,
)
from featurehub.server import request
from tests.online import ALL_TYPES, BASE, at, make_rows, make_view

VIEW = dataclasses.replace(make_view(), ttl=timedelta(hours=2))
NOW = at(11)


def project(view: FeatureView, *features: str) -> list[FeatureViewProjection]:
    return [FeatureViewProjection(view, list(features))]


@pytest.fixture
def stored(online_store: OnlineStore) -> OnlineStore:
    rows: list[dict[str, Any]] = [
        {"driver_id": 1, "event": 10, "value": 1, "score": 0.5},  # fresh
        {"driver_id": 2, "event": 9, "value": 2, "score": 1.5},  # exactly ttl old: expired
        {"driver_id": 3, "event": 12, "value": 3},  # event in the future
        {"driver_id": 4, "event": 10, "created": 12, "value": 4},  # created in the future
        {"driver_id": 5, "event": 9.5, "value": None, "score": 2.5},  # fresh, a null
    ]
    online_store.write(VIEW, make_rows(VIEW, rows))
    return online_store


def test_statuses_values_and_event_timestamps(stored: OnlineStore) -> None:
    ids = [1, 2, 3, 4, 5, 6, 1]
    response = lookup(
        stored, project(VIEW, "value", "score"), [{"driver_id": i} for i in ids], now=NOW
    )
    assert response.keys == {"driver_id": ids}
    statuses = [PRESENT, EXPIRED, NOT_FOUND, NOT_FOUND, PRESENT, NOT_FOUND, PRESENT]
    assert response.statuses == {"value": statuses, "score": statuses}
    assert response.values == {
        "value": [1, None, None, None, None, None, 1],
        "score": [0.5, None, None, None, 2.5, None, 0.5],
    }
    stamps = [at(10), at(9), at(12), at(10), at(9.5), None, at(10)]
    assert response.event_timestamps == {"value": stamps, "score": stamps}
    assert all(s is None or s.tzinfo is not None for s in response.event_timestamps["value"])
    table = response.to_dict(include_metadata=True)
    assert table["score__status"] == statuses and table["score__event_timestamp"] == stamps


def test_without_ttl_old_rows_are_present(stored: OnlineStore) -> None:
    view = dataclasses.replace(VIEW, ttl=None)
    response = lookup(stored, project(view, "value"), [{"driver_id": 2}], now=at(1000))
    assert (response.values, response.statuses["value"]) == ({"value": [2]}, [PRESENT])


def test_one_microsecond_inside_the_ttl_is_present(stored: OnlineStore) -> None:
    now = at(11) - timedelta(microseconds=1)
    response = lookup(stored, project(VIEW, "value"), [{"driver_id": 2}], now=now)
    assert response.statuses["value"] == [PRESENT]


def test_full_feature_names_and_clashing_names(stored: OnlineStore) -> None:
    other = dataclasses.replace(
        make_view("other", schema=[Field("value", t.String)]), ttl=timedelta(hours=2)
    )
    stored.write(other, make_rows(other, [{"driver_id": 1, "event": 10, "value": "x"}]))
    projections = project(VIEW, "value") + project(other, "value")
    rows = [{"driver_id": 1}, {"driver_id": 2}]
    response = lookup(stored, projections, rows, now=NOW, full_feature_names=True)
    assert response.values == {"stats__value": [1, None], "other__value": ["x", None]}
    with pytest.raises(EntityKeyError, match="'value' appears twice"):
        lookup(stored, projections, rows, now=NOW)


def test_empty_requests(stored: OnlineStore) -> None:
    response = lookup(stored, project(VIEW, "value"), [], now=NOW)
    assert (response.values, response.statuses, response.event_timestamps) == (
        {"value": []},
        {"value": []},
        {"value": []},
    )


def test_keys_are_checked_not_coerced(stored: OnlineStore) -> None:
    projection = project(VIEW, "value")
    with pytest.raises(EntityKeyError, match="entity row 1: driver_id='1' is a str"):
        lookup(stored, projection, [{"driver_id": 1}, {"driver_id": "1"}], now=NOW)
    with pytest.raises(EntityKeyError, match="entity row 0: driver_id=True is a bool"):
        lookup(stored, projection, [{"driver_id": True}], now=NOW)
    with pytest.raises(EntityKeyError, match="entity row 2 has no 'driver_id'"):
        lookup(stored, projection, [{"driver_id": 1}, {"driver_id": 2}, {"driver": 3}], now=NOW)
    with pytest.raises(EntityKeyError, match="driver_id is missing .*null is not a key"):
        lookup(stored, projection, [{"driver_id": 1}, {"driver_id": None}], now=NOW)
    with pytest.raises(EntityKeyError, match=r"entity row 1 is an int, not a dict.*\[\{"):
        lookup(stored, projection, [{"driver_id": 1}, 2], now=NOW)  # type: ignore[list-item]


def test_entity_keys_accept_int_subclasses_and_keep_order() -> None:
    class Driver(IntEnum):
        ONE = 1

    view = make_view(keys=[("driver_id", t.Int64), ("city", t.String)])
    rows = [{"driver_id": Driver.ONE, "city": "paris"}, {"city": "lyon", "driver_id": 2}]
    assert entity_keys(view, rows) == [(Driver.ONE, "paris"), (2, "lyon")]
    assert entity_keys(make_view(keys=[]), rows) == [(), ()]
    with pytest.raises(EntityKeyError, match="entity row 0: city=b'x' is a bytes"):
        entity_keys(view, [{"driver_id": 1, "city": b"x"}])


def test_numpy_integers_are_integers_and_the_range_is_the_servers(stored: OnlineStore) -> None:
    projection = project(VIEW, "value")
    rows = [{"driver_id": np.int64(1)}, {"driver_id": np.uint8(5)}, {"driver_id": np.int32(9)}]
    response = lookup(stored, projection, rows, now=NOW)
    assert response.values == {"value": [1, None, None]}
    assert response.statuses["value"] == [PRESENT, PRESENT, NOT_FOUND]
    beyond = [{"driver_id": np.uint64(2**63)}]
    with pytest.raises(EntityKeyError, match="beyond the range .* Int64 \\(64-bit integers\\)"):
        lookup(stored, projection, beyond, now=NOW)
    with pytest.raises(EntityKeyError, match="np.True_ is a bool but"):
        lookup(stored, projection, [{"driver_id": np.bool_(True)}], now=NOW)


COLUMNS: list[Any] = [
    {"driver_id": [1, 5, 9]},
    {"driver_id": (1, 5, 9)},
    {"driver_id": np.array([1, 5, 9])},
    {"driver_id": pd.Series([1, 5, 9], dtype="int32")},
    pd.DataFrame({"driver_id": [1, 5, 9], "label": ["a", "b", "c"]}),
    [{"driver_id": 1}, {"driver_id": 5}, {"driver_id": 9}],
]


@pytest.mark.parametrize("entities", COLUMNS, ids=lambda e: type(e).__name__)
def test_every_shape_of_entity_rows_gives_the_same_answer(
    stored: OnlineStore, entities: Any
) -> None:
    rows = entity_rows_of(entities)
    response = lookup(stored, project(VIEW, "value"), rows, now=NOW)
    assert response.to_dict() == {"driver_id": [1, 5, 9], "value": [1, None, None]}
    assert all(type(key) is int for key in response.keys["driver_id"])


@pytest.mark.parametrize(
    ("entities", "message"),
    [
        (None, "cannot be None: entity rows are a list of dicts"),
        (1001, 'cannot be an int: .*\\[\\{"driver_id": 1001\\}'),
        ("driver_id=1", "cannot be a str: .*columns like the HTTP API's"),
        ({"driver_id": 1}, "entity column 'driver_id' is an int, not a list of values"),
        ({"driver_id": [1, 2], "city": ["x"]}, "differ in length \\(driver_id: 2, city: 1\\)"),
        (np.array([1, 2]), "cannot be a ndarray"),
        (
            pd.DataFrame([[1, 2]], columns=["driver_id", "driver_id"]),
            "duplicate column\\(s\\) \\['driver_id'\\].*duplicated",
        ),
    ],
)
def test_other_entity_inputs_are_refused_showing_the_shape(entities: Any, message: str) -> None:
    with pytest.raises(EntityKeyError, match=message):
        entity_rows_of(entities)


def test_missing_keys_in_a_dataframe_say_to_drop_or_fill(stored: OnlineStore) -> None:
    frame = pd.DataFrame({"driver_id": pd.array([1, None], dtype="Int64")})
    with pytest.raises(EntityKeyError, match="entity row 1: driver_id is missing.*drop the rows"):
        lookup(stored, project(VIEW, "value"), entity_rows_of(frame), now=NOW)
    floats = pd.DataFrame({"driver_id": [1.0, float("nan")]})
    with pytest.raises(EntityKeyError, match="entity row 0: driver_id=1.0 is a float"):
        lookup(stored, project(VIEW, "value"), entity_rows_of(floats), now=NOW)


def test_now_defaults_to_the_current_time(online_store: OnlineStore) -> None:
    view = dataclasses.replace(make_view(), ttl=timedelta(days=1))
    recent = (datetime.now(timezone.utc) - timedelta(minutes=1) - BASE) / timedelta(hours=1)
    rows: list[dict[str, Any]] = [
        {"driver_id": 1, "event": recent, "value": 1},
        {"driver_id": 2, "value": 2},
    ]
    online_store.write(view, make_rows(view, rows))
    response = lookup(online_store, project(view, "value"), [{"driver_id": 1}, {"driver_id": 2}])
    assert response.statuses["value"] == [PRESENT, EXPIRED]  # 2: at BASE, over a day ago


KEY_VALUES = st.one_of(
    st.integers(min_value=-(2**65), max_value=2**65),
    st.integers(min_value=0, max_value=2**64 - 1).map(np.uint64),
    st.integers(min_value=-(2**63), max_value=2**63 - 1).map(np.int64),
    st.booleans(),
    st.none(),
    st.text(max_size=3),
    st.binary(max_size=3),
    st.floats(allow_nan=True),
)
KEY_TYPES = st.sampled_from([t.Int64, t.Int32, t.String, t.Bytes, t.Bool, None])


def server_accepts(key_type: t.ValueType | None, column: list[Any]) -> bool:
    """The feature server's check of one entity column (what POST /v1/features runs)."""
    try:
        request._check_keys("k", key_type, column)
    except request.ApiError:
        return False
    return True


@settings(max_examples=300, deadline=None)
@given(key_type=KEY_TYPES, column=st.lists(KEY_VALUES, min_size=1, max_size=5))
def test_sdk_and_server_accept_the_same_keys(
    key_type: t.ValueType | None, column: list[Any]
) -> None:
    view = make_view(keys=[("k", t.Int64)])
    entity = Entity(name="e_k", join_keys=["k"], key_types={"k": key_type} if key_type else {})
    view = dataclasses.replace(view, entities=[entity])
    try:
        entity_keys(view, [{"k": value} for value in column])
        sdk = True
    except EntityKeyError:
        sdk = False
    # JSON carries no NumPy scalars (a client sends their ints) and no bytes, and orjson reads
    # integers beyond [-2**63, 2**64) as floats: the server is asked about what it can receive.
    json_column = [value.item() if isinstance(value, np.generic) else value for value in column]
    if all(_json_able(value) for value in json_column):
        assert server_accepts(key_type, json_column) == sdk
    assert sdk == all(oracle_accepts(key_type, value) for value in json_column)


def _json_able(value: Any) -> bool:
    if isinstance(value, int) and not isinstance(value, bool):
        return -(2**63) <= value < 2**64
    return not isinstance(value, bytes)


def oracle_accepts(key_type: t.ValueType | None, value: Any) -> bool:
    """The documented key rule, spelled out case by case."""
    if value is None:
        return False
    if isinstance(value, int) and not isinstance(value, bool):
        return -(2**63) <= value < 2**63 and key_type not in (t.String, t.Bytes)
    if key_type in (t.Int64, t.Int32):
        return False
    if key_type is t.String:
        return isinstance(value, str)
    if key_type is t.Bytes:
        return isinstance(value, bytes)
    if key_type is None:
        return isinstance(value, (str, bytes))
    return True  # Bool, Float and Timestamp keys take any value


def test_to_pandas_uses_nullable_dtypes_of_the_declared_types(online_store: OnlineStore) -> None:
    view = make_view("typed", schema=ALL_TYPES)
    values = {
        "f_int64": 1,
        "f_int32": 2,
        "f_float64": 0.5,
        "f_float32": 1.5,
        "f_string": "x",
        "f_bool": True,
        "f_bytes": b"b",
        "f_timestamp": at(3),
    }
    online_store.write(view, make_rows(view, [{"driver_id": 1, "event": 1, **values}]))
    features = [field.name for field in ALL_TYPES]
    rows = [{"driver_id": 1}, {"driver_id": 2}]
    response = lookup(online_store, project(view, *features), rows, now=NOW)
    frame = response.to_pandas(include_metadata=True)
    assert {name: str(frame[name].dtype) for name in ["driver_id", *features]} == {
        "driver_id": "Int64",
        "f_int64": "Int64",
        "f_int32": "Int32",
        "f_float64": "float64",
        "f_float32": "float32",
        "f_string": "str",
        "f_bool": "boolean",
        "f_bytes": "object",
        "f_timestamp": "datetime64[us, UTC]",
    }
    assert frame["f_int64"].tolist() == [1, pd.NA] and frame["f_bool"].tolist() == [True, pd.NA]
    assert frame["f_timestamp"].tolist()[0] == at(3)
    assert frame["f_int64__event_timestamp"].tolist()[0] == at(1)
    assert str(frame["f_int64__event_timestamp"].dtype) == "datetime64[us, UTC]"
    assert frame["f_int64__status"].tolist() == [PRESENT, NOT_FOUND]
    table = response.to_arrow()
    assert table.schema.field("f_int32").type == pa.int32()
    assert table.column("f_int64").to_pylist() == [1, None]
