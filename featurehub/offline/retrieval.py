"""Training data: entity rows in, point-in-time correct feature values out.

Everything that can be checked cheaply is checked before the join runs: the entity table's
timestamp column and join keys, their types, and that every view has offline data.
"""

from __future__ import annotations

from collections.abc import Callable
from os import PathLike
from pathlib import Path
from typing import TypeAlias, Union

import duckdb
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from featurehub import types
from featurehub.definitions import FeatureView, FeatureViewProjection
from featurehub.errors import FeaturehubError, did_you_mean

EntityInput: TypeAlias = Union[pd.DataFrame, pa.Table, str, "PathLike[str]"]


class RetrievalError(FeaturehubError, ValueError):
    """The request for training data cannot be answered as asked."""


class RetrievalJob:
    """A point-in-time join, run when its result is asked for (once; the result is kept)."""

    def __init__(self, run: Callable[[], pa.Table]) -> None:
        self._run = run
        self._result: pa.Table | None = None

    def to_arrow(self) -> pa.Table:
        if self._result is None:
            self._result = self._run()
        return self._result

    def to_pandas(self) -> pd.DataFrame:
        return self.to_arrow().to_pandas()

    def to_parquet(self, path: str | PathLike[str]) -> Path:
        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(self.to_arrow(), target)
        return target


def load_entity_table(entity: EntityInput, con: duckdb.DuckDBPyConnection) -> pa.Table:
    """Accept a DataFrame, an Arrow table, a Parquet path or a DuckDB SQL query."""
    if isinstance(entity, pa.Table):
        return entity
    if isinstance(entity, pd.DataFrame):
        return pa.Table.from_pandas(entity, preserve_index=False)
    if isinstance(entity, PathLike) or (
        isinstance(entity, str) and entity.strip().lower().endswith(".parquet")
    ):
        path = Path(entity)
        if not path.exists():
            raise RetrievalError(f"entity file {str(path)!r} does not exist")
        return pq.read_table(path)
    if isinstance(entity, str):
        try:
            return con.sql(entity).to_arrow_table()
        except duckdb.Error as exc:
            raise RetrievalError(f"the entity SQL query failed: {exc}") from None
    raise RetrievalError(
        f"entity_df must be a pandas DataFrame, an Arrow table, a Parquet path or a SQL "
        f"query, not {type(entity).__name__}"
    )


def check_entity_table(
    entity: pa.Table, projections: list[FeatureViewProjection], timestamp_column: str
) -> None:
    """Fail before the join with a message that names the column and the fix."""
    columns = entity.schema
    names = columns.names
    if timestamp_column not in names:
        raise RetrievalError(
            f"entity_df has no timestamp column {timestamp_column!r} (columns: "
            f"{', '.join(names)}).{did_you_mean(timestamp_column, names)} Add it, or pass "
            "timestamp_column= naming the column that holds each row's time"
        )
    ts_type = columns.field(timestamp_column).type
    if not (pa.types.is_timestamp(ts_type) or pa.types.is_date(ts_type)):
        raise RetrievalError(
            f"entity_df column {timestamp_column!r} has type {ts_type}, not a timestamp; "
            f"convert it, e.g. df[{timestamp_column!r}] = pd.to_datetime(df[{timestamp_column!r}], "
            "utc=True)"
        )
    for projection in projections:
        view = projection.view
        for entity_def in view.entities:
            for key in entity_def.join_keys:
                _check_key(columns, names, view, entity_def.name, key, entity_def.key_types)


def _check_key(
    columns: pa.Schema,
    names: list[str],
    view: FeatureView,
    entity_name: str,
    key: str,
    key_types: dict[str, types.ValueType],
) -> None:
    if key not in names:
        raise RetrievalError(
            f"entity_df has no column {key!r}, the join key of entity {entity_name!r} that "
            f"feature view {view.name!r} needs (columns: {', '.join(names)})."
            f"{did_you_mean(key, names)} Add the column or drop the view's features"
        )
    expected = key_types.get(key)
    found = columns.field(key).type
    if expected is None or pa.types.is_null(found):
        return
    integer = expected in (types.Int32, types.Int64)
    ok = pa.types.is_integer(found) if integer else expected.accepts(found)
    if not ok:
        cast = "astype('int64')" if integer else "astype(str)"
        raise RetrievalError(
            f"entity_df column {key!r} has type {found} but entity {entity_name!r} keys are "
            f"{expected.name}; convert the column, e.g. df[{key!r}] = df[{key!r}].{cast}"
        )
