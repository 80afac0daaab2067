"""The online store contract: the newest feature values per entity key, for serving.

Materialization writes rows in the offline store's normalized shape; the feature server reads
a handful of entity keys per request. Reads are columnar (`read_columns`, `read_many_columns`):
per key its timestamps as ints, per feature a list of values, with no object per row; `read`
and `read_many` return one `OnlineRow` per key and are built on them.

Implementations map their backend's errors to `OnlineStoreError` (mostly its subclass
`OnlineStoreUnavailable`) at the boundary, so callers catch one family.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from itertools import repeat
from types import TracebackType
from typing import Any

import pyarrow as pa

from featurehub.config import OnlineStoreConfig
from featurehub.definitions import FeatureView
from featurehub.errors import FeaturehubError

EntityKey = tuple[Any, ...]
"""Join-key values in `view.join_keys` order, e.g. (1001,) or (1001, "fr")."""

ReadRequest = tuple[FeatureView, Sequence[EntityKey], Sequence[str]]
"""(view, entity keys, feature names): one view's part of a `read_many`/`read_many_columns`."""

EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
MICROSECOND = timedelta(microseconds=1)


class OnlineStoreError(FeaturehubError):
    """The online store failed a request."""


class OnlineStoreUnavailable(OnlineStoreError):
    """The online store cannot be used now: down, timeout, wrong password, read-only replica."""


@dataclass(frozen=True, slots=True)
class OnlineRow:
    """The stored row of one entity: the requested features and the row's timestamps."""

    values: dict[str, Any]  # feature name -> Python value (None for null)
    event_timestamp: datetime  # UTC, aware
    created_timestamp: datetime  # UTC, aware


@dataclass(frozen=True, slots=True)
class ColumnarRead:
    """The stored rows of several keys, column by column, in the order of the keys.

    `event_us[i]`/`created_us[i]` are key i's row timestamps in microseconds since the epoch
    (UTC), both None when key i has no readable row. `values[feature][i]` is the Python value
    of that feature for key i: None for a null or for a key without a row (`event_us[i] is None`
    tells them apart). Features appear in the order requested.
    """

    event_us: list[int | None]
    created_us: list[int | None]
    values: dict[str, list[Any]]

    def __len__(self) -> int:
        return len(self.event_us)

    def rows(self) -> list[OnlineRow | None]:
        """One OnlineRow per key (None for a key without a row), as `OnlineStore.read` returns."""
        names = list(self.values)
        per_key = zip(*self.values.values()) if names else repeat(())  # noqa: B905
        return [
            None
            if event is None or created is None
            else OnlineRow(
                dict(zip(names, values)),  # noqa: B905
                EPOCH + MICROSECOND * event,
                EPOCH + MICROSECOND * created,
            )
            for event, created, values in zip(self.event_us, self.created_us, per_key)  # noqa: B905
        ]


class OnlineStore(ABC):
    """One project's newest feature rows per (view, entity key).

    Ordering: a row is newer than another when its (event_timestamp, created_timestamp) is
    greater, the order the offline point-in-time join uses. On an exact tie of both, the
    incoming row wins, so re-running a materialization rewrites identical values and a
    correction written with the same timestamps replaces the old one.

    Keys are typed: the int 12 and the string "12" are different entities. Values round-trip
    exactly (Float64 bit-exact, Float32 as its float32 value, Timestamp as aware UTC datetime,
    null as None). No TTL is applied here: the caller compares `event_timestamp` with the
    view's TTL at read time.

    An implementation provides `read_columns` (and overrides `read_many_columns` when its
    backend can serve several views in one round trip); `read` and `read_many` derive from them.
    """

    @classmethod
    @abstractmethod
    def from_config(cls, config: OnlineStoreConfig, project: str) -> OnlineStore:
        """Build the store for `project` from featurehub.yaml's `online_store` section."""

    @abstractmethod
    def write(self, view: FeatureView, table: pa.Table) -> int:
        """Store the newest row per entity key of `table` (`offline_schema(view)` columns, any
        order, several rows per key allowed) and return how many entity rows were stored.

        A stored row newer than the incoming one is kept (a backfill never overwrites a
        fresher value); this check is atomic against concurrent writers. Rows with a null join
        key are skipped: no read can ask for them.
        """

    @abstractmethod
    def read_columns(
        self, view: FeatureView, keys: Sequence[EntityKey], features: Sequence[str]
    ) -> ColumnarRead:
        """The stored rows of `keys` restricted to `features`, column by column, in the order of
        `keys` (duplicates included); an unknown key has None timestamps and values. Keys are not
        coerced: the caller checks them against `view.entities[i].key_types`. An unknown feature
        raises DefinitionError (even for no keys). A backend should read all keys at once."""

    def read_many_columns(self, requests: Sequence[ReadRequest]) -> list[ColumnarRead]:
        """`read_columns` for several views at once; stores override it to use one round trip."""
        return [self.read_columns(view, keys, features) for view, keys, features in requests]

    def read(
        self, view: FeatureView, keys: Sequence[EntityKey], features: Sequence[str]
    ) -> list[OnlineRow | None]:
        """`read_columns` as one OnlineRow per key (None for an unknown key)."""
        return self.read_columns(view, keys, features).rows()

    def read_many(self, requests: Sequence[ReadRequest]) -> list[list[OnlineRow | None]]:
        """`read` for several views at once, in the round trips of `read_many_columns`."""
        return [read.rows() for read in self.read_many_columns(requests)]

    @abstractmethod
    def delete_view(self, view_name: str) -> None:
        """Drop everything stored for a view of this project (when `apply` deletes it)."""

    @abstractmethod
    def write_marker(self, view_name: str, run_id: int) -> None:
        """Record that materialization run `run_id` wrote the view's rows (a greater run id
        replaces a smaller one, never the reverse).

        The markers live with the data, so a store that loses its data (a Redis restarted
        without persistence, a replaced file) loses them too: `featurehub status` and the
        feature server compare them with the registry's runs to notice it."""

    @abstractmethod
    def read_markers(self) -> dict[str, int]:
        """The latest run id recorded per view of this project."""

    @abstractmethod
    def ping(self) -> None:
        """Return when the store is reachable; raise OnlineStoreUnavailable otherwise."""

    @abstractmethod
    def close(self) -> None:
        """Release connections; the store must not be used afterwards."""

    def __enter__(self) -> OnlineStore:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()
