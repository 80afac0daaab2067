"""The one way featurehub opens DuckDB: UTC, silent, paths resolved in the repo."""

from __future__ import annotations

import contextlib
from pathlib import Path

import duckdb


def duckdb_connection(repo_path: Path | None = None) -> duckdb.DuckDBPyConnection:
    """An in-memory connection. The session time zone is UTC (naive timestamps are UTC), the
    progress bar is off (it writes to stdout, which `--json` output owns), and relative file
    paths in SQL resolve inside the repo when one is given."""
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    # In Jupyter without ipywidgets DuckDB refuses to touch the setting (and shows no bar).
    with contextlib.suppress(duckdb.InvalidInputException):
        con.execute("SET enable_progress_bar = false")
    if repo_path is not None:
        con.execute("SET file_search_path = ?", [str(repo_path)])
    return con
