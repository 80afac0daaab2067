"""The offline store contract: where materialized feature rows live for training.

Rows are stored in one normalized shape per view: its join keys, `event_timestamp`,
`created_timestamp` (both UTC, microseconds) and its features, typed as declared.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from datetime import datetime

import pyarrow as pa

from featurehub.definitions import FeatureView

EVENT_TIMESTAMP = "event_timestamp"
CREATED_TIMESTAMP = "created_timestamp"
TIMESTAMP_TYPE = pa.timestamp("us", tz="UTC")


@dataclass(frozen=True)
class WriteResult:
    view: str
    commit_id: str
    rows: int
    interval_start: datetime
    interval_end: datetime


class OfflineStore(ABC):
    """Implementations store rows so that DuckDB can read them as one relation per view.

    `write` must be atomic (all rows visible or none, also if the process is killed) and must
    replace what an earlier write stored for event times in [start, end), so re-running an
    interval never duplicates rows. `relation` returns a DuckDB table expression of the
    visible rows, or None when the view was never written.
    """

    @abstractmethod
    def write(
        self, view: FeatureView, table: pa.Table, start: datetime, end: datetime
    ) -> WriteResult: ...

    @abstractmethod
    def relation(self, view: FeatureView) -> str | None: ...


def offline_schema(view: FeatureView) -> pa.Schema:
    """The normalized Arrow schema of a view's rows in the offline store."""
    fields = []
    for entity in view.entities:
        for key in entity.join_keys:
            value_type = entity.key_types.get(key)
            fields.append(pa.field(key, value_type.arrow if value_type else pa.int64()))
    fields.append(pa.field(EVENT_TIMESTAMP, TIMESTAMP_TYPE, nullable=False))
    fields.append(pa.field(CREATED_TIMESTAMP, TIMESTAMP_TYPE, nullable=False))
    fields.extend(pa.field(f.name, f.dtype.arrow) for f in view.schema)
    return pa.schema(fields)
