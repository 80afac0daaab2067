"""Reading the serving log back: one DuckDB relation over every committed file, whatever
wrote it and whenever.

Files written before the `source` column existed lack it; they were all written by the
feature server, so their rows read as `source = 'server'`. Files are read by column name
(`union_by_name`), so a column added later never shifts the others: format 2 files give the
typed `key.*`, `value.*`, `status.*` and `event_timestamp.*` columns, format 1 files (before
issue 10) the JSON text columns `entity_keys`, `feature_values`, `statuses` and
`event_timestamps`; each is null on the other's rows (`featurehub serving-log upgrade`
rewrites format 1 files). The skew checks read both (`featurehub.skew.served_rows`).
The model columns (`model_version`, `model`, `arm`, `prediction`) are on every row read,
null for rows of POST /v1/features and of files written before them.
"""

from __future__ import annotations

from pathlib import Path

import duckdb

from featurehub.monitoring.log_format import MODEL_COLUMNS, SERVER
from featurehub.monitoring.serving_log import ServingLogError


def read_serving_log(
    root: Path, con: duckdb.DuckDBPyConnection | None = None
) -> duckdb.DuckDBPyRelation:
    """Every row of the serving log under `root`, with the partition columns
    (`feature_service`, `date`) and `source` on every row."""
    root = Path(root)
    if not any(root.glob("feature_service=*/date=*/*.parquet")):
        raise ServingLogError(
            f"no serving log under {root}: nothing was logged there yet (serve some requests, "
            "or check serving_log.root in featurehub.yaml)"
        )
    pattern = str(root / "**" / "*.parquet").replace("'", "''")
    con = con or duckdb.connect()
    relation = con.sql(
        f"SELECT * FROM read_parquet('{pattern}', hive_partitioning = true, union_by_name = true)"
    )
    missing = [name for name in MODEL_COLUMNS if name not in relation.columns]
    if missing:  # files of before the model columns, or no predict request logged
        relation = relation.select(", ".join(["*", *(f"NULL AS {name}" for name in missing)]))
    if "source" in relation.columns:
        return relation.select(f"* REPLACE (coalesce(source, '{SERVER}') AS source)")
    return relation.select(f"*, '{SERVER}' AS source")
