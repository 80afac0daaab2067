"""Read a feature view's source with DuckDB: as a SQL relation, and its schema.

The schema comes from file metadata (Parquet footers, a CSV sniff of the first rows, a query
description with LIMIT 0), never from scanning the data, so `apply` stays fast on big sources.
"""

from __future__ import annotations

import glob
import os
from pathlib import Path

import duckdb
import pyarrow as pa

from featurehub.definitions import CsvSource, DataSource, FeatureView, ParquetSource, SqlSource
from featurehub.errors import FeaturehubError
from featurehub.offline.connection import duckdb_connection


class SourceError(FeaturehubError):
    """A source cannot be read: missing file, bad query, unreadable format."""


def _quote(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def resolve_path(path: str, repo_path: Path) -> str:
    """A source path as DuckDB should read it: relative paths are repo-relative; a
    directory means every Parquet file below it."""
    if "://" in path:
        return path
    full = Path(path).expanduser()
    if not full.is_absolute():
        full = repo_path / full
    if full.is_dir():
        return str(full / "**" / "*.parquet")
    return str(full)


def is_inside(path: str, folder: Path) -> bool:
    """True when `path` (absolute, maybe a glob) lies in `folder`, `..` segments resolved."""
    root = os.path.normpath(folder.absolute())
    return os.path.normpath(path).startswith(root.rstrip(os.sep) + os.sep)


def _check_inside_repo(source: ParquetSource | CsvSource, path: str, repo_path: Path) -> None:
    """A local path outside the repo is read only when the source says so: a path that works
    on one machine because of where its files happen to be is a mistake found at apply."""
    if "://" in path or source.allow_outside_repo or is_inside(path, repo_path):
        return
    raise SourceError(
        f"source {source.name!r}: path {source.path!r} is outside the feature repo "
        f"({repo_path}); move the data into the repo, or pass allow_outside_repo=True to "
        f"{type(source).__name__} to read it from there on purpose"
    )


def _has_files(pattern: str) -> bool:
    if "://" in pattern:
        return True
    return bool(glob.glob(pattern, recursive=True))


def relation_sql(source: DataSource, repo_path: Path) -> str:
    """A DuckDB table expression yielding the source's rows, e.g. `read_parquet('...')`."""
    if isinstance(source, ParquetSource):
        path = resolve_path(source.path, repo_path)
        _check_inside_repo(source, path, repo_path)
        if not _has_files(path):
            raise SourceError(
                f"source {source.name!r}: no Parquet file at {source.path!r} (looked for {path}); "
                "fix path= or generate the data first"
            )
        return f"read_parquet({_quote(path)}, hive_partitioning = true, union_by_name = true)"
    if isinstance(source, CsvSource):
        path = resolve_path(source.path, repo_path)
        _check_inside_repo(source, path, repo_path)
        if not _has_files(path):
            raise SourceError(
                f"source {source.name!r}: no CSV file at {source.path!r} (looked for {path}); "
                "fix path="
            )
        return f"read_csv({_quote(path)}, header = true, delim = {_quote(source.delimiter)})"
    if isinstance(source, SqlSource):
        return f"({source.query})"
    raise SourceError(f"source {source.name!r}: kind {source.kind!r} cannot be read by DuckDB")


def connect(repo_path: Path) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB connection where relative paths in SQL resolve inside the repo."""
    return duckdb_connection(repo_path)


def read_only_connection(repo_path: Path) -> duckdb.DuckDBPyConnection:
    """An in-memory connection that may read files inside the repo and nothing else: no file
    outside it, no URL, no extension loaded or installed, and settings locked so a query
    cannot undo this. For SQL featurehub did not write (an entity query).

    DuckDB checks a relative path against the working directory, so relative paths read the
    repo only when the working directory is inside it. Writes inside the repo are not refused
    here (DuckDB allows both in an allowed folder): callers run only SELECT statements."""
    con = duckdb_connection()
    con.execute(
        "SET allowed_directories = ?", [[str(repo_path.absolute()).rstrip(os.sep) + os.sep]]
    )
    con.execute("SET autoinstall_known_extensions = false")
    con.execute("SET autoload_known_extensions = false")
    con.execute("SET enable_external_access = false")
    con.execute("SET lock_configuration = true")
    return con


def source_schema(source: DataSource, repo_path: Path) -> pa.Schema:
    """The source's columns and Arrow types, read from metadata only."""
    sql = relation_sql(source, repo_path)
    con = duckdb_connection(repo_path)
    try:
        return con.sql(f"SELECT * FROM {sql} AS source LIMIT 0").to_arrow_table().schema
    except duckdb.Error as exc:
        raise SourceError(f"source {source.name!r} cannot be read: {exc}") from None
    finally:
        con.close()


TRANSFORMED_SOURCE = "source"


def view_relation_sql(view: FeatureView, repo_path: Path) -> str:
    """The rows a view is computed from: its source, through its transformation if any."""
    relation = relation_sql(view.source, repo_path)
    if view.transformation is None:
        return relation
    return (
        f"(WITH {TRANSFORMED_SOURCE} AS (SELECT * FROM {relation} AS raw) "
        f"SELECT * FROM ({view.transformation}) AS transformed)"
    )


def view_schema(view: FeatureView, repo_path: Path) -> pa.Schema:
    """Columns of the rows a view is computed from (its transformation's output)."""
    con = duckdb_connection(repo_path)
    try:
        sql = view_relation_sql(view, repo_path)
        return con.sql(f"SELECT * FROM {sql} AS rows LIMIT 0").to_arrow_table().schema
    except duckdb.Error as exc:
        raise SourceError(
            f"feature view {view.name!r}: its transformation cannot run on source "
            f"{view.source.name!r}: {exc}"
        ) from None
    finally:
        con.close()
