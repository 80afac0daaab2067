"""The serving log's rows of one feature service in a time window, as typed Arrow columns.

The log keeps entity keys, values, statuses and event timestamps as JSON text
(`featurehub.monitoring.log_format`). DuckDB parses each JSON column once per row
(`json_extract_string` with a list of paths returns every feature in one parse) and casts
each value to its feature's type, so no Python runs per row. Columns are read by name and
any other column of the files (a later `source`, say) is ignored.

Only the files of the `date=` partitions the window touches are read: the writer files a
row under the UTC day of its served_at, so a day outside [start, end) holds no row of it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import duckdb
import pyarrow as pa

from featurehub import types
from featurehub.types import ValueType

SERVED_AT = "__replay_served_at"
REQUEST_ID = "__replay_request_id"
ROW = "__replay_row"
SAMPLE_DIGITS = 15
"""Hex digits of the md5 of a key that decide whether a sample keeps it (60 bits)."""


@dataclass(frozen=True)
class ServedFeature:
    """One feature of the service as the log names it: `feature`, or `view__feature` when
    the request asked for full feature names (both are looked up)."""

    view: str
    feature: str
    value_type: ValueType

    @property
    def log_names(self) -> tuple[str, str]:
        return self.feature, f"{self.view}__{self.feature}"


def served_value(index: int) -> str:
    return f"__replay_value_{index}"


def served_status(index: int) -> str:
    return f"__replay_status_{index}"


def served_event(index: int) -> str:
    return f"__replay_event_{index}"


def log_files(root: Path, service: str, start: datetime, end: datetime) -> list[Path]:
    """The Parquet files of `service` under the log `root` whose date partition can hold a
    row served in [start, end) (UTC days)."""
    folder = root / f"feature_service={service}"
    if not folder.is_dir():
        return []
    first, last = start.date(), (end - timedelta(microseconds=1)).date()
    files: list[Path] = []
    for partition in sorted(folder.glob("date=*")):
        try:
            day = date.fromisoformat(partition.name.removeprefix("date="))
        except ValueError:
            continue
        if first <= day <= last:
            files.extend(sorted(partition.glob("*.parquet")))
    return files


def sample_condition(key_sql: Sequence[str], fraction: float) -> str:
    """SQL that keeps a key when the md5 of its values as text (in join-key order, joined by
    the unit separator \\x1f) read as a fraction of 16**15 from its first 15 hex digits is
    below `fraction`. Whole keys are kept or dropped, the same ones in every run and process."""
    text = f"concat_ws(chr(31), {', '.join(key_sql)})"
    bound = int(fraction * 16**SAMPLE_DIGITS)
    return f"('0x' || substr(md5({text}), 1, {SAMPLE_DIGITS}))::BIGINT < {bound}"


def read_served_rows(
    con: duckdb.DuckDBPyConnection,
    files: Sequence[Path],
    join_keys: dict[str, ValueType],
    features: Sequence[ServedFeature],
    start: datetime,
    end: datetime,
    sample: float | None = None,
) -> pa.Table:
    """One row per logged entity row served in [start, end): the join keys (typed), SERVED_AT,
    REQUEST_ID, ROW, and per feature i its served value (typed), status and event timestamp
    (`served_value(i)`, `served_status(i)`, `served_event(i)`). A feature the row did not
    serve has a null status. Rows come in (served_at, request_id, row) order."""
    key_paths = [_path(key) for key in join_keys]
    feature_paths = [_path(name) for feature in features for name in feature.log_names]
    keys = [f"k[{i + 1}]" for i in range(len(join_keys))]
    columns = [
        f"{_cast(keys[i], value_type)} AS {_quote(key)}"
        for i, (key, value_type) in enumerate(join_keys.items())
    ]
    columns += [f"served_at AS {SERVED_AT}", f"request_id AS {REQUEST_ID}", f'"row" AS {ROW}']
    for i, feature in enumerate(features):
        short, full = f"s[{2 * i + 1}]", f"s[{2 * i + 2}]"
        which = f"{short} IS NOT NULL"  # the name this row's log used
        value = f"CASE WHEN {which} THEN v[{2 * i + 1}] ELSE v[{2 * i + 2}] END"
        event = f"CASE WHEN {which} THEN e[{2 * i + 1}] ELSE e[{2 * i + 2}] END"
        columns += [
            f"{_cast(value, feature.value_type)} AS {served_value(i)}",
            f"coalesce({short}, {full}) AS {served_status(i)}",
            f"({event})::TIMESTAMPTZ AS {served_event(i)}",
        ]
    file_list = ", ".join(_literal(str(path)) for path in files)
    window = f"served_at >= {_instant(start)} AND served_at < {_instant(end)}"
    sampled = f" AND {sample_condition(keys, sample)}" if sample is not None else ""
    sql = (
        f'SELECT {", ".join(columns)} FROM (SELECT served_at, request_id, "row", '
        f"json_extract_string(entity_keys, {_list(key_paths)}) AS k, "
        f"json_extract_string(feature_values, {_list(feature_paths)}) AS v, "
        f"json_extract_string(statuses, {_list(feature_paths)}) AS s, "
        f"json_extract_string(event_timestamps, {_list(feature_paths)}) AS e "
        f"FROM read_parquet([{file_list}], union_by_name = true) WHERE {window}) "
        f'WHERE true{sampled} ORDER BY served_at, request_id, "row"'
    )
    return con.sql(sql).to_arrow_table()


def _cast(text_sql: str, value_type: ValueType) -> str:
    """A JSON value's text as the feature's type. Bytes stay base64 text (the log's form);
    a float NaN was logged as null (JSON has none)."""
    if value_type in (types.String, types.Bytes):
        return text_sql
    sql_type = {
        "Int32": "INTEGER",
        "Int64": "BIGINT",
        "Float32": "DOUBLE",
        "Float64": "DOUBLE",
        "Bool": "BOOLEAN",
        "Timestamp": "TIMESTAMPTZ",
    }[value_type.name]
    return f"({text_sql})::{sql_type}"


def _path(name: str) -> str:
    return "$." + '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _list(items: Sequence[str]) -> str:
    return "[" + ", ".join(_literal(item) for item in items) + "]::VARCHAR[]"


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _instant(moment: datetime) -> str:
    utc = moment.astimezone(timezone.utc)
    return f"TIMESTAMPTZ '{utc.isoformat(' ', 'microseconds')}'"


def as_utc(moment: datetime) -> datetime:
    """An aware UTC datetime; a naive one is taken as UTC."""
    if moment.tzinfo is None:
        return moment.replace(tzinfo=timezone.utc)
    return moment.astimezone(timezone.utc)
