"""The serving log's format: the record the server hands over and its Parquet schema.

Schema (stable; one row per served entity row):

| column | type | |
| --- | --- | --- |
| request_id | string | the response's request_id |
| row | int32 | index of the entity row in the request |
| served_at | timestamp[us, UTC] | when the request was answered |
| model_version | string, nullable | reserved for a later issue; null today |
| entity_keys | string (JSON object) | join key -> value |
| feature_values | string (JSON object) | feature name -> value (bytes as base64) |
| statuses | string (JSON object) | feature name -> present, not_found or expired |
| event_timestamps | string (JSON object) | feature name -> ISO 8601 time or null |
| source | string | who served it: "server" (the feature server) or "sdk" (`get_online_features`) |
| feature_service, date | hive partition columns | from the path |

JSON strings rather than map columns: feature values have mixed types, and one string column
per kind keeps the schema identical across services and over time. DuckDB reads them with
`feature_values->>'$.conv_rate'` or `json_extract`.

`source` was added after the first logs were written: files without it were all written by
the server. Read the log with `log_reader.read_serving_log`, which says so, rather than
globbing the files by hand.

`to_tables` runs in the log's writer process (`log_writer`), not in the server: it may hold
its GIL as long as it likes.
"""

from __future__ import annotations

import base64
import itertools
from collections.abc import Sequence
from datetime import datetime, timezone
from operator import itemgetter
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.compute as pc

if TYPE_CHECKING:
    from featurehub.online.lookup import OnlineResponse

SERVER = "server"
SDK = "sdk"
"""The values of `source`: which writer served (and logged) a row."""

AD_HOC = "ad-hoc"
"""Partition name of requests that listed features rather than naming a feature service."""

SCHEMA = pa.schema(
    [
        pa.field("request_id", pa.string(), nullable=False),
        pa.field("row", pa.int32(), nullable=False),
        pa.field("served_at", pa.timestamp("us", tz="UTC"), nullable=False),
        pa.field("model_version", pa.string()),
        pa.field("entity_keys", pa.string(), nullable=False),
        pa.field("feature_values", pa.string(), nullable=False),
        pa.field("statuses", pa.string(), nullable=False),
        pa.field("event_timestamps", pa.string(), nullable=False),
        pa.field("source", pa.string(), nullable=False),
    ]
)


class ServedAnswer(NamedTuple):
    """One answered request, as the server hands it over: the 200 answer's body as sent.

    The body (`keys`, and `features` -> `values`, `statuses`, `event_timestamps`: the API's
    columnar answer) is built for the client anyway, so keeping it costs the server nothing,
    and sending it to the writer process is a copy of bytes; a pickle of the same columns as
    Python lists held the server's GIL ~10 us per request (~40 us for 100 rows), which
    requests waited for. The writer decodes it (`decode`). A named tuple: built on every
    request, it costs a tenth of a frozen dataclass.
    """

    request_id: str
    served_at: float  # time.time()
    feature_service: str | None
    rows: int  # entity rows answered
    body: bytes
    source: str = SERVER


def decode(answer: ServedAnswer) -> ServedRequest:
    """The columns of `answer`'s body. Features of one view share their statuses and event
    timestamps (the server builds them so): equal lists of neighbouring features become one
    list again, which `to_tables` converts once."""
    body = orjson.loads(answer.body)
    values: dict[str, list[Any]] = {}
    statuses: dict[str, list[str]] = {}
    stamps: dict[str, list[Any]] = {}
    last_statuses: list[str] = []
    last_stamps: list[Any] = []
    for name, column in body["features"].items():
        values[name] = column["values"]
        if column["statuses"] != last_statuses:
            last_statuses = column["statuses"]
        if column["event_timestamps"] != last_stamps:
            last_stamps = column["event_timestamps"]
        statuses[name] = last_statuses
        stamps[name] = last_stamps
    return ServedRequest(
        answer.request_id,
        answer.served_at,
        answer.feature_service,
        body["keys"],
        values,
        statuses,
        stamps,
        answer.source,
    )


class ServedRequest(NamedTuple):
    """One answered request, columnar, not yet split by row: what `to_tables` converts."""

    request_id: str
    served_at: float  # time.time()
    feature_service: str | None
    keys: dict[str, list[Any]]
    values: dict[str, list[Any]]  # the same feature names, in the same order, in the next two
    statuses: dict[str, list[str]]
    event_timestamps: dict[str, list[Any]]  # aware datetimes, ISO 8601 strings, or None
    source: str = SERVER

    @property
    def rows(self) -> int:
        for column in self.keys.values():
            return len(column)
        return 0


def json_default(value: Any) -> Any:
    """orjson fallback: bytes as base64, as the API serves them."""
    if isinstance(value, (bytes, bytearray, memoryview)):
        return base64.b64encode(bytes(value)).decode()
    raise TypeError(f"cannot log a {type(value).__name__}")


def answer_body(
    request_id: str,
    feature_service: str | None,
    response: OnlineResponse,
    stamps: dict[str, list[Any]] | None = None,
) -> bytes:
    """The feature server's documented columnar answer of `response`, which is also what the
    log's writer decodes (`decode`): the server sends it, the SDK logs it. `stamps`, the ISO
    8601 event times per feature, default to the response's datetimes (the same text: orjson
    with OPT_UTC_Z); the server passes its cached texts."""
    statuses = response.statuses
    stamps = response.event_timestamps if stamps is None else stamps
    features: dict[str, Any] = {
        name: {"values": values, "statuses": statuses[name], "event_timestamps": stamps[name]}
        for name, values in response.values.items()
    }
    return orjson.dumps(
        {
            "request_id": request_id,
            "feature_service": feature_service,
            "keys": response.keys,
            "features": features,
        },
        default=json_default,
        option=orjson.OPT_UTC_Z,
    )


def _dumps(value: Any) -> str:
    return orjson.dumps(
        value, default=json_default, option=orjson.OPT_UTC_Z | orjson.OPT_NON_STR_KEYS
    ).decode()


Group = tuple[str, str]
"""(feature service or AD_HOC, YYYY-MM-DD): one Parquet file per group and commit."""


# -- requests to Arrow: columns first, JSON text built by Arrow kernels ---------------------


class _Columns:
    """The requests of one group: same key names, feature names and sharing (below).

    Features of one view share one list of statuses and one of event timestamps (the server
    hands them over so): a sharing tuple maps each feature to the first feature with the
    same list, and a shared list is gathered and turned into JSON text once, not per feature.
    """

    def __init__(
        self,
        keys: tuple[str, ...],
        features: tuple[str, ...],
        status_sharing: tuple[int, ...],
        stamp_sharing: tuple[int, ...],
    ) -> None:
        self.key_names = keys
        self.feature_names = features
        self.status_sharing = status_sharing
        self.stamp_sharing = stamp_sharing
        self.requests: list[ServedRequest] = []
        self.counts: list[int] = []

    def add(self, request: ServedRequest, rows: int) -> None:
        self.requests.append(request)
        self.counts.append(rows)

    def table(self) -> pa.Table:
        # Columns are gathered by C loops (map, itemgetter, chain) over the requests' dicts,
        # not by a Python loop per request and feature.
        ids, times, _, keys, values, statuses, stamps, sources = zip(*self.requests, strict=True)
        counts = np.array(self.counts, dtype=np.int64)
        owner = np.repeat(np.arange(len(counts)), counts)  # request index of each row
        starts = np.cumsum(counts) - counts
        micros = np.round(np.array(times) * 1e6).astype(np.int64)
        rows = len(owner)
        features = self.feature_names

        def texts(dicts: tuple[dict[str, list[Any]], ...], name: str) -> pa.Array:
            return json_texts(list(itertools.chain.from_iterable(map(itemgetter(name), dicts))))

        value_texts = [texts(values, name) for name in features]
        status_texts = {i: texts(statuses, features[i]) for i in set(self.status_sharing)}
        stamp_texts = {i: texts(stamps, features[i]) for i in set(self.stamp_sharing)}
        key_texts = [texts(keys, name) for name in self.key_names]
        columns = [
            pa.array(ids, pa.string()).take(owner),
            pa.array(np.arange(rows) - starts[owner], pa.int32()),
            pa.array(micros[owner], pa.timestamp("us", tz="UTC")),
            pa.nulls(rows, pa.string()),
            json_objects(self.key_names, key_texts, rows),
            json_objects(features, value_texts, rows),
            json_objects(features, [status_texts[i] for i in self.status_sharing], rows),
            json_objects(features, [stamp_texts[i] for i in self.stamp_sharing], rows),
            pa.array(sources, pa.string()).take(owner),
        ]
        return pa.Table.from_arrays(columns, schema=SCHEMA)


def _sharing(columns: dict[str, list[Any]]) -> tuple[int, ...]:
    """For each column, the index of the first column that is the same list object."""
    first: dict[int, int] = {}
    return tuple(map(first.setdefault, map(id, columns.values()), itertools.count()))


_DAYS: dict[int, str] = {}


def _day(served_at: float) -> str:
    number = int(served_at // 86_400)
    day = _DAYS.get(number)
    if day is None:
        day = _DAYS[number] = (
            datetime.fromtimestamp(number * 86_400, timezone.utc).date().isoformat()
        )
    return day


def to_tables(requests: Sequence[ServedRequest]) -> dict[Group, pa.Table]:
    """One row per served entity row, in the log's SCHEMA, one table per (feature service,
    date). The Python work is a few list extends per request; the JSON text of the rows is
    assembled by Arrow kernels over whole columns."""
    batches: dict[tuple[Any, ...], _Columns] = {}
    for request in requests:
        rows = request.rows
        if rows == 0:
            continue
        group = (
            request.feature_service or AD_HOC,
            _day(request.served_at),
            tuple(request.keys),
            tuple(request.values),
            _sharing(request.statuses),
            _sharing(request.event_timestamps),
        )
        columns = batches.get(group)
        if columns is None:
            columns = batches[group] = _Columns(*group[2:])
        columns.add(request, rows)
    tables: dict[Group, list[pa.Table]] = {}
    for (service, day, *_), columns in batches.items():
        tables.setdefault((service, day), []).append(columns.table())
    return {
        group: pa.concat_tables(parts) if len(parts) > 1 else parts[0]
        for group, parts in tables.items()
    }


_PLAIN = frozenset({int, float, bool, type(None)})
_TEXT = frozenset({str, type(None)})


def json_texts(column: list[Any]) -> pa.Array:
    """Each value of `column` as JSON text (orjson's, so the log reads as the API answers)."""
    kinds = set(map(type, column))
    if kinds <= _PLAIN:
        return _plain_texts(column)
    if kinds <= _TEXT:  # statuses, timestamps, categories: few distinct values
        encoded = pa.array(column, pa.string()).dictionary_encode()
        distinct = [_dumps(value) for value in encoded.dictionary.to_pylist()]
        return pa.array(distinct, pa.string()).take(encoded.indices).fill_null("null")
    return pa.array([_dumps(value) for value in column], pa.string())


def _plain_texts(column: list[Any]) -> pa.Array:
    """`json_texts` of numbers, booleans and None: orjson writes the whole column in one
    call, `[1,2.5,null]`, and no value holds a comma, so the commas delimit the values; the
    string array is built from that text's bytes, without a Python object per value."""
    text = orjson.dumps(column)[1:-1]
    commas = np.flatnonzero(np.frombuffer(text, np.uint8) == ord(","))
    ends = np.append(commas, len(text)) - np.arange(len(commas) + 1)  # commas removed
    offsets = np.concatenate(([0], ends)).astype(np.int32)
    data = text.replace(b",", b"")
    return pa.StringArray.from_buffers(len(column), pa.py_buffer(offsets), pa.py_buffer(data))


def json_objects(names: Sequence[str], texts: Sequence[pa.Array], rows: int) -> pa.Array:
    """Row i is the JSON object {names[j]: texts[j][i]}, `texts` being `json_texts`."""
    if not names:
        return pa.array(["{}"] * rows, pa.string())
    parts: list[Any] = []
    for index, (name, text) in enumerate(zip(names, texts, strict=True)):
        parts.append(pa.scalar(("{" if index == 0 else ",") + _dumps(name) + ":"))
        parts.append(text)
    parts.append(pa.scalar("}"))
    return pc.binary_join_element_wise(*parts, "")
