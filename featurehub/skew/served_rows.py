"""The serving log's rows of one feature service in a time window, as typed Arrow columns.

Format 2 files (`featurehub.monitoring.log_format`) hold typed columns: they are read as they
are, only the columns the check needs, and cast to each feature's type. Format 1 files hold
JSON text: DuckDB parses each JSON column once per row (`json_extract_string` with a list of
paths returns every feature in one parse) and casts each value. A window may hold files of
both: each kind is read by its own SELECT and the two are one UNION ALL, so no Python runs
per row either way. Columns are read by name and any other column of the files (a later
`source`, say) is ignored; a column no file of the window has reads as null.

Only the files of the `date=` partitions the window touches are read: the writer files a
row under the UTC day of its served_at, so a day outside [start, end) holds no row of it.

Shadow rows (arm `shadow`: a second prediction of features served once) are never read. With
`answered_by` (`ModelAnswers`), only the rows one model version answered are: its name and
version in the log's `model` and `model_version` columns, on any arm whose answer was
returned (production, canary, a, b, pinned). Files without those columns (format 1, or format
2 before models) hold no row of a model. `count_by_arm` counts a version's rows per arm by the
same condition.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

from featurehub import types
from featurehub.monitoring.log_format import EVENT_TIMESTAMP, FORMAT_KEY, KEY, STATUS, VALUE
from featurehub.types import ValueType

SERVED_AT = "__replay_served_at"
REQUEST_ID = "__replay_request_id"
ROW = "__replay_row"
SAMPLE_DIGITS = 15
"""Hex digits of the md5 of a key that decide whether a sample keeps it (60 bits)."""
UNKNOWN_ARM = "unknown"
"""`count_by_arm`'s label for a model's rows that name no arm."""


@dataclass(frozen=True)
class ModelAnswers:
    """The log rows one model version answered (`featurehub skew --model NAME:V`)."""

    model: str
    version: int

    def __str__(self) -> str:
        return f"{self.model} version {self.version}"


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


def view_numbers(features: Sequence[ServedFeature]) -> list[int]:
    """The number of each feature's view, in order of first appearance: the index of the
    view's status and event timestamp columns."""
    numbers: dict[str, int] = {}
    return [numbers.setdefault(feature.view, len(numbers)) for feature in features]


@dataclass(frozen=True)
class LogFiles:
    """Log files split by format: format 1 (JSON text) and format 2 (typed), with the names
    of the columns any format 2 file has (files of one service may differ)."""

    json: tuple[Path, ...]
    typed: tuple[Path, ...]
    typed_columns: frozenset[str]

    @classmethod
    def of(cls, files: Sequence[Path]) -> LogFiles:
        """Each file's format, from its Parquet footer (its metadata, a few kB)."""
        json_files: list[Path] = []
        typed: list[Path] = []
        columns: set[str] = set()
        for path in files:
            schema = pq.read_schema(path)
            if (schema.metadata or {}).get(FORMAT_KEY) is None:
                json_files.append(path)
            else:
                typed.append(path)
                columns.update(schema.names)
        return cls(tuple(json_files), tuple(typed), frozenset(columns))

    def column(self, name: str) -> str:
        """A typed column by name, or NULL when no format 2 file has it."""
        return _quote(name) if name in self.typed_columns else "NULL"

    def rows_of(self, answered_by: ModelAnswers | None) -> str:
        """A condition (" AND ...") keeping the rows to check: never a shadow model's (the
        same served features again); with `answered_by`, only that model version's."""
        condition = ""
        if "arm" in self.typed_columns:
            condition = " AND arm IS DISTINCT FROM 'shadow'"
        if answered_by is not None:
            condition += (
                f" AND {self.column('model')} = {_literal(answered_by.model)}"
                f" AND {self.column('model_version')} = {_literal(str(answered_by.version))}"
            )
        return condition

    def chosen(self, short: str, full: str, short_used: str) -> str:
        """The column `short` where `short_used` (a condition) holds, else `full`: a request
        named its features either way; with only one of them logged, that one."""
        if full not in self.typed_columns:
            return self.column(short)
        if short not in self.typed_columns:
            return self.column(full)
        return f"CASE WHEN {short_used} THEN {_quote(short)} ELSE {_quote(full)} END"


def _scan(files: Sequence[Path], window: str) -> str:
    file_list = ", ".join(_literal(str(path)) for path in files)
    return f"read_parquet([{file_list}], union_by_name = true) WHERE {window}"


def _format1_rows(answered_by: ModelAnswers | None) -> str:
    """`LogFiles.rows_of` for format 1 files: written before models, they hold no row of one
    (and no shadow row)."""
    return "" if answered_by is None else " AND false"


def _window(start: datetime, end: datetime) -> str:
    return f"served_at >= {_instant(start)} AND served_at < {_instant(end)}"


def read_served_rows(
    con: duckdb.DuckDBPyConnection,
    files: Sequence[Path],
    join_keys: dict[str, ValueType],
    features: Sequence[ServedFeature],
    start: datetime,
    end: datetime,
    sample: float | None = None,
    answered_by: ModelAnswers | None = None,
) -> pa.Table:
    """One row per logged entity row served in [start, end) (only `answered_by`'s rows when
    given, see the module's docstring): the join keys (typed), SERVED_AT,
    REQUEST_ID, ROW, per feature i its served value (`served_value(i)`, typed) and per view j
    its status and event timestamp (`served_status(j)`, `served_event(j)`, j from
    `view_numbers`). A view the row did not serve has a null status. Rows come in no order.

    Features of one view share their status and event timestamp (the look-up gives them the
    same ones), so those are read from the view's first feature only."""
    split = LogFiles.of(files)
    selects = []
    if split.typed:
        selects.append(_typed_select(split, join_keys, features, start, end, sample, answered_by))
    if split.json:
        selects.append(
            _json_select(split.json, join_keys, features, start, end, sample, answered_by)
        )
    return con.sql(" UNION ALL ".join(selects)).to_arrow_table()


def _typed_select(
    split: LogFiles,
    join_keys: dict[str, ValueType],
    features: Sequence[ServedFeature],
    start: datetime,
    end: datetime,
    sample: float | None,
    answered_by: ModelAnswers | None,
) -> str:
    """`read_served_rows` of the format 2 files: column reads and casts."""
    views = view_numbers(features)
    firsts = [features[views.index(j)] for j in range(len(set(views)))]
    keys = [f"{split.column(KEY + key)}::VARCHAR" for key in join_keys]
    columns = [
        f"{split.column(KEY + key)}::{_sql_type(value_type)} AS {_quote(key)}"
        for key, value_type in join_keys.items()
    ]
    columns += [f"served_at AS {SERVED_AT}", f"request_id AS {REQUEST_ID}", f'"row" AS {ROW}']
    short_used = []  # per view: whether the row named its features short
    for j, feature in enumerate(firsts):
        short, full = feature.log_names
        used = f"{split.column(STATUS + short)} IS NOT NULL"
        short_used.append(used)
        status = split.chosen(STATUS + short, STATUS + full, used)
        event = split.chosen(EVENT_TIMESTAMP + short, EVENT_TIMESTAMP + full, used)
        columns += [
            f"({status})::VARCHAR AS {served_status(j)}",
            f"({event})::TIMESTAMPTZ AS {served_event(j)}",
        ]
    for i, feature in enumerate(features):
        short, full = feature.log_names
        value = split.chosen(VALUE + short, VALUE + full, short_used[views[i]])
        columns.append(f"({value})::{_sql_type(feature.value_type)} AS {served_value(i)}")
    sampled = f" AND {sample_condition(keys, sample)}" if sample is not None else ""
    scan = _scan(split.typed, _window(start, end) + split.rows_of(answered_by))
    return f"SELECT {', '.join(columns)} FROM {scan}{sampled}"


def _json_select(
    files: Sequence[Path],
    join_keys: dict[str, ValueType],
    features: Sequence[ServedFeature],
    start: datetime,
    end: datetime,
    sample: float | None,
    answered_by: ModelAnswers | None,
) -> str:
    """`read_served_rows` of the format 1 files: one parse of each JSON column per row."""
    views = view_numbers(features)
    firsts = [features[views.index(j)] for j in range(len(set(views)))]
    key_paths = [_path(key) for key in join_keys]
    view_paths = [_path(name) for feature in firsts for name in feature.log_names]
    keys = [f"k[{i + 1}]" for i in range(len(join_keys))]
    columns = [
        f"{_cast(keys[i], value_type)} AS {_quote(key)}"
        for i, (key, value_type) in enumerate(join_keys.items())
    ]
    columns += [f"served_at AS {SERVED_AT}", f"request_id AS {REQUEST_ID}", f'"row" AS {ROW}']
    for j in range(len(firsts)):
        short, full = f"s[{2 * j + 1}]", f"s[{2 * j + 2}]"
        event = f"CASE WHEN {short} IS NOT NULL THEN e[{2 * j + 1}] ELSE e[{2 * j + 2}] END"
        columns += [
            f"coalesce({short}, {full}) AS {served_status(j)}",
            f"({event})::TIMESTAMPTZ AS {served_event(j)}",
        ]
    value_types: dict[str, str] = {}  # log name -> SQL type, for one typed parse per row
    for i, feature in enumerate(features):
        for name in feature.log_names:
            value_types.setdefault(name, _sql_type(feature.value_type))
        short = f"s[{2 * views[i] + 1}] IS NOT NULL"  # the name this row's log used
        columns.append(
            f"(CASE WHEN {short} THEN v.{_quote(feature.log_names[0])} "
            f"ELSE v.{_quote(feature.log_names[1])} END)::{_sql_type(feature.value_type)} "
            f"AS {served_value(i)}"
        )
    structure = (
        "{" + ", ".join(f"{_json_name(n)}: {_json_name(t)}" for n, t in value_types.items()) + "}"
    )
    sampled = f" AND {sample_condition(keys, sample)}" if sample is not None else ""
    return (
        f'SELECT {", ".join(columns)} FROM (SELECT served_at, request_id, "row", '
        f"json_extract_string(entity_keys, {_list(key_paths)}) AS k, "
        f"from_json(feature_values, {_literal(structure)}) AS v, "
        f"json_extract_string(statuses, {_list(view_paths)}) AS s, "
        f"json_extract_string(event_timestamps, {_list(view_paths)}) AS e "
        f"FROM {_scan(files, _window(start, end) + _format1_rows(answered_by))}) "
        f"WHERE true{sampled}"
    )


def count_by_arm(
    con: duckdb.DuckDBPyConnection,
    files: Sequence[Path],
    start: datetime,
    end: datetime,
    answered_by: ModelAnswers,
) -> dict[str, int]:
    """The rows `answered_by` answered in [start, end) per arm (production, canary, a, b,
    pinned), most first (then by name): the rows a check of it reads, by the same condition
    (`LogFiles.rows_of`), with no sample, so the counts are of all its rows in the window.

    One GROUP BY that reads four narrow columns (served_at, model, model_version, arm: ~9 ms
    for 1M logged rows, where the replay's read of them takes ~55 ms), rather than a count
    in a check's read, which a sample thins. Format 1 files are not read: they hold no row of
    a model (`_format1_rows`). `model` and `arm` came into format 2 together, so a row of a
    model names its arm; one that does not (a file from another writer) counts as
    UNKNOWN_ARM rather than being dropped, so the counts add up to the rows checked."""
    split = LogFiles.of(files)
    if not split.typed:
        return {}
    arm = f"coalesce(({split.column('arm')})::VARCHAR, {_literal(UNKNOWN_ARM)})"
    scan = _scan(split.typed, _window(start, end) + split.rows_of(answered_by))
    counted = con.execute(f"SELECT {arm} AS arm, count(*) FROM {scan} GROUP BY 1").fetchall()
    return {str(name): int(count) for name, count in sorted(counted, key=lambda r: (-r[1], r[0]))}


def read_served_values(
    con: duckdb.DuckDBPyConnection,
    files: Sequence[Path],
    features: dict[str, str],
    start: datetime,
    end: datetime,
    log_names: Mapping[str, Sequence[str]] | None = None,
    answered_by: ModelAnswers | None = None,
) -> pa.Table:
    """The served values of `features` (name -> "number", "bool" or "string": how the
    distribution check reads them) in rows served in [start, end), one column per feature
    named as it, nulls where the value was null, not found or expired (what the model got).
    A feature is read under each of its `log_names` (default: its own name), the first that
    holds a value: a request named it `conv_rate` or, with full feature names,
    `driver_stats__conv_rate`. With `answered_by`, only that model version's rows."""
    split = LogFiles.of(files)
    names = log_names or {}
    selects = []
    as_sql = {"number": "DOUBLE", "bool": "BOOLEAN", "string": "VARCHAR"}

    def first(values: list[str]) -> str:
        return values[0] if len(values) == 1 else f"coalesce({', '.join(values)})"

    if split.typed:
        columns = [
            first(
                [
                    f"TRY_CAST({split.column(VALUE + logged)} AS {as_sql[kind]})"
                    for logged in names.get(name, (name,))
                ]
            )
            + f" AS {_quote(name)}"
            for name, kind in features.items()
        ]
        selects.append(
            f"SELECT {', '.join(columns) or '1'} FROM "
            f"{_scan(split.typed, _window(start, end) + split.rows_of(answered_by))}"
        )
    if split.json:
        columns = []
        for name, kind in features.items():
            values = []
            for logged in names.get(name, (name,)):
                value = f"json_extract(feature_values, {_literal(_path(logged))})"
                if kind == "string":
                    values.append(f"({value} ->> '$')")
                else:
                    values.append(f"TRY_CAST({value} AS {as_sql[kind]})")
            columns.append(f"{first(values)} AS {_quote(name)}")
        selects.append(
            f"SELECT {', '.join(columns) or '1'} FROM "
            f"{_scan(split.json, _window(start, end) + _format1_rows(answered_by))}"
        )
    return con.sql(" UNION ALL ".join(selects)).to_arrow_table()


_SQL_TYPES = {
    "Int32": "INTEGER",
    "Int64": "BIGINT",
    "Float32": "DOUBLE",
    "Float64": "DOUBLE",
    "Bool": "BOOLEAN",
    "Timestamp": "TIMESTAMPTZ",
    "String": "VARCHAR",
    "Bytes": "VARCHAR",  # the log holds bytes as base64 text
}


def _sql_type(value_type: ValueType) -> str:
    """The DuckDB type a logged value of `value_type` is read as (floats as DOUBLE: the
    log's JSON holds the served value's shortest decimal, which a DOUBLE holds exactly)."""
    return _SQL_TYPES[value_type.name]


def _cast(text_sql: str, value_type: ValueType) -> str:
    """JSON text (of a join key) as the key's type."""
    if value_type in (types.String, types.Bytes):
        return text_sql
    return f"({text_sql})::{_sql_type(value_type)}"


def _json_name(text: str) -> str:
    """`text` as a JSON string (a key or a type name of from_json's structure)."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


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
