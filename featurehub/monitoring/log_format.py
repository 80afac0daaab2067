"""The serving log's format: the record the server hands over and its Parquet layout.

Format 2 (written since issue 10; `FORMAT_KEY` in the file's metadata says "2"): one row per
served entity row, fixed columns first, then typed columns named `<kind>.<name>`:

| column | type | |
| --- | --- | --- |
| request_id | string | the response's request_id |
| row | int32 | index of the entity row in the request |
| served_at | timestamp[us, UTC] | when the request was answered |
| model_version | string, nullable | the model version that answered the row ("3") |
| model | string, nullable | the model of a predict request (/v1/models/{name}/predict) |
| arm | string, nullable | production, canary, a, b, pinned, or shadow (not returned) |
| source | string | who served it: "server" (the feature server) or "sdk" (`get_online_features`) |
| key.<join key> | int64, string, ... | the entity key, typed as sent |
| value.<feature> | int64, float64, bool, string | the value (null: null, not found, expired) |
| status.<feature> | string | present, not_found or expired; null: the row did not ask for it |
| event_timestamp.<feature> | timestamp[us, UTC] | the served row's event time, or null |
| prediction | int64, float64, bool, string | the model's answer (predict requests only) |
| feature_service, date | hive partition columns | from the path |

The model columns are null on the rows of feature requests. A predict request logs its rows
once per answering model version: a shadow version's rows are a second set with the same
request_id and row numbers, arm `shadow` (the skew checks skip them: the features were served
once). `model` and `arm` were added after the first format 2 files; readers (`log_reader`)
give them as null there, as they give `prediction` on files that hold no predict request.

`<feature>` is the name as served: `conv_rate`, or `driver_stats__conv_rate` for a request
with full feature names. Names are identifiers (no dots, `definitions.names`), so the part
before the first dot says what a column is, no prefixed name can equal a fixed column, and
people querying the log with DuckDB write `"value.conv_rate"`, not a JSON path. Status and
event time are per feature, as the API answers them: the writer needs no registry to know
which features share a view. Statuses cost next to nothing (dictionary and run-length
encoded); event times, a column per feature, make files ~1.3x the size of format 1's. Types
come from the values (the answer body is all the writer has): bytes are logged as the API
serves them, base64 text; timestamps as ISO 8601 text. A file holds the columns of the
requests it logged, so files of one service may differ (a feature added): read them by name
(`union_by_name`), as `log_reader` does.

Format 1 (before issue 10, no `FORMAT_KEY`): the four JSON text columns `entity_keys`,
`feature_values`, `statuses` and `event_timestamps` instead of the typed ones. Parsing them
dominated the skew replay (~2 s of ~4.5 for 1M rows); every reader still reads such files,
mixed with format 2 in one window, and `featurehub serving-log upgrade` rewrites them.

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

if TYPE_CHECKING:
    from featurehub.online.lookup import OnlineResponse

SERVER = "server"
SDK = "sdk"
"""The values of `source`: which writer served (and logged) a row."""

AD_HOC = "ad-hoc"
"""Partition name of requests that listed features rather than naming a feature service."""

FORMAT_KEY = b"featurehub.serving_log.format"
FORMAT = b"2"
"""The Parquet metadata entry that marks a file of format 2; files without it are format 1."""

KEY, VALUE, STATUS, EVENT_TIMESTAMP = "key.", "value.", "status.", "event_timestamp."
"""Prefixes of the typed columns: `key.driver_id`, `value.conv_rate`, ..."""

V1_COLUMNS = ("entity_keys", "feature_values", "statuses", "event_timestamps")
"""Format 1's JSON text columns, in place of the typed ones."""

TIMESTAMP = pa.timestamp("us", tz="UTC")

SCHEMA = pa.schema(
    [
        pa.field("request_id", pa.string(), nullable=False),
        pa.field("row", pa.int32(), nullable=False),
        pa.field("served_at", TIMESTAMP, nullable=False),
        pa.field("model_version", pa.string()),
        pa.field("model", pa.string()),
        pa.field("arm", pa.string()),
        pa.field("source", pa.string(), nullable=False),
    ]
)

PREDICTION = "prediction"
MODEL_COLUMNS = ("model_version", "model", "arm", PREDICTION)
"""Null on feature requests' rows; `prediction` only in files holding a predict request."""
"""The fixed columns of format 2, which every file has; the typed columns follow them."""


class ModelServed(NamedTuple):
    """What a model answered for a predict request's rows: its name, and per row the
    version, the arm (production, canary, a, b, shadow, pinned) and the prediction."""

    name: str
    versions: list[int]
    arms: list[str]
    predictions: list[Any]


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
    model: ModelServed | None = None  # a predict request's model and answers


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
        answer.model,
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
    model: ModelServed | None = None

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


Group = tuple[str, str]
"""(feature service or AD_HOC, YYYY-MM-DD): one Parquet file per group and commit."""


# -- requests to Arrow: one typed column per key, feature and kind ---------------------------


class _Columns:
    """The requests of one group: same key names, feature names and sharing (below).

    Features of one view share one list of statuses and one of event timestamps (the server
    hands them over so): a sharing tuple maps each feature to the first feature with the
    same list, and a shared list is gathered and converted once, its Arrow array then used
    for every feature of the view.
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
        # not by a Python loop per request and feature; Arrow converts each list at once.
        ids, times, _, keys, values, statuses, stamps, sources, models = zip(
            *self.requests, strict=True
        )
        counts = np.array(self.counts, dtype=np.int64)
        owner = np.repeat(np.arange(len(counts)), counts)  # request index of each row
        starts = np.cumsum(counts) - counts
        micros = np.round(np.array(times) * 1e6).astype(np.int64)
        rows = len(owner)
        features = self.feature_names

        def gathered(dicts: tuple[dict[str, list[Any]], ...], name: str) -> list[Any]:
            return list(itertools.chain.from_iterable(map(itemgetter(name), dicts)))

        status_arrays = {
            i: pa.array(gathered(statuses, features[i]), pa.string())
            for i in set(self.status_sharing)
        }
        stamp_arrays = {
            i: timestamp_array(gathered(stamps, features[i])) for i in set(self.stamp_sharing)
        }
        names = list(SCHEMA.names)
        columns = [
            pa.array(ids, pa.string()).take(owner),
            pa.array(np.arange(rows) - starts[owner], pa.int32()),
            pa.array(micros[owner], TIMESTAMP),
            *_model_columns(models, self.counts, rows),
            pa.array(sources, pa.string()).take(owner),
        ]
        if any(models):
            names.append(PREDICTION)
            columns.append(
                typed_array(
                    list(
                        itertools.chain.from_iterable(
                            [None] * count if model is None else model.predictions
                            for model, count in zip(models, self.counts, strict=True)
                        )
                    )
                )
            )
        for name in self.key_names:
            names.append(KEY + name)
            columns.append(typed_array(gathered(keys, name)))
        names += [VALUE + name for name in features]
        columns += [typed_array(gathered(values, name)) for name in features]
        names += [STATUS + name for name in features]
        columns += [status_arrays[i] for i in self.status_sharing]
        names += [EVENT_TIMESTAMP + name for name in features]
        columns += [stamp_arrays[i] for i in self.stamp_sharing]
        return pa.Table.from_arrays(columns, names=names)


def _model_columns(
    models: tuple[ModelServed | None, ...], counts: list[int], rows: int
) -> list[pa.Array]:
    """model_version, model and arm of each row (null on a feature request's rows)."""
    if not any(models):
        return [pa.nulls(rows, pa.string())] * 3
    versions: list[str | None] = []
    names: list[str | None] = []
    arms: list[str | None] = []
    for model, count in zip(models, counts, strict=True):
        if model is None:
            versions += [None] * count
            names += [None] * count
            arms += [None] * count
        else:
            versions += map(str, model.versions)
            names += [model.name] * count
            arms += model.arms
    return [pa.array(column, pa.string()) for column in (versions, names, arms)]


def typed_array(column: list[Any]) -> pa.Array:
    """`column` as the Arrow array its values call for (int64, float64, bool, string; a
    column of only nulls has the null type, which readers and `concat` promote). Values of
    mixed kinds, which a typed feature never serves, are kept as their JSON text."""
    try:
        array = pa.array(column)
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        return pa.array([None if v is None else _dumps(v) for v in column], pa.string())
    if pa.types.is_integer(array.type) and array.type != pa.int64():
        return array.cast(pa.int64())
    return array


def timestamp_array(column: list[Any]) -> pa.Array:
    """Event timestamps (ISO 8601 text, as the answer body holds them, or aware datetimes)
    as timestamp[us, UTC]."""
    array = pa.array(column)
    if pa.types.is_null(array.type):
        return pa.nulls(len(column), TIMESTAMP)
    return array.cast(TIMESTAMP)


def _dumps(value: Any) -> str:
    return orjson.dumps(
        value, default=json_default, option=orjson.OPT_UTC_Z | orjson.OPT_NON_STR_KEYS
    ).decode()


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
    """One row per served entity row, in format 2, one table per (feature service, date).
    The Python work is a few list extends per request; Arrow converts whole columns. Groups
    with other keys or features (ad-hoc requests) are concatenated by column name, with
    nulls where a request did not have a column."""
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
    return {group: concat(parts) for group, parts in tables.items()}


def concat(tables: Sequence[pa.Table]) -> pa.Table:
    """`tables` as one, by column name: a column missing from some is null there, a null-typed
    one takes the others' type, int64 and float64 become float64."""
    if len(tables) == 1:
        return tables[0]
    return pa.concat_tables(tables, promote_options="permissive")


def with_format(table: pa.Table) -> pa.Table:
    """`table` marked as format 2 in its Parquet metadata."""
    return table.replace_schema_metadata({FORMAT_KEY: FORMAT})
