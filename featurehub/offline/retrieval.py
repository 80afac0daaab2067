"""Training data: entity rows in, point-in-time correct feature values out.

Everything that can be checked cheaply is checked before the join runs: the entity table's
timestamp column and join keys, their types, and that every view has offline data.
"""

from __future__ import annotations

from collections.abc import Callable
from os import PathLike
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeAlias, Union

import duckdb
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from featurehub import dataframes, types
from featurehub.definitions import FeatureView, FeatureViewProjection
from featurehub.definitions import entity_keys as key_rule
from featurehub.errors import FeaturehubError, did_you_mean
from featurehub.offline.source_reader import read_only_connection

if TYPE_CHECKING:
    from featurehub.datasets import Dataset

EntityInput: TypeAlias = Union[pd.DataFrame, pa.Table, str, "PathLike[str]"]


class RetrievalError(FeaturehubError, ValueError):
    """The request for training data cannot be answered as asked."""


class RetrievalJob:
    """A point-in-time join, run when its result is asked for (once; the result is kept)."""

    def __init__(
        self,
        run: Callable[[], pa.Table],
        save: Callable[[RetrievalJob, str, str], Any] | None = None,
    ) -> None:
        self._run = run
        self._save = save
        self._result: pa.Table | None = None

    def to_arrow(self) -> pa.Table:
        if self._result is None:
            self._result = self._run()
        return self._result

    def to_pandas(self) -> pd.DataFrame:
        """The result as a DataFrame; integer and boolean columns in pandas' nullable dtypes
        (Int64, boolean: a missing value is pd.NA, not NaN or None), as the online
        response's `to_pandas` gives them (`featurehub.dataframes`)."""
        return dataframes.to_pandas(self.to_arrow())

    def save(self, name: str, *, description: str = "") -> Dataset:
        """Save the result as an immutable, named training dataset (docs/datasets.md)."""
        if self._save is None:
            raise RetrievalError(
                "this job cannot be saved: only a job from FeatureStore.get_historical_features "
                "knows what it was asked; use store.get_historical_features(...).save(name)"
            )
        return self._save(self, name, description)

    def to_parquet(self, path: str | PathLike[str]) -> Path:
        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(self.to_arrow(), target)
        return target


def load_entity_table(entity: EntityInput, repo_path: Path) -> pa.Table:
    """Accept a DataFrame, an Arrow table, a Parquet path or a DuckDB SQL query."""
    if isinstance(entity, pa.Table):
        return entity
    if isinstance(entity, pd.DataFrame):
        _check_unique_columns([str(name) for name in entity.columns])
        return pa.Table.from_pandas(entity, preserve_index=False)
    if isinstance(entity, PathLike) or (
        isinstance(entity, str) and entity.strip().lower().endswith(".parquet")
    ):
        path = Path(entity)
        if not path.exists():
            raise RetrievalError(f"entity file {str(path)!r} does not exist")
        return pq.read_table(path)
    if isinstance(entity, str):
        return run_entity_query(entity, repo_path)
    raise RetrievalError(
        f"entity_df must be a pandas DataFrame, an Arrow table, a Parquet path or a SQL "
        f"query, not {type(entity).__name__}"
    )


_ONLY_READS = (
    "entity queries only read, so that a query string built from input cannot write files, "
    "load extensions or reach the network"
)


def run_entity_query(sql: str, repo_path: Path) -> pa.Table:
    """The rows of an entity SQL query: one SELECT, on a connection that reads files inside
    the repo only (`read_only_connection`). A caller who needs more runs the query itself
    and passes the DataFrame or Arrow table."""
    con = read_only_connection(repo_path)
    try:
        statements = con.extract_statements(sql)
        kinds = [statement.type.name for statement in statements]
        if kinds != ["SELECT"]:
            found = ", ".join(kinds) or "nothing"
            raise RetrievalError(
                f"the entity SQL query must be one SELECT statement, not {found}: {_ONLY_READS}"
                "; run anything else with DuckDB yourself and pass the result as a DataFrame"
            )
        return con.sql(sql).to_arrow_table()
    except duckdb.PermissionException as exc:
        raise RetrievalError(
            f"the entity SQL query was refused ({exc}): {_ONLY_READS}, and only files inside "
            f"the repo ({repo_path}), named by absolute path or relative to a working "
            "directory inside the repo; read other files yourself and pass the DataFrame, "
            "the Arrow table or the Parquet path"
        ) from None
    except duckdb.Error as exc:
        raise RetrievalError(f"the entity SQL query failed: {exc}") from None
    finally:
        con.close()


def check_entity_table(
    entity: pa.Table, projections: list[FeatureViewProjection], timestamp_column: str
) -> None:
    """Fail before the join with a message that names the column and the fix."""
    columns = entity.schema
    names = columns.names
    _check_unique_columns(names)
    if timestamp_column not in names:
        raise RetrievalError(
            f"entity_df has no timestamp column {timestamp_column!r} (columns: "
            f"{', '.join(names)}).{did_you_mean(timestamp_column, names)} Add it, or pass "
            "timestamp_column= naming the column that holds each row's time"
        )
    ts_type = columns.field(timestamp_column).type
    if not (pa.types.is_timestamp(ts_type) or pa.types.is_date(ts_type)):  # a date: midnight UTC
        raise RetrievalError(
            f"entity_df column {timestamp_column!r} has type {ts_type}, not a timestamp; "
            f"convert it, e.g. df[{timestamp_column!r}] = pd.to_datetime(df[{timestamp_column!r}], "
            "utc=True)"
        )
    for projection in projections:
        view = projection.view
        for entity_def in view.entities:
            for key in entity_def.join_keys:
                _check_key(entity, view, entity_def.name, key, entity_def.key_types)


def _check_unique_columns(names: list[str]) -> None:
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise RetrievalError(
            f"entity_df has duplicate column(s) {repeated}; keep one of each, e.g. "
            "df = df.loc[:, ~df.columns.duplicated()], or rename them"
        )


def _check_key(
    entity: pa.Table,
    view: FeatureView,
    entity_name: str,
    key: str,
    key_types: dict[str, types.ValueType],
) -> None:
    """The key column exists and holds keys of the entity's type, by the rule the online
    look-up and the server apply (`featurehub.definitions.entity_keys`). A null key is an
    entity row without one: it matches nothing and gets null features."""
    names = entity.column_names
    if key not in names:
        raise RetrievalError(
            f"entity_df has no column {key!r}, the join key of entity {entity_name!r} that "
            f"feature view {view.name!r} needs (columns: {', '.join(names)})."
            f"{did_you_mean(key, names)} Add the column or drop the view's features"
        )
    expected = key_types.get(key)
    column = entity.column(key)
    found = column.type
    if expected is None or pa.types.is_null(found):
        return
    where = f"entity_df column {key!r} has type {found} but entity {entity_name!r} keys are"
    if not key_rule.is_integer_key(expected):
        if not expected.accepts(found):
            raise RetrievalError(
                f"{where} {expected.name}; convert the column, e.g. "
                f"df[{key!r}] = df[{key!r}].astype(str)"
            )
        return
    if pa.types.is_floating(found) and _missing(column):
        raise RetrievalError(
            f"{where} {expected.name}, and {_missing(column)} row(s) have no key (NaN), which "
            f"astype('int64') cannot convert: drop them first, df = df.dropna(subset=[{key!r}]), "
            f"then df[{key!r}] = df[{key!r}].astype('int64'); or keep them with null features: "
            f"df[{key!r}] = df[{key!r}].astype('Int64')"
        )
    if not pa.types.is_integer(found):
        raise RetrievalError(
            f"{where} {expected.name}; convert the column, e.g. "
            f"df[{key!r}] = df[{key!r}].astype('int64')"
        )
    if found == pa.uint64():
        largest = pc.max(column).as_py()
        if largest is not None and largest > key_rule.INT64_MAX:
            raise RetrievalError(
                f"entity_df column {key!r} holds {largest}, beyond the range of entity "
                f"{entity_name!r} keys ({key_rule.describe(expected)}, as the online store and "
                "the feature server take them): no feature row can match it; drop or fix "
                "those rows"
            )


def _missing(column: pa.ChunkedArray) -> int:
    """Null or NaN values of a float column: the keys pandas marks as missing."""
    nan = pc.sum(pc.is_nan(column)).as_py() or 0
    return int(column.null_count + nan)
