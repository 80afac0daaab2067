"""Brute-force point-in-time join: the rules of docs/point-in-time.md, read literally.

Plain Python over lists of dicts, one loop over entity rows and one over feature rows, no
cleverness, so that it can be trusted by reading it. The property tests compare the real join
(featurehub.offline.pit) with this on random small tables.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

Row = dict[str, Any]


@dataclass(frozen=True)
class OracleView:
    """A feature view for the oracle: its rows as dicts (keys, event/created times, features)."""

    name: str
    join_keys: tuple[str, ...]
    features: tuple[str, ...]
    rows: list[Row]
    ttl: timedelta | None = None
    tie_features: tuple[str, ...] = ()  # all of the view's features; empty: `features`

    @property
    def columns(self) -> tuple[str, ...]:
        """Every feature column the view's rows hold."""
        return tuple(dict.fromkeys((*self.tie_features, *self.features)))


def as_utc(moment: datetime | None) -> datetime | None:
    """An instant in UTC; a naive datetime is taken as UTC (the rule for entity timestamps)."""
    if moment is None:
        return None
    if moment.tzinfo is None:
        return moment.replace(tzinfo=timezone.utc)
    return moment.astimezone(timezone.utc)


def value_rank(value: Any) -> tuple[Any, ...]:
    """Sort key of one feature value in the tie-break: null lowest, NaN highest (as DuckDB
    orders floats), every other value by itself."""
    if value is None:
        return (0,)
    if isinstance(value, float) and math.isnan(value):
        return (2,)
    return (1, value)


def row_rank(row: Row, features: Sequence[str]) -> tuple[Any, ...]:
    """Which candidate wins: greatest event time, then greatest created time, then the
    greatest feature values compared one by one in the given order (the view's schema order,
    whichever features were asked for)."""
    ranks = tuple(value_rank(row[feature]) for feature in features)
    return (as_utc(row["event_timestamp"]), as_utc(row["created_timestamp"]), *ranks)


def is_candidate(
    row: Row, entity_row: Row, view: OracleView, t: datetime, created_cutoff: bool
) -> bool:
    """Whether a feature row may serve the entity row at t."""
    for key in view.join_keys:
        if entity_row[key] is None or row[key] is None or row[key] != entity_row[key]:
            return False
    event = as_utc(row["event_timestamp"])
    if event > t:
        return False
    if view.ttl is not None and event <= t - view.ttl:
        return False
    return not (created_cutoff and as_utc(row["created_timestamp"]) > t)


def winner(
    entity_row: Row, view: OracleView, timestamp_column: str, created_cutoff: bool
) -> Row | None:
    """The feature row served for one entity row, or None."""
    t = as_utc(entity_row[timestamp_column])
    if t is None:
        return None
    best: Row | None = None
    for row in view.rows:
        if not is_candidate(row, entity_row, view, t, created_cutoff):
            continue
        ties = view.tie_features or view.features
        if best is None or row_rank(row, ties) > row_rank(best, ties):
            best = row
    return best


def oracle_join(
    entity_rows: list[Row],
    views: list[OracleView],
    *,
    timestamp_column: str = "event_timestamp",
    full_feature_names: bool = False,
    created_cutoff: bool = True,
) -> list[Row]:
    """Each entity row (same order, duplicates kept) with every view's features appended."""
    result = []
    for entity_row in entity_rows:
        out = dict(entity_row)
        for view in views:
            best = winner(entity_row, view, timestamp_column, created_cutoff)
            for feature in view.features:
                name = f"{view.name}__{feature}" if full_feature_names else feature
                out[name] = None if best is None else best[feature]
        result.append(out)
    return result
