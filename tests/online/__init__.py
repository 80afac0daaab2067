"""Online store tests, and the small views and row tables they share."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta, timezone
from typing import Any

import pyarrow as pa

from featurehub import Entity, FeatureView, Field, ParquetSource
from featurehub import types as t
from featurehub.offline.base import offline_schema

BASE = datetime(2026, 1, 1, tzinfo=timezone.utc)

ALL_TYPES = [
    Field("f_int64", t.Int64),
    Field("f_int32", t.Int32),
    Field("f_float64", t.Float64),
    Field("f_float32", t.Float32),
    Field("f_string", t.String),
    Field("f_bool", t.Bool),
    Field("f_bytes", t.Bytes),
    Field("f_timestamp", t.Timestamp),
]


def make_view(
    name: str = "stats",
    schema: Sequence[Field] = (Field("value", t.Int64), Field("score", t.Float64)),
    keys: Sequence[tuple[str, t.ValueType]] = (("driver_id", t.Int64),),
) -> FeatureView:
    """A view with one entity per join key in `keys` (name, type)."""
    entities = [Entity(name=f"e_{key}", join_keys=[key], value_type=vt) for key, vt in keys]
    return FeatureView(
        name=name,
        source=ParquetSource(path="unused.parquet"),
        schema=list(schema),
        entities=entities,
    )


def at(hours: float) -> datetime:
    return BASE + timedelta(hours=hours)


def make_rows(view: FeatureView, rows: Sequence[dict[str, Any]]) -> pa.Table:
    """A table in `offline_schema(view)`; a row gives its keys, features (missing -> null) and
    `event`/`created` in hours after BASE (created defaults to event)."""
    schema = offline_schema(view)
    columns: dict[str, list[Any]] = {name: [] for name in schema.names}
    for row in rows:
        event = row.get("event", 0)
        for name in schema.names:
            if name == "event_timestamp":
                columns[name].append(at(event))
            elif name == "created_timestamp":
                columns[name].append(at(row.get("created", event)))
            else:
                columns[name].append(row.get(name))
    return pa.table(columns, schema=schema)
