"""Online look-ups: entity keys in, the latest feature values out, with TTL applied at read
time exactly as the offline join applies it at the same time.

The response is columnar, like Feast's: each join key and feature maps to a list of values,
with a status per value (present, not_found, expired) and its event timestamp.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

import pandas as pd

from featurehub import types
from featurehub.definitions import FeatureView, FeatureViewProjection
from featurehub.errors import FeaturehubError, did_you_mean
from featurehub.online.base import OnlineRow, OnlineStore

PRESENT = "present"
NOT_FOUND = "not_found"
EXPIRED = "expired"


class EntityKeyError(FeaturehubError, ValueError):
    """An entity row lacks a join key, or holds a value of the wrong type."""


@dataclass
class OnlineResponse:
    """Columnar feature values: `to_dict()` maps names to lists, one item per entity row."""

    keys: dict[str, list[Any]]
    values: dict[str, list[Any]] = field(default_factory=dict)
    statuses: dict[str, list[str]] = field(default_factory=dict)
    event_timestamps: dict[str, list[datetime | None]] = field(default_factory=dict)

    def to_dict(self, include_metadata: bool = False) -> dict[str, list[Any]]:
        """Join keys and features -> values; with metadata also `<feature>__status` and
        `<feature>__event_timestamp`."""
        result: dict[str, list[Any]] = {**self.keys, **self.values}
        if include_metadata:
            for name in self.values:
                result[f"{name}__status"] = self.statuses[name]
                result[f"{name}__event_timestamp"] = self.event_timestamps[name]
        return result

    def to_pandas(self, include_metadata: bool = False) -> pd.DataFrame:
        return pd.DataFrame(self.to_dict(include_metadata))


def _key_ok(expected: types.ValueType | None, value: Any) -> bool:
    if value is None or expected is None:
        return True
    if expected in (types.Int64, types.Int32):
        return isinstance(value, int) and not isinstance(value, bool)
    if expected is types.String:
        return isinstance(value, str)
    if expected is types.Bytes:
        return isinstance(value, bytes)
    return True


def entity_keys(view: FeatureView, rows: Sequence[Mapping[str, Any]]) -> list[tuple[Any, ...]]:
    """Each row's join-key values for `view`, checked against the entities' key types.

    No coercion: "12" is not 12. A key of a view is looked up as given, so a string id
    against an integer key is an error here rather than a silent "not found".
    """
    keys = []
    for index, row in enumerate(rows):
        values = []
        for entity in view.entities:
            for key in entity.join_keys:
                if key not in row:
                    raise EntityKeyError(
                        f"entity row {index} has no {key!r}, the join key of entity "
                        f"{entity.name!r} needed by feature view {view.name!r}."
                        f"{did_you_mean(key, row)} Add it to every entity row"
                    )
                value = row[key]
                expected = entity.key_types.get(key)
                if not _key_ok(expected, value):
                    assert expected is not None
                    raise EntityKeyError(
                        f"entity row {index}: {key}={value!r} is a {type(value).__name__} but "
                        f"entity {entity.name!r} keys are {expected.name}; pass "
                        f"{'an int' if expected in (types.Int64, types.Int32) else 'a str'}"
                    )
                values.append(value)
        keys.append(tuple(values))
    return keys


def _status(row: OnlineRow | None, view: FeatureView, now: datetime) -> str:
    if row is None or row.event_timestamp > now or row.created_timestamp > now:
        return NOT_FOUND
    if view.ttl is not None and row.event_timestamp <= now - view.ttl:
        return EXPIRED
    return PRESENT


def lookup(
    store: OnlineStore,
    projections: Sequence[FeatureViewProjection],
    entity_rows: Sequence[Mapping[str, Any]],
    *,
    full_feature_names: bool = False,
    now: datetime | None = None,
) -> OnlineResponse:
    """Read every view's features for every entity row in one batch of store reads."""
    now = now or datetime.now(timezone.utc)
    requests = [(p.view, entity_keys(p.view, entity_rows), list(p.features)) for p in projections]
    rows_by_view = store.read_many(requests)
    key_names = list(dict.fromkeys(k for p in projections for k in p.view.join_keys))
    response = OnlineResponse(keys={k: [row.get(k) for row in entity_rows] for k in key_names})
    for (view, _, features), rows in zip(requests, rows_by_view, strict=True):
        statuses = [_status(row, view, now) for row in rows]
        stamps = [row.event_timestamp if row is not None else None for row in rows]
        for feature in features:
            name = f"{view.name}__{feature}" if full_feature_names else feature
            if name in response.values or name in response.keys:
                raise EntityKeyError(
                    f"feature name {name!r} appears twice in the response; pass "
                    "full_feature_names=True to name features view__feature"
                )
            response.values[name] = [
                row.values.get(feature) if row is not None and status == PRESENT else None
                for row, status in zip(rows, statuses, strict=True)
            ]
            response.statuses[name] = statuses
            response.event_timestamps[name] = stamps
    return response
