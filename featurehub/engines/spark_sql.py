"""Translate a DuckDB SqlSource query for Spark with sqlglot, rather than keeping two copies.

DuckDB reads files named in FROM ('data/x.parquet', read_parquet('...'), read_csv('...'));
Spark spells them parquet.`/abs/path` and csv.`/abs/path`. Relative paths are repo-relative.
"""

from __future__ import annotations

from pathlib import Path

import sqlglot
from sqlglot import exp


def _file_format(name: str) -> str | None:
    lowered = name.lower()
    if lowered.endswith(".parquet") or "*.parquet" in lowered:
        return "parquet"
    if lowered.endswith(".csv"):
        return "csv"
    return None


def _spark_table(fmt: str, path: str, repo_path: Path, alias: exp.Expression | None) -> exp.Table:
    full = Path(path)
    if not full.is_absolute():
        full = repo_path / full
    table = exp.Table(this=exp.Identifier(this=str(full), quoted=True), db=exp.Identifier(this=fmt))
    if alias is not None:
        table.set("alias", alias)
    return table


def duckdb_to_spark(query: str, repo_path: Path, tables: dict[str, str] | None = None) -> str:
    """The query in Spark SQL, with file references rewritten to Spark's path syntax and
    tables renamed as `tables` says (a transformation's `source` -> a temporary view)."""
    tree = sqlglot.parse_one(query, read="duckdb")
    renames = tables or {}
    for table in list(tree.find_all(exp.Table)):
        name = table.name
        if name in renames and not table.db:
            table.set("this", exp.Identifier(this=renames[name], quoted=True))
            continue
        fmt = _file_format(name)
        if fmt and not table.db:
            table.replace(_spark_table(fmt, name, repo_path, table.args.get("alias")))
    for reader, fmt in ((exp.ReadParquet, "parquet"), (exp.ReadCSV, "csv")):
        for call in list(tree.find_all(reader)):
            literal = call.find(exp.Literal)
            parent = call.parent
            if literal is None or not isinstance(parent, exp.Table):
                continue
            parent.replace(_spark_table(fmt, literal.this, repo_path, parent.args.get("alias")))
    return tree.sql(dialect="spark")
