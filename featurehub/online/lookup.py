"""Online look-ups: entity keys in, the latest feature values out, with TTL applied at read
time exactly as the offline join applies it at the same time.

The response is columnar, like Feast's: each join key and feature maps to a list of values,
with a status per value (present, not_found, expired) and its event timestamp.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, TypeAlias

import numpy as np
import pandas as pd
import pyarrow as pa

from featurehub import dataframes, types
from featurehub.definitions import FeatureView, FeatureViewProjection
from featurehub.definitions import entity_keys as key_rule
from featurehub.errors import FeaturehubError, did_you_mean
from featurehub.online.base import EPOCH, MICROSECOND, ColumnarRead, OnlineStore

_UTC_MICROS = pa.timestamp("us", tz="UTC")

PRESENT = "present"
NOT_FOUND = "not_found"
EXPIRED = "expired"


class EntityKeyError(FeaturehubError, ValueError):
    """An entity row lacks a join key, or holds a value of the wrong type."""


@dataclass
class OnlineResponse:
    """Columnar feature values: `to_dict()` maps names to lists, one item per entity row.

    `event_us` holds each value's row event timestamp in microseconds since the epoch (None
    without a row); `event_timestamps` is the same as aware UTC datetimes, built on first use
    (most callers never read them, and a datetime per row costs as much as the decode)."""

    keys: dict[str, list[Any]]
    values: dict[str, list[Any]] = field(default_factory=dict)
    statuses: dict[str, list[str]] = field(default_factory=dict)
    event_us: dict[str, list[int | None]] = field(default_factory=dict)
    # (view, its features, their names in the response): the types `to_pandas` gives columns.
    sources: list[tuple[FeatureView, list[str], list[str]]] = field(
        default_factory=list, repr=False
    )
    # What was looked up: the projections (the object passed, e.g. a snapshot's, which a
    # model keeps its matrix plan for) and whether names are view__feature.
    projections: Sequence[FeatureViewProjection] = field(default=(), repr=False)
    full_feature_names: bool = False

    @functools.cached_property
    def event_timestamps(self) -> dict[str, list[datetime | None]]:
        """Feature -> each value's row event timestamp (aware UTC datetime; None without a
        row). Features of one view share one list, as they share their `event_us`."""
        built: dict[int, list[datetime | None]] = {}
        result: dict[str, list[datetime | None]] = {}
        for name, micros in self.event_us.items():
            stamps = built.get(id(micros))
            if stamps is None:
                stamps = built[id(micros)] = [
                    None if us is None else EPOCH + MICROSECOND * us for us in micros
                ]
            result[name] = stamps
        return result

    def to_dict(self, include_metadata: bool = False) -> dict[str, list[Any]]:
        """Join keys and features -> values; with metadata also `<feature>__status` and
        `<feature>__event_timestamp`."""
        result: dict[str, list[Any]] = {**self.keys, **self.values}
        if include_metadata:
            for name in self.values:
                result[f"{name}__status"] = self.statuses[name]
                result[f"{name}__event_timestamp"] = self.event_timestamps[name]
        return result

    def to_arrow(self, include_metadata: bool = False) -> pa.Table:
        """`to_dict` as an Arrow table, each column of its key's or feature's declared type,
        as `get_historical_features(...).to_arrow()` types it."""
        declared = self.declared_types()
        columns: dict[str, pa.Array] = {}
        for name, values in self.keys.items():
            columns[name] = pa.array(values, declared.get(name))
        for name, values in self.values.items():
            columns[name] = pa.array(values, declared.get(name))
        if include_metadata:
            for name in self.values:
                columns[f"{name}__status"] = pa.array(self.statuses[name], pa.string())
                micros = pa.array(self.event_us[name], pa.int64())
                columns[f"{name}__event_timestamp"] = micros.cast(_UTC_MICROS)
        return pa.table(columns)

    def to_pandas(self, include_metadata: bool = False) -> pd.DataFrame:
        """`to_dict` as a DataFrame in the dtypes of the retrieval job's `to_pandas`: integers
        and bools nullable (Int64, boolean; a missing value is pd.NA), see
        `featurehub.dataframes`."""
        return dataframes.to_pandas(self.to_arrow(include_metadata))

    def declared_types(self) -> dict[str, pa.DataType]:
        """Each join key's and feature's declared Arrow type."""
        declared: dict[str, pa.DataType] = {}
        for view, features, names in self.sources:
            for entity in view.entities:
                for key, key_type in entity.key_types.items():
                    declared.setdefault(key, key_type.arrow)
            for feature, name in zip(features, names, strict=True):
                declared[name] = view.feature(feature).dtype.arrow
        return declared


EntityRows: TypeAlias = Sequence[Mapping[str, Any]] | Mapping[str, Sequence[Any]] | pd.DataFrame
"""What `get_online_features` takes as entity rows; see `entity_rows_of`."""

_EXPECTED_SHAPE = (
    'entity rows are a list of dicts, [{"driver_id": 1001}, {"driver_id": 1002}], columns '
    'like the HTTP API\'s, {"driver_id": [1001, 1002]}, or a pandas DataFrame of join keys'
)


def entity_rows_of(entities: object) -> Sequence[Mapping[str, Any]]:
    """The entity rows of every shape `get_online_features` takes: a list of dicts (returned
    as is: each row is checked by `entity_keys`), columns (a dict of join key -> list, NumPy
    array or Series, the HTTP API's shape) or a DataFrame. Anything else raises, showing the
    expected shape: a raw TypeError from deep inside a look-up says nothing of the fix."""
    if isinstance(entities, pd.DataFrame):
        repeated = sorted({str(c) for c in entities.columns[entities.columns.duplicated()]})
        if repeated:
            raise EntityKeyError(
                f"the entity DataFrame has duplicate column(s) {repeated}; keep one of each, "
                "e.g. df = df.loc[:, ~df.columns.duplicated()]"
            )
        return _rows_of_columns({str(name): entities[name] for name in entities.columns})
    if isinstance(entities, Mapping):
        return _rows_of_columns(entities)
    if isinstance(entities, (list, tuple)):
        return entities
    raise EntityKeyError(f"entity rows cannot be {_a(entities)}: {_EXPECTED_SHAPE}")


def _a(value: object) -> str:
    """'None', 'an int', 'a str': what a value is, for messages."""
    if value is None:
        return "None"
    name = type(value).__name__
    return f"{'an' if name[0] in 'aeio' else 'a'} {name}"


def _rows_of_columns(columns: Mapping[Any, Any]) -> list[dict[str, Any]]:
    """Columnar entities -> one dict per row, values as plain Python scalars."""
    lists: dict[str, list[Any]] = {}
    for name, column in columns.items():
        if isinstance(column, (pd.Series, pd.Index, np.ndarray)):
            lists[name] = column.tolist()
        elif isinstance(column, (list, tuple)):
            lists[name] = list(column)
        else:
            raise EntityKeyError(
                f"entity column {name!r} is {_a(column)}, not a list of values: {_EXPECTED_SHAPE}"
            )
    lengths = {name: len(values) for name, values in lists.items()}
    if len(set(lengths.values())) > 1:
        counts = ", ".join(f"{name}: {count}" for name, count in lengths.items())
        raise EntityKeyError(
            f"entity columns differ in length ({counts}); give one value per entity row in "
            "every column"
        )
    names = list(lists)
    return [dict(zip(names, values, strict=True)) for values in zip(*lists.values(), strict=True)]


def entity_keys(view: FeatureView, rows: Sequence[Mapping[str, Any]]) -> list[tuple[Any, ...]]:
    """Each row's join-key values for `view`, checked by the rule the server uses
    (`featurehub.definitions.entity_keys`): no coercion, so a string id against an integer
    key is an error here rather than a silent "not found"."""
    columns: list[list[Any]] = []
    for entity in view.entities:
        for key in entity.join_keys:
            try:
                column = [row[key] for row in rows]
            except (KeyError, TypeError, IndexError):
                return _checked_keys(view, rows)  # raises, naming the first bad row
            if key_rule.first_refused(entity.key_types.get(key), column) is not None:
                return _checked_keys(view, rows)
            columns.append(column)
    if not columns:
        return [() for _ in rows]
    return list(zip(*columns))  # noqa: B905 (same length)


def _checked_keys(view: FeatureView, rows: Sequence[Mapping[str, Any]]) -> list[tuple[Any, ...]]:
    """`entity_keys` row by row: the first bad row or key raises EntityKeyError."""
    keys = []
    for index, row in enumerate(rows):
        if not isinstance(row, Mapping):
            raise EntityKeyError(
                f"entity row {index} is {_a(row)}, not a dict of join keys: {_EXPECTED_SHAPE}"
            )
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
                if not key_rule.accepts(expected, value):
                    raise EntityKeyError(_refusal(index, key, value, entity.name, expected))
                values.append(value)
        keys.append(tuple(values))
    return keys


def _refusal(
    index: int, key: str, value: Any, entity: str, expected: types.ValueType | None
) -> str:
    kinds = key_rule.describe(expected)
    if expected is not None:
        kinds = f"{expected.name} ({kinds})"
    if value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value)):
        return (
            f"entity row {index}: {key} is missing ({value!r}); entity {entity!r} keys are "
            f"{kinds} and null is not a key: drop the rows without one or fill them in"
        )
    if key_rule.is_integer_key(expected) and key_rule.is_integer(value):
        return (
            f"entity row {index}: {key}={value!r} is beyond the range of entity {entity!r} "
            f"keys, {kinds}: no stored row can match it"
        )
    return (
        f"entity row {index}: {key}={value!r} is {_a(value)} but entity {entity!r} keys are "
        f"{kinds}; pass one of those"
    )


def statuses(read: ColumnarRead, view: FeatureView, now_us: int) -> tuple[list[str], list[int]]:
    """Each key's status at `now_us` (microseconds since the epoch): not_found without a row or
    with a row from the future, expired when its event is `view.ttl` old or older, else present.
    The same comparisons as the offline join, on integers. Also the positions of the keys whose
    row exists but is not served (expired or from the future): their values are hidden."""
    oldest = now_us - view.ttl // MICROSECOND if view.ttl is not None else _NEVER
    events: list[Any] = read.event_us  # int | None: a None makes max/min raise TypeError
    created: list[Any] = read.created_us
    if not events:
        return [], []
    try:  # every key found and fresh, the usual case: three C loops
        if max(events) <= now_us and max(created) <= now_us and min(events) > oldest:
            return [PRESENT] * len(events), []
    except TypeError:  # a None among them: a key without a row
        pass
    status = [PRESENT] * len(events)
    hidden: list[int] = []
    for i, (event, stamp) in enumerate(zip(events, created)):  # noqa: B905
        if event is None:
            status[i] = NOT_FOUND
        elif event > now_us or stamp > now_us:
            status[i] = NOT_FOUND
            hidden.append(i)
        elif event <= oldest:
            status[i] = EXPIRED
            hidden.append(i)
    return status, hidden


_NEVER = -(2**64)  # older than any int64 event: no TTL


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
    now_us = (now - EPOCH) // MICROSECOND
    requests = [(p.view, entity_keys(p.view, entity_rows), list(p.features)) for p in projections]
    reads = store.read_many_columns(requests)
    key_names = list(dict.fromkeys(k for p in projections for k in p.view.join_keys))
    response = OnlineResponse(
        {k: [row.get(k) for row in entity_rows] for k in key_names},
        projections=projections,
        full_feature_names=full_feature_names,
    )
    values, states, stamps = response.values, response.statuses, response.event_us
    for (view, _, features), read in zip(requests, reads, strict=True):
        status, hidden = statuses(read, view, now_us)
        names = [f"{view.name}__{f}" for f in features] if full_feature_names else features
        columns = [read.values[feature] for feature in features]
        if hidden:  # values are served only when present: hide expired and future rows
            columns = [_hide(column, hidden) for column in columns]
        served = len(values)
        values.update(zip(names, columns))  # noqa: B905 (same length)
        if len(values) != served + len(names) or not response.keys.keys().isdisjoint(names):
            raise EntityKeyError(
                f"feature name {_repeated(names, served, response)!r} appears twice in the "
                "response; pass full_feature_names=True to name features view__feature"
            )
        response.sources.append((view, features, names))
        states.update(dict.fromkeys(names, status))
        stamps.update(dict.fromkeys(names, read.event_us))
    return response


def _hide(column: list[Any], positions: list[int]) -> list[Any]:
    hidden = list(column)
    for i in positions:
        hidden[i] = None
    return hidden


def _repeated(names: list[str], served: int, response: OnlineResponse) -> str:
    """The first of `names` that is a join key, a feature served before, or repeated."""
    seen = set(response.keys) | set(list(response.values)[:served])
    for name in names:
        if name in seen:
            return name
        seen.add(name)
    return names[0]
