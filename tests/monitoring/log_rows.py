"""A logged row of either format as four dicts (keys, values, statuses, event times), so that
tests state what was logged once, whatever format wrote it."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import orjson

from featurehub.monitoring.log_format import EVENT_TIMESTAMP, KEY, STATUS, V1_COLUMNS, VALUE

KINDS = dict(zip((KEY, VALUE, STATUS, EVENT_TIMESTAMP), V1_COLUMNS, strict=True))


def record(row: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """`row` (a dict of the log's columns) as {entity_keys, feature_values, statuses,
    event_timestamps}: name -> value, event times as aware datetimes; keys and features the
    row's request did not have (null keys and statuses in format 2) left out."""
    if row.get("entity_keys") is not None:  # format 1: JSON text
        decoded = {kind: orjson.loads(row[kind]) for kind in V1_COLUMNS}
        decoded["event_timestamps"] = {
            name: None if text is None else datetime.fromisoformat(text.replace("Z", "+00:00"))
            for name, text in decoded["event_timestamps"].items()
        }
        return decoded
    result: dict[str, dict[str, Any]] = {kind: {} for kind in V1_COLUMNS}
    for column, value in row.items():
        prefix, dot, name = column.partition(".")
        kind = KINDS.get(prefix + dot)
        asked = value is not None if prefix + dot == KEY else row.get(STATUS + name) is not None
        if kind is None or not asked:  # another request's key or feature (keys are not null)
            continue
        result[kind][name] = value
    return result
