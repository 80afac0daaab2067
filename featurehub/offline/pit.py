"""Point-in-time join of the offline store: the hot path that builds training sets.

For each entity row (join keys + timestamp t) and each feature view, the value returned is the
one the online store could have served at t: the view row with the same keys and the greatest
event_timestamp e <= t (and e > t - ttl), among rows already written at t (created_timestamp
<= t) unless `created_cutoff=False`. docs/point-in-time.md states every rule with an example.

Why not one SQL statement: a range join "keys equal and e <= t" followed by ROW_NUMBER makes
every entity row meet every older row of its key (100x the data at 100 rows per key: 46 s for
10M rows here), and DuckDB's ASOF JOIN cannot take the created-timestamp rule or a TTL and
still sorts the full rows. So, per view, in three steps:

1. Search (narrow). DuckDB reads only (keys, event, created) of the view's rows, turns the keys
   into a dense integer id (the distinct keys of the entity table; rows of other keys drop out)
   and packs (id, time) into one int64, once with the event time and, with the cutoff, once with
   the time the row became known, max(event, created). numpy sorts both arrays (its int64 sort is
   several times faster than a sort with payload) and, for each distinct query (id, t), counts
   the rows with e <= t and the rows known at t. If every row with e <= t was known, the
   winner's event time is the greatest of them; if `late` of them were not yet known, it is one
   of the last `late + 1` event times, all of which become candidates. The TTL prunes candidates
   (it only bounds the winner's age). Queries this cannot settle (many late rows, or times too
   old for the packing) get an exact range join of their own.
2. Fetch (wide). The (keys, candidate event time) pairs join the view on equality, which reads
   the feature columns of those rows only. A query with several matching rows (several
   candidates, or rows sharing an event time) keeps the first by `_winner_order`.
3. The feature columns, one row per entity row, are appended to the entity table, which is
   never converted: its columns, order, duplicates and types come back unchanged.

The view relation is evaluated twice, so it must be deterministic (no sampling, no random()).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

import duckdb
import numpy as np
import pyarrow as pa

from featurehub.definitions import FeatureViewProjection

EVENT_TIMESTAMP = "event_timestamp"
CREATED_TIMESTAMP = "created_timestamp"

# Internal column names: the prefix keeps them apart from user columns (checked in _check_views).
_RESERVED = "__featurehub_pit"
_ROW = f"{_RESERVED}_row"
_ID = f"{_RESERVED}_id"
_GROUP = f"{_RESERVED}_group"
_TIME = f"{_RESERVED}_t"
_EVENT = f"{_RESERVED}_e"
_CREATED = f"{_RESERVED}_c"
_TIMESTAMP_TZ = "TIMESTAMP WITH TIME ZONE"
_US_PER_UNIT = {"s": 1_000_000, "ms": 1_000, "us": 1, "ns": None}
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_ONE_BATCH = 1 << 40  # rows per Arrow batch fetched from DuckDB: in practice, all of them


@dataclass(frozen=True)
class ViewQuery:
    """One feature view's part of a point-in-time join."""

    name: str  # view name, used for full feature names "view__feature"
    join_keys: tuple[str, ...]  # columns present both in the entity table and in the view data
    features: tuple[str, ...]  # feature columns to return
    relation: str  # a DuckDB SQL table expression yielding the view's rows
    ttl: timedelta | None = None  # None = unbounded
    # Features that break exact (event, created) ties, greatest first: all of the view's, in
    # schema order, so the answer does not depend on which features were asked for and
    # matches the online store's choice. Empty: the requested features.
    tie_features: tuple[str, ...] = ()

    @classmethod
    def of(cls, projection: FeatureViewProjection, relation: str) -> ViewQuery:
        """The query of `projection` over the view's offline `relation`: its keys, the
        requested features, its TTL, and all of its features to break ties."""
        view = projection.view
        return cls(
            name=view.name,
            join_keys=tuple(view.join_keys),
            features=tuple(projection.features),
            relation=relation,
            ttl=view.ttl,
            tie_features=tuple(view.feature_names),
        )

    @property
    def tie_order(self) -> tuple[str, ...]:
        return self.tie_features or self.features


def point_in_time_join(
    con: duckdb.DuckDBPyConnection,
    entity: pa.Table,
    views: list[ViewQuery],
    *,
    timestamp_column: str = "event_timestamp",
    full_feature_names: bool = False,
    created_cutoff: bool = True,
) -> pa.Table:
    """Append to `entity` the point-in-time correct features of every view, in view order.

    Output: the entity columns unchanged and in order, then each view's features named
    `feature` (or `view__feature` with full_feature_names). Rows without a candidate get nulls.
    """
    _check_views(entity, views, timestamp_column)
    names = output_names(entity.column_names, views, full_feature_names=full_feature_names)
    times = entity_times_us(entity.column(timestamp_column))
    with _Registry(con) as registry:
        keys_table = registry.add("entity", _entity_keys(entity, views))
        indexes: dict[tuple[str, ...], _KeyIndex] = {}
        for view, view_names in zip(views, names, strict=True):
            if view.join_keys not in indexes:
                indexes[view.join_keys] = _index_keys(
                    registry, keys_table, view.join_keys, times, entity
                )
            features = _join_view(registry, view, indexes[view.join_keys], created_cutoff)
            for name, column in zip(view_names, features.columns, strict=True):
                entity = entity.append_column(name, column)
    return entity


def output_names(
    entity_columns: Sequence[str], views: Sequence[ViewQuery], *, full_feature_names: bool
) -> list[list[str]]:
    """Output column name of every feature, per view; a name used twice is a ValueError."""
    names = [
        [f"{view.name}__{feature}" if full_feature_names else feature for feature in view.features]
        for view in views
    ]
    seen = set(entity_columns)
    for view, view_names in zip(views, names, strict=True):
        for name in view_names:
            if name in seen:
                raise ValueError(_clash_message(name, view, entity_columns, full_feature_names))
            seen.add(name)
    return names


def _clash_message(
    name: str, view: ViewQuery, entity_columns: Sequence[str], full_feature_names: bool
) -> str:
    """Why an output name is taken, and the way out."""
    where = "an entity column" if name in entity_columns else "another requested feature"
    if full_feature_names:
        return f"output column {name!r} of view {view.name!r} is also {where}; rename one of them"
    return (
        f"feature {name!r} of view {view.name!r} clashes with {where} of the same name; "
        "use full_feature_names=True to name features 'view__feature'"
    )


def entity_times_us(column: pa.ChunkedArray | pa.Array) -> np.ma.MaskedArray:
    """Entity timestamps as UTC microseconds since the epoch, masked where null.

    Arrow stores a zoned timestamp as UTC already and a naive one as its wall time, so the raw
    integers are the UTC instants with naive times taken as UTC; a date is midnight UTC at its
    start. Nanoseconds are floored: with microsecond feature times, e <= t holds exactly when
    e <= floor(t) (same for created).
    """
    if pa.types.is_date(column.type):  # a day is its first instant, midnight UTC
        column = column.cast(pa.timestamp("us"))
    if not pa.types.is_timestamp(column.type):
        raise TypeError(f"the entity timestamp column must be a timestamp, not {column.type}")
    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks() if column.num_chunks else pa.array([], column.type)
    raw = column.cast(pa.int64())
    values = raw.fill_null(0).to_numpy()
    factor = _US_PER_UNIT[column.type.unit]
    values = values // 1_000 if factor is None else values * factor
    return np.ma.MaskedArray(values, mask=raw.is_null().to_numpy(zero_copy_only=False))


def _check_views(entity: pa.Table, views: Sequence[ViewQuery], timestamp_column: str) -> None:
    """Fail early, with the column at fault, before any work is done."""
    if timestamp_column not in entity.column_names:
        raise ValueError(f"entity table has no timestamp column {timestamp_column!r}")
    for view in views:
        if not view.join_keys:
            raise ValueError(f"view {view.name!r} has no join keys")
        missing = [key for key in view.join_keys if key not in entity.column_names]
        if missing:
            raise ValueError(f"entity table lacks join key(s) {missing} of view {view.name!r}")
        if any(column.startswith(_RESERVED) for column in view.join_keys + view.features):
            raise ValueError(f"column names starting with {_RESERVED!r} are reserved")


def _entity_keys(entity: pa.Table, views: Sequence[ViewQuery]) -> pa.Table:
    """The only entity columns DuckDB sees: the join keys and a row number (labels stay out)."""
    keys = list(dict.fromkeys(key for view in views for key in view.join_keys))
    columns = {key: entity.column(key) for key in keys}
    columns[_ROW] = _positions(entity.num_rows)
    return pa.table(columns)


# --- DuckDB plumbing -------------------------------------------------------------------------


class _Registry:
    """Registers Arrow tables under names no user table can have, and always unregisters them."""

    def __init__(self, con: duckdb.DuckDBPyConnection) -> None:
        self.con = con
        self._token = uuid.uuid4().hex
        self._names: list[str] = []

    def __enter__(self) -> _Registry:
        return self

    def __exit__(self, *exc: object) -> None:
        for name in reversed(self._names):
            self.con.unregister(name)
        self._names.clear()

    def add(self, label: str, table: pa.Table) -> str:
        """Register `table` and return its (quoted) SQL name."""
        name = f"{_RESERVED}_{self._token}_{len(self._names)}_{label}"
        self.con.register(name, table)
        self._names.append(name)
        return _quote(name)

    @contextmanager
    def temporary(self, label: str, table: pa.Table) -> Iterator[str]:
        """Register `table` for the duration of a block (big intermediate tables)."""
        name = self.add(label, table)
        try:
            yield name
        finally:
            raw = self._names.pop()
            self.con.unregister(raw)

    def arrow(self, sql: str) -> pa.Table:
        """Run `sql` and fetch the result as Arrow (to_arrow_table avoids a copy in DuckDB 2).

        One batch for the whole result: its columns then convert to numpy without a copy, where
        77 batches of the default size took 0.9 s to concatenate for a 10M-row column.
        """
        return self.con.sql(sql).to_arrow_table(_ONE_BATCH)


def _quote(name: str) -> str:
    """A SQL identifier, whatever characters the name holds."""
    return '"' + name.replace('"', '""') + '"'


def _keys_equal(left: str, right: str, keys: Sequence[str]) -> str:
    """Join condition: all key columns equal (SQL equality: a null key matches nothing)."""
    return " AND ".join(f"{left}.{_quote(k)} = {right}.{_quote(k)}" for k in keys)


# --- keys and queries ------------------------------------------------------------------------


@dataclass(frozen=True)
class _Queries:
    """The distinct (key id, t) pairs of the entity rows that can match, sorted by (id, t).

    Entity rows sharing keys and time share the answer, so each pair is searched once;
    `group_of_row` maps every entity row to its pair (-1: null key or time, never a match).
    """

    ids: np.ndarray
    times: np.ndarray
    group_of_row: np.ndarray

    @property
    def count(self) -> int:
        return int(self.ids.size)


@dataclass(frozen=True)
class _KeyIndex:
    """Dense integer ids of the distinct non-null entity keys of one join-key tuple.

    `arrow` is the (keys..., id) table with id = row position, `table` its registered name.
    One integer per key makes the search cheap whatever the key columns are.
    """

    join_keys: tuple[str, ...]
    arrow: pa.Table
    table: str
    queries: _Queries
    offset: int | None = None  # integer key: id = key - offset, with no join to find it

    @property
    def count(self) -> int:
        return int(self.arrow.num_rows)


def _index_keys(
    registry: _Registry,
    entity_keys: str,
    join_keys: tuple[str, ...],
    times: np.ma.MaskedArray,
    entity: pa.Table,
) -> _KeyIndex:
    """Number the distinct key tuples in DuckDB (so they compare as in the later joins), label
    every entity row with its id and group the rows into queries."""
    integer = _integer_key_index(registry, join_keys, times, entity)
    if integer is not None:
        return integer
    cols = ", ".join(_quote(k) for k in join_keys)
    not_null = " AND ".join(f"{_quote(k)} IS NOT NULL" for k in join_keys)
    distinct = registry.arrow(f"SELECT DISTINCT {cols} FROM {entity_keys} WHERE {not_null}")
    distinct = distinct.append_column(_ID, _positions(distinct.num_rows))
    table = registry.add("keys", distinct)
    labels = registry.arrow(
        f"SELECT e.{_ROW}, k.{_ID} FROM {entity_keys} AS e JOIN {table} AS k "
        f"ON {_keys_equal('e', 'k', join_keys)}"
    )
    ids = np.full(times.size, -1, dtype=np.int64)
    ids[labels.column(0).to_numpy()] = labels.column(1).to_numpy()
    return _KeyIndex(join_keys, distinct, table, _group_queries(ids, times))


# An integer key numbers itself (id = key - smallest key) when its range is at most this many
# times its distinct count (plus slack): the search then reads the key column as it is.
_RANGE_PER_KEY = 4
_RANGE_SLACK = 1 << 16
_INTEGER_TYPES = frozenset(
    {"TINYINT", "SMALLINT", "INTEGER", "BIGINT", "UTINYINT", "USMALLINT", "UINTEGER", "UBIGINT"}
)


def _integer_key_index(
    registry: _Registry, join_keys: tuple[str, ...], times: np.ma.MaskedArray, entity: pa.Table
) -> _KeyIndex | None:
    """The index of a single integer join key with a dense enough range, or None.

    Ids are key - smallest key, so the search computes them with a subtraction instead of a
    hash join of every view row against the distinct keys; ids of keys the entity table does
    not hold are never searched."""
    if len(join_keys) != 1:
        return None
    column = entity.column(join_keys[0])
    if not _fits_int64(column.type) or column.null_count == len(column):
        return None
    values = column.cast(pa.int64()).combine_chunks()
    present = values.is_valid().to_numpy(zero_copy_only=False)
    numbers = values.fill_null(0).to_numpy()
    low, high = int(numbers[present].min()), int(numbers[present].max())
    span = high - low + 1
    distinct = np.unique(numbers[present]).size
    if span > _RANGE_PER_KEY * distinct + _RANGE_SLACK:
        return None
    ids = np.where(present, numbers - low, -1)
    arrow = pa.table(
        {
            join_keys[0]: pa.array(np.arange(low, high + 1, dtype=np.int64)),
            _ID: _positions(span),
        }
    )
    return _KeyIndex(join_keys, arrow, "", _group_queries(ids, times), offset=low)


def _group_queries(ids: np.ndarray, times: np.ma.MaskedArray) -> _Queries:
    """Sort the matchable entity rows by (id, t) and give each distinct pair a group number."""
    rows = np.flatnonzero((ids >= 0) & ~np.ma.getmaskarray(times))
    rows = rows[_order_by_id_and_time(ids[rows], times.data[rows])]
    row_ids, row_times = ids[rows], times.data[rows]
    first = np.ones(rows.size, dtype=bool)
    first[1:] = (row_ids[1:] != row_ids[:-1]) | (row_times[1:] != row_times[:-1])
    group_of_row = np.full(ids.size, -1, dtype=np.int64)
    group_of_row[rows] = np.cumsum(first) - 1
    return _Queries(row_ids[first], row_times[first], group_of_row)


def _order_by_id_and_time(ids: np.ndarray, times: np.ndarray) -> np.ndarray:
    """Permutation sorting by (id, time): one argsort of id * span + time when that fits in
    int64 (4x faster than np.lexsort), else np.lexsort."""
    if ids.size == 0:
        return np.zeros(0, dtype=np.int64)
    low = int(times.min())
    span = int(times.max()) - low + 1
    if int(ids.max()) < (1 << 62) // span:
        return np.argsort(ids * span + (times - low))
    return np.lexsort((times, ids))


# --- search ----------------------------------------------------------------------------------

# A query with this many rows "event passed but not yet created" goes to the exact range join.
_MAX_LATE = 16


@dataclass(frozen=True)
class _Packing:
    """(key id, time) packed in one int64 so that numpy's fast sort orders by both.

    The id takes the high bits, the time the `shift` low bits as (time - floor + 1), with 0 for
    every time below `floor`: such rows still count (they are old enough for every query) but
    their exact time is lost, so a query whose answer may be one of them is settled exactly
    elsewhere. floor = latest query time - 2**shift + 2: 2**46 us is 2.2 years at 100k keys.
    """

    shift: int
    floor: int

    @classmethod
    def fit(cls, id_count: int, latest: int) -> _Packing:
        shift = 63 - max(1, (id_count - 1).bit_length())
        return cls(shift, latest - (1 << shift) + 2)

    def sql(self, id_sql: str, time_sql: str) -> str:
        return f"(({id_sql} << {self.shift}) | greatest({time_sql} - ({self.floor - 1}), 0))"

    def pack(self, ids: np.ndarray, times: np.ndarray) -> np.ndarray:
        return (ids << self.shift) | np.maximum(times - (self.floor - 1), 0)

    def first_of(self, ids: np.ndarray) -> np.ndarray:
        """The smallest packed value of each id."""
        return ids << self.shift

    def time_part(self, packed: np.ndarray) -> np.ndarray:
        return packed & ((1 << self.shift) - 1)


@dataclass(frozen=True)
class _Plan:
    """What the search decided: candidate (query group, event time) pairs to fetch, and the
    groups to settle with an exact range join instead."""

    groups: np.ndarray
    events: np.ndarray
    slow: np.ndarray


def _sorted_rows(
    registry: _Registry,
    view: ViewQuery,
    keys: _KeyIndex,
    packing: _Packing,
    created_cutoff: bool,
    types: dict[str, str],
) -> tuple[np.ndarray, np.ndarray | None]:
    """Packed (id, event) of the rows an entity row could use, sorted; with the cutoff also
    packed (id, known-at time), sorted. Rows of other keys or beyond every query drop out."""
    event, created = f"f.{_quote(EVENT_TIMESTAMP)}", f"f.{_quote(CREATED_TIMESTAMP)}"
    queries = keys.queries
    latest = int(queries.times.max())
    filters = [_time_filter(event, "<=", latest, types[EVENT_TIMESTAMP])]
    columns = [packing.sql(f"k.{_ID}", f"epoch_us({event})")]
    if created_cutoff:
        filters.append(_time_filter(created, "<=", latest, types[CREATED_TIMESTAMP]))
        columns.append(packing.sql(f"k.{_ID}", f"epoch_us(greatest({event}, {created}))"))
    if view.ttl is not None:
        oldest = int(queries.times.min()) - _micros(view.ttl)
        filters.append(_time_filter(event, ">", oldest, types[EVENT_TIMESTAMP]))
    if keys.offset is None:
        source = f"{view.relation} AS f JOIN {keys.table} AS k ON " + _keys_equal(
            "f", "k", view.join_keys
        )
    else:  # integer key: the id is the key minus the smallest one, computed in the scan
        if types[view.join_keys[0]] not in _INTEGER_TYPES:
            raise ValueError(
                f"view {view.name!r}: join key {view.join_keys[0]!r} is "
                f"{types[view.join_keys[0]]} in the view but an integer in the entity table"
            )
        key = f"f.{_quote(view.join_keys[0])}"
        source = f"(SELECT *, {key} - {keys.offset} AS {_ID} FROM {view.relation} AS f) AS f"
        filters.append(f"{key} BETWEEN {keys.offset} AND {keys.offset + keys.count - 1}")
        columns = [column.replace(f"k.{_ID}", f"f.{_ID}") for column in columns]
    table = registry.arrow(
        f"SELECT {', '.join(columns)} FROM {source} WHERE {' AND '.join(filters)}"
    )
    # numpy releases the GIL while sorting: two threads sort the two arrays at once.
    with ThreadPoolExecutor(max_workers=2) as pool:
        sorted_columns = list(pool.map(_sorted_numpy, table.columns))
    return sorted_columns[0], (sorted_columns[1] if created_cutoff else None)


def _sorted_numpy(column: pa.ChunkedArray) -> np.ndarray:
    """An int64 column as a sorted numpy array (sorted in place when the array is ours)."""
    values = column.to_numpy()
    if not values.flags.writeable:
        return np.sort(values)
    values.sort()
    return values


def _time_filter(column: str, op: str, micros: int, sql_type: str) -> str:
    """`column op instant`, as a plain comparison with a typed literal when the column type
    allows (so DuckDB can skip row groups by their statistics), else on epoch microseconds."""
    if sql_type == _TIMESTAMP_TZ:
        try:
            instant = _EPOCH + timedelta(microseconds=micros)
        except OverflowError:
            pass
        else:
            return f"{column} {op} TIMESTAMPTZ '{instant.isoformat(' ', 'microseconds')}'"
    return f"epoch_us({column}) {op} {micros}"


def _micros(delta: timedelta) -> int:
    """Exact microseconds of a timedelta (no float rounding)."""
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def _plan(
    events: np.ndarray,
    known: np.ndarray | None,
    packing: _Packing,
    queries: _Queries,
    ttl: timedelta | None,
) -> _Plan:
    """Candidate event times of every query group, from the sorted packed arrays.

    Queries are sorted too, so every searchsorted walks its array once. For a query (id, t):
    `end` - `start` rows of the id have e <= t, `seen` of them were known at t and `late` were
    not. The winner is the known row with the greatest event time, so it is among the last
    late + 1 rows before `end`: those event times are the candidates.
    """
    packed = packing.pack(queries.ids, queries.times)
    start = np.searchsorted(events, packing.first_of(queries.ids), side="left")
    end = np.searchsorted(events, packed, side="right")
    known_end = end if known is None else np.searchsorted(known, packed, side="right")
    seen, late = known_end - start, end - known_end
    exact = queries.times >= packing.floor
    settle = exact & (seen > 0) & (late < _MAX_LATE)
    slow = ~exact | ((seen > 0) & (late >= _MAX_LATE))
    groups, offsets = _candidate_pairs(settle, late)
    positions = end[groups] - 1 - offsets
    candidates = events[positions]
    too_old = packing.time_part(candidates) == 0
    slow[groups[too_old]] = True
    keep = ~slow[groups]
    # Neighbours with the same event time are the same candidate: the fetch reads all its rows.
    keep[1:] &= ~((groups[1:] == groups[:-1]) & (candidates[1:] == candidates[:-1]))
    event_us = packing.time_part(candidates) + (packing.floor - 1)
    if ttl is not None:
        keep &= event_us > queries.times[groups] - _micros(ttl)
    return _Plan(groups[keep], event_us[keep], np.flatnonzero(slow))


def _candidate_pairs(settle: np.ndarray, late: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(group, offset) for offset 0..late of each settled group, grouped by group."""
    counts = np.where(settle, late + 1, 0)
    groups = np.repeat(np.arange(settle.size), counts)
    starts = np.cumsum(counts) - counts
    offsets = np.arange(groups.size) - np.repeat(starts, counts)
    return groups, offsets


# --- fetch -----------------------------------------------------------------------------------


def _winner_order(view: ViewQuery, event: str, created: str, alias: str) -> str:
    """Order of a query's candidate rows, best first: the greatest event time, then the greatest
    created time, then the greatest value of each tie feature in order, nulls last (so a row
    with a value beats one without). Deterministic whatever the file and row order."""
    features = [f"{alias}.{_quote(feature)} DESC NULLS LAST" for feature in view.tie_order]
    return ", ".join([f"{event} DESC", f"{created} DESC", *features])


def _query_table(keys: _KeyIndex, groups: np.ndarray, **columns: np.ndarray) -> pa.Table:
    """Key columns of the given query groups, plus their group number and extra columns."""
    table = keys.arrow.take(pa.array(keys.queries.ids[groups])).drop_columns([_ID])
    table = table.append_column(_GROUP, pa.array(groups, pa.int64()))
    for name, values in columns.items():
        table = table.append_column(name, pa.array(values, pa.int64()))
    return table


def _fetch_candidates(
    registry: _Registry, view: ViewQuery, keys: _KeyIndex, plan: _Plan, created_cutoff: bool
) -> pa.Table:
    """(group, event, created, features...) of the rows with a candidate's keys and event time
    (and known at the query's time, with the cutoff)."""
    event, created = f"f.{_quote(EVENT_TIMESTAMP)}", f"f.{_quote(CREATED_TIMESTAMP)}"
    queries = keys.queries
    pairs = _query_table(
        keys, plan.groups, **{_EVENT: plan.events, _TIME: queries.times[plan.groups]}
    )
    cutoff = f" AND epoch_us({created}) <= w.{_TIME}" if created_cutoff else ""
    with registry.temporary("candidates", pairs) as name:
        return registry.arrow(
            f"SELECT w.{_GROUP}, epoch_us({event}) AS {_EVENT}, epoch_us({created}) AS "
            f"{_CREATED}, {_feature_list(view)} FROM {view.relation} AS f JOIN {name} AS w "
            f"ON {_keys_equal('f', 'w', view.join_keys)} "
            f"AND epoch_us({event}) = w.{_EVENT}{cutoff}"
        )


def _fetch_slow(
    registry: _Registry, view: ViewQuery, keys: _KeyIndex, groups: np.ndarray, created_cutoff: bool
) -> pa.Table:
    """The winning row of each given query group by a plain range join: exact in every case,
    fast only for few groups (the rare ones the search could not settle)."""
    event, created = f"f.{_quote(EVENT_TIMESTAMP)}", f"f.{_quote(CREATED_TIMESTAMP)}"
    queries = _query_table(keys, groups, **{_TIME: keys.queries.times[groups]})
    conditions = [_keys_equal("f", "q", view.join_keys), f"epoch_us({event}) <= q.{_TIME}"]
    if created_cutoff:
        conditions.append(f"epoch_us({created}) <= q.{_TIME}")
    if view.ttl is not None:
        conditions.append(f"epoch_us({event}) > q.{_TIME} - {_micros(view.ttl)}")
    return _best_per_group(registry, view, queries, conditions)


def _fetch_ties(registry: _Registry, view: ViewQuery, keys: _KeyIndex, rows: pa.Table) -> pa.Table:
    """The best row of each group among `rows` (several rows per group, all at the group's
    best event time), when the tie features are not all fetched: their rows are read again
    with every tie feature and ranked by them."""
    event, created = f"f.{_quote(EVENT_TIMESTAMP)}", f"f.{_quote(CREATED_TIMESTAMP)}"
    times = {name: rows.column(name).to_numpy() for name in (_EVENT, _CREATED)}
    queries = _query_table(keys, rows.column(_GROUP).to_numpy(), **times)
    conditions = [
        _keys_equal("f", "q", view.join_keys),
        f"epoch_us({event}) = q.{_EVENT}",
        f"epoch_us({created}) = q.{_CREATED}",
    ]
    return _best_per_group(registry, view, queries, conditions)


def _best_per_group(
    registry: _Registry, view: ViewQuery, queries: pa.Table, conditions: list[str]
) -> pa.Table:
    """(group, event, created, features...) of the best view row (by `_winner_order`) joining
    each query group's row of `queries` (alias q) on `conditions` (the view is f)."""
    event, created = f"f.{_quote(EVENT_TIMESTAMP)}", f"f.{_quote(CREATED_TIMESTAMP)}"
    with registry.temporary("queries", queries) as name:
        return registry.arrow(
            f"SELECT q.{_GROUP}, epoch_us({event}) AS {_EVENT}, epoch_us({created}) AS "
            f"{_CREATED}, {_feature_list(view)} FROM {view.relation} AS f JOIN {name} AS q "
            f"ON {' AND '.join(conditions)} QUALIFY row_number() OVER (PARTITION BY "
            f"q.{_GROUP} ORDER BY {_winner_order(view, event, created, 'f')}) = 1"
        )


def _feature_list(view: ViewQuery) -> str:
    return ", ".join(f"f.{_quote(feature)}" for feature in view.features)


def _one_per_group(
    registry: _Registry, view: ViewQuery, keys: _KeyIndex, rows: pa.Table
) -> pa.Table:
    """Keep the best row of each group. Most groups have one row; only the others go through
    DuckDB's window (sorting all rows by every feature would cost more than the join)."""
    groups = rows.column(_GROUP).to_numpy()
    shared = np.bincount(groups)[groups] > 1 if groups.size else np.zeros(0, dtype=bool)
    if not shared.any():
        return rows
    event, created = f"f.{_EVENT}", f"f.{_CREATED}"
    with registry.temporary("ties", rows.filter(pa.array(shared))) as name:
        if set(view.tie_order) <= set(view.features):
            best = registry.arrow(
                f"SELECT * FROM {name} AS f QUALIFY row_number() OVER (PARTITION BY "
                f"f.{_GROUP} ORDER BY {_winner_order(view, event, created, 'f')}) = 1"
            )
        else:  # the rows at each group's best (event, created), to rank by all tie features
            tied = registry.arrow(
                f"SELECT * FROM {name} AS f QUALIFY rank() OVER "
                f"(PARTITION BY f.{_GROUP} ORDER BY {event} DESC, {created} DESC) = 1"
            )
            best = _fetch_ties(registry, view, keys, tied)
    return pa.concat_tables([rows.filter(pa.array(~shared)), best.cast(rows.schema)])


# --- one view --------------------------------------------------------------------------------


def _join_view(
    registry: _Registry, view: ViewQuery, keys: _KeyIndex, created_cutoff: bool
) -> pa.Table:
    """The view's feature columns for every entity row (nulls where nothing qualifies)."""
    types = _relation_types(registry, view)
    queries = keys.queries
    plan = _Plan(*(np.zeros(0, dtype=np.int64),) * 3)
    if queries.count:
        packing = _Packing.fit(keys.count, int(queries.times.max()))
        events, known = _sorted_rows(registry, view, keys, packing, created_cutoff, types)
        plan = _plan(events, known, packing, queries, view.ttl)
        del events, known
    found = [_fetch_candidates(registry, view, keys, plan, created_cutoff)]
    if plan.slow.size:
        found.append(_fetch_slow(registry, view, keys, plan.slow, created_cutoff))
    rows = pa.concat_tables([found[0], *(t.cast(found[0].schema) for t in found[1:])])
    winners = _one_per_group(registry, view, keys, rows)
    return _scatter(winners, queries, view.features)


def _relation_types(registry: _Registry, view: ViewQuery) -> dict[str, str]:
    """Column types of the view relation (binding only), checking every needed column is there."""
    relation = registry.con.sql(f"SELECT * FROM {view.relation} AS f LIMIT 0")
    types = dict(zip(relation.columns, (str(t) for t in relation.types), strict=True))
    needed = (*view.join_keys, EVENT_TIMESTAMP, CREATED_TIMESTAMP, *view.features)
    missing = [column for column in needed if column not in types]
    if missing:
        raise ValueError(f"view {view.name!r}: relation has no column(s) {missing}")
    return types


def _positions(count: int) -> pa.Array:
    """0..count-1 as an int64 Arrow array."""
    return pa.array(np.arange(count, dtype=np.int64))


def _scatter(winners: pa.Table, queries: _Queries, features: Sequence[str]) -> pa.Table:
    """One row per entity row: its query group's winner, or nulls."""
    where = np.full(queries.count + 1, -1, dtype=np.int64)  # the extra slot catches group -1
    where[winners.column(_GROUP).to_numpy()] = np.arange(winners.num_rows, dtype=np.int64)
    index = where[queries.group_of_row]
    missing = index < 0
    take = pa.array(np.where(missing, 0, index), mask=missing)
    return winners.select(list(features)).take(take)


def _fits_int64(arrow_type: pa.DataType) -> bool:
    """Integer types whose every value is an int64 (not uint64)."""
    return pa.types.is_integer(arrow_type) and arrow_type != pa.uint64()
