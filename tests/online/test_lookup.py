"""`lookup`: entity rows in, the columnar response out, TTL applied at read time, on both
stores."""

from __future__ import annotations

import dataclasses
from datetime import datetime, timedelta, timezone
from enum import IntEnum
from typing import Any

import pytest

from featurehub import Field
from featurehub import types as t
from featurehub.definitions import FeatureView, FeatureViewProjection
from featurehub.online import OnlineStore
from featurehub.online.lookup import (
    EXPIRED,
    NOT_FOUND,
    PRESENT,
    EntityKeyError,
    entity_keys,
    lookup,
)
from tests.online import BASE, at, make_rows, make_view

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
    response = lookup(stored, projection, [{"driver_id": None}], now=NOW)
    assert response.statuses["value"] == [NOT_FOUND]


def test_entity_keys_accept_int_subclasses_and_keep_order() -> None:
    class Driver(IntEnum):
        ONE = 1

    view = make_view(keys=[("driver_id", t.Int64), ("city", t.String)])
    rows = [{"driver_id": Driver.ONE, "city": "paris"}, {"city": "lyon", "driver_id": 2}]
    assert entity_keys(view, rows) == [(Driver.ONE, "paris"), (2, "lyon")]
    assert entity_keys(make_view(keys=[]), rows) == [(), ()]
    with pytest.raises(EntityKeyError, match="entity row 0: city=b'x' is a bytes"):
        entity_keys(view, [{"driver_id": 1, "city": b"x"}])


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
