"""The serving log's first format (JSON text columns), written by the code that wrote it
before format 2 (`featurehub.monitoring.log_format`): logs of that format still exist, and
every reader must keep reading them. `write_v1` commits answers as that writer did."""

from __future__ import annotations

import itertools
import os
import uuid
from collections.abc import Sequence
from operator import itemgetter
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from featurehub.monitoring.log_format import (
    AD_HOC,
    Group,
    ServedAnswer,
    ServedRequest,
    _day,
    _sharing,
    decode,
    json_default,
)

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


def _dumps(value: Any) -> str:
    return orjson.dumps(
        value, default=json_default, option=orjson.OPT_UTC_Z | orjson.OPT_NON_STR_KEYS
    ).decode()


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
        ids, times, _, keys, values, statuses, stamps, sources, *_ = zip(
            *self.requests, strict=True
        )
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


def to_tables(requests: Sequence[ServedRequest]) -> dict[Group, pa.Table]:
    """Format 1's rows, one table per (feature service, date)."""
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
    return {group: pa.concat_tables(parts) for group, parts in tables.items()}


def write_v1(root: Path, answers: Sequence[ServedAnswer]) -> list[Path]:
    """Commit `answers` under the log `root` in format 1, one file per (service, date)."""
    files = []
    for (service, day), table in to_tables([decode(a) for a in answers]).items():
        folder = Path(root) / f"feature_service={service}" / f"date={day}"
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"part-v1-{os.getpid()}-{uuid.uuid4().hex}.parquet"
        pq.write_table(table, path, compression="zstd")
        files.append(path)
    return files
