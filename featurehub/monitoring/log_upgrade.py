"""`featurehub serving-log upgrade`: rewrite the serving log's format 1 files (JSON text
columns) in format 2 (typed columns; `log_format`), in place.

Optional: every reader reads format 1 files. Upgrading makes the log uniform for people who
query it by hand, and its files as fast to check as new ones. Each file is converted on its
own (Python parses its JSON once, row by row: a one-time cost, 1-2 s per 100k rows), written
to `_staging` and renamed over the original, so a reader sees the old file or the new one,
never half of either; a crash leaves the old file (and garbage in `_staging`).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.parquet as pq

from featurehub.monitoring.log_format import (
    EVENT_TIMESTAMP,
    FORMAT_KEY,
    KEY,
    SCHEMA,
    SERVER,
    STATUS,
    V1_COLUMNS,
    VALUE,
    timestamp_array,
    typed_array,
    with_format,
)


def format_1_files(root: Path) -> Iterator[Path]:
    """The committed files under the log `root` written in format 1."""
    for path in sorted(Path(root).glob("feature_service=*/date=*/*.parquet")):
        if (pq.read_schema(path).metadata or {}).get(FORMAT_KEY) is None:
            yield path


def upgrade(table: pa.Table) -> pa.Table:
    """A format 1 table's rows in format 2: the same fixed columns (`source` as the server
    where the file predates it), the JSON columns as typed ones."""
    rows = table.num_rows
    decoded = {name: [orjson.loads(text) for text in table.column(name).to_pylist()]
               for name in V1_COLUMNS}  # fmt: skip
    keys, values, statuses, stamps = (decoded[name] for name in V1_COLUMNS)
    fixed = {
        name: table.column(name) if name in table.column_names else None for name in SCHEMA.names
    }
    if fixed["source"] is None:
        fixed["source"] = pa.array([SERVER] * rows, pa.string())
    for name, column in fixed.items():  # model_version, model, arm: null before models
        if column is None:
            fixed[name] = pa.nulls(rows, SCHEMA.field(name).type)
    names, columns = list(SCHEMA.names), [fixed[name] for name in SCHEMA.names]
    for name in _names(keys):
        names.append(KEY + name)
        columns.append(typed_array(_column(keys, name)))
    features = _names(values)
    for prefix, objects, convert in (
        (VALUE, values, typed_array),
        (STATUS, statuses, lambda column: pa.array(column, pa.string())),
        (EVENT_TIMESTAMP, stamps, timestamp_array),
    ):
        for name in features:
            names.append(prefix + name)
            columns.append(convert(_column(objects, name)))
    return pa.Table.from_arrays(columns, names=names)


def upgrade_file(path: Path, root: Path) -> int:
    """Rewrite one format 1 file in format 2 (staged under `root`, then renamed over it);
    the rows it holds."""
    table = upgrade(pq.read_table(path))
    staging = Path(root) / "_staging"
    staging.mkdir(parents=True, exist_ok=True)
    temporary = staging / f"{uuid.uuid4().hex}.parquet.tmp"
    pq.write_table(with_format(table), temporary, compression="zstd")
    with temporary.open("rb") as handle:
        os.fsync(handle.fileno())
    os.replace(temporary, path)
    descriptor = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
    return table.num_rows


def _names(objects: list[dict[str, Any]]) -> list[str]:
    """Every name of the rows' objects, in order of first appearance."""
    seen: dict[str, None] = {}
    for item in objects:
        seen.update(dict.fromkeys(item))
    return list(seen)


def _column(objects: list[dict[str, Any]], name: str) -> list[Any]:
    return [item.get(name) for item in objects]
