"""The Spark engine: PySpark on any master (local[*], a standalone cluster, ...).

It reads the source, normalizes rows and takes the task's rows exactly as the local engine
does (`selection_sql`), and writes the offline store's staging folder from the executors;
the runner publishes it through the same commit protocol. Online rows are written from the
executors too, partition by partition.
"""

from __future__ import annotations

import os
import shutil
import sys
import threading
import uuid
from collections.abc import Callable, Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from featurehub import types
from featurehub.config import OnlineStoreConfig, SparkConfig
from featurehub.definitions import CsvSource, FeatureView, ParquetSource, SqlSource
from featurehub.engines.base import (
    Engine,
    MaterializationResult,
    MaterializationTask,
    StagedRun,
    latest_per_key,
    selection_sql,
)
from featurehub.engines.spark_sql import duckdb_to_spark
from featurehub.errors import FeaturehubError
from featurehub.offline.base import CREATED_TIMESTAMP, EVENT_TIMESTAMP
from featurehub.offline.parquet import ParquetOfflineStore
from featurehub.offline.source_reader import resolve_path

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession


class SparkUnavailable(FeaturehubError):
    """PySpark or a Java runtime is missing."""


_SPARK_TYPES = {
    "Int32": "int",
    "Int64": "bigint",
    "Float32": "float",
    "Float64": "double",
    "String": "string",
    "Bool": "boolean",
    "Bytes": "binary",
    "Timestamp": "timestamp",
}

_sessions: dict[str, SparkSession] = {}
_lock = threading.Lock()


def check_java() -> None:
    """Spark needs a JVM; say what to install rather than failing deep inside py4j."""
    java_home = os.environ.get("JAVA_HOME")
    if java_home and Path(java_home, "bin", "java").exists():
        return
    if shutil.which("java"):
        return
    raise SparkUnavailable(
        "the Spark engine needs a Java runtime (17 or newer) and none was found: install one "
        "(Debian/Ubuntu: apt-get install openjdk-17-jre-headless; macOS: brew install openjdk@17) "
        "or set JAVA_HOME; or use --engine local"
    )


def spark_session(config: SparkConfig) -> SparkSession:
    """One session per master for the whole process: starting a JVM costs seconds."""
    check_java()
    try:
        from pyspark.sql import SparkSession
    except ImportError:
        raise SparkUnavailable(
            "the Spark engine needs pyspark: pip install 'featurehub[spark]'"
        ) from None
    with _lock:
        session = _sessions.get(config.master)
        if session is not None and session.sparkContext._jsc is not None:
            return session
        os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
        # Executors must run the same Python (and so the same featurehub) as the driver.
        os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
        os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)
        builder = (
            SparkSession.builder.master(config.master)
            .appName("featurehub")
            .config("spark.sql.session.timeZone", "UTC")
            .config("spark.sql.parquet.outputTimestampType", "TIMESTAMP_MICROS")
            .config("spark.sql.sources.partitionOverwriteMode", "static")
            .config("spark.ui.enabled", "false")
            .config("spark.ui.showConsoleProgress", "false")
            .config("spark.sql.shuffle.partitions", "8")
        )
        for key, value in config.conf.items():
            builder = builder.config(key, value)
        session = builder.getOrCreate()
        session.sparkContext.setLogLevel("ERROR")
        _sessions[config.master] = session
        return session


def stop_sessions() -> None:
    with _lock:
        for session in _sessions.values():
            session.stop()
        _sessions.clear()


def _literal(moment: datetime) -> str:
    return f"TIMESTAMP '{moment.astimezone(timezone.utc).strftime('%Y-%m-%d %H:%M:%S.%f')}'"


def read_view_rows(spark: SparkSession, view: FeatureView, repo_path: Path) -> DataFrame:
    """The rows a view is computed from: its source, through its transformation if any (the
    DuckDB SQL translated by sqlglot, the source registered as a temporary view)."""
    frame = read_source(spark, view, repo_path)
    if view.transformation is None:
        return frame
    temporary = f"featurehub_source_{uuid.uuid4().hex[:12]}"
    frame.createOrReplaceTempView(temporary)
    return spark.sql(duckdb_to_spark(view.transformation, repo_path, {"source": temporary}))


def read_source(spark: SparkSession, view: FeatureView, repo_path: Path) -> DataFrame:
    source = view.source
    if isinstance(source, ParquetSource):
        # Spark reads a directory whole (hive partitions included) but knows no `**` glob.
        path = resolve_path(source.path, repo_path).removesuffix("/**/*.parquet")
        return spark.read.option("mergeSchema", "true").parquet(path)
    if isinstance(source, CsvSource):
        path = resolve_path(source.path, repo_path)
        return (
            spark.read.option("header", "true")
            .option("inferSchema", "true")
            .option("sep", source.delimiter)
            .csv(path)
        )
    if isinstance(source, SqlSource):
        return spark.sql(duckdb_to_spark(source.query, repo_path))
    raise FeaturehubError(f"source {source.name!r}: the Spark engine cannot read {source.kind}")


def normalize(frame: DataFrame, view: FeatureView) -> DataFrame:
    """The view's rows in the offline schema: the same SQL as the local engine (keys,
    event_timestamp, created_timestamp defaulting to event time, features), rows with a null
    join key dropped."""
    from pyspark.sql import functions as F

    source = view.source
    ts = F.col(f"`{source.timestamp_field}`").cast("timestamp")
    created = (
        F.coalesce(F.col(f"`{source.created_timestamp_field}`").cast("timestamp"), ts)
        if source.created_timestamp_field
        else ts
    )
    keys = []
    for entity in view.entities:
        for key in entity.join_keys:
            value_type = entity.key_types.get(key, types.Int64)
            keys.append(F.col(f"`{key}`").cast(_SPARK_TYPES[value_type.name]).alias(key))
    features = [
        F.col(f"`{f.name}`").cast(_SPARK_TYPES[f.dtype.name]).alias(f.name) for f in view.schema
    ]
    selected = frame.select(
        *keys, ts.alias(EVENT_TIMESTAMP), created.alias(CREATED_TIMESTAMP), *features
    )
    condition = F.lit(True)
    for key in view.join_keys:
        condition = condition & F.col(f"`{key}`").isNotNull()
    return selected.where(condition)


def _online_writer(
    online: OnlineStoreConfig, project: str, view: FeatureView
) -> Callable[[Iterator[pa.RecordBatch]], Iterator[pa.RecordBatch]]:
    """The function each executor runs over its partition: write the newest row per key of
    the partition to the online store, yield how many rows it wrote."""

    def write_partition(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        from featurehub.online.factory import build_online_store

        table = pa.Table.from_batches(list(batches))
        written = 0
        if table.num_rows:
            with build_online_store(online, project) as store:
                written = store.write(view, latest_per_key(table, view))
        yield pa.RecordBatch.from_pydict({"written": [written]})

    return write_partition


class SparkEngine(Engine):
    """Reads and normalizes on Spark; executors write the offline staging folder and,
    partitioned by entity key, the online store."""

    def __init__(
        self,
        repo_path: Path,
        offline: ParquetOfflineStore,
        config: SparkConfig,
        online: OnlineStoreConfig | None = None,
        project: str = "",
    ) -> None:
        self.repo_path = repo_path
        self.offline = offline
        self.config = config
        self.online = online
        self.project = project

    def materialize(self, task: MaterializationTask) -> StagedRun:
        from pyspark.sql import functions as F

        spark = spark_session(self.config)
        normalized = normalize(read_view_rows(spark, task.view, self.repo_path), task.view)
        taken, pending = selection_sql(task, _literal)
        rows = normalized.where(F.expr(taken))
        [counts] = normalized.agg(
            F.count(F.when(F.expr(pending), 1)).alias("pending"),
            F.count(F.when(F.col(EVENT_TIMESTAMP).isNull(), 1)).alias("skipped"),
        ).collect()
        staging = self.offline.stage(task.view) if task.offline else None
        try:
            if staging is not None:
                self._write_offline(rows, staging, task)
                read = self.offline.staged_rows(staging)
            else:
                read = rows.count()
            online_rows = 0
            if self.online is not None and task.writes_online and read:
                keys = [F.col(f"`{key}`") for key in task.view.join_keys]
                counted = (
                    rows.repartition(*keys)
                    .mapInArrow(
                        _online_writer(self.online, self.project, task.view), "written long"
                    )
                    .collect()
                )
                online_rows = sum(row["written"] for row in counted)
        except BaseException:
            if staging is not None:
                self.offline.discard(staging)
            raise
        result = MaterializationResult.of(
            task, read, online_rows, int(counts["pending"]), int(counts["skipped"])
        )
        return StagedRun(result, staging)

    def _write_offline(self, rows: DataFrame, staging: Path, task: MaterializationTask) -> None:
        """The rows into the staging folder as date=YYYY-MM-DD/*.parquet, from the executors."""
        from pyspark.sql import functions as F

        try:
            (
                rows.withColumn("date", F.date_format(EVENT_TIMESTAMP, "yyyy-MM-dd"))
                .write.mode("overwrite")
                .partitionBy("date")
                .parquet(str(staging))
            )
        except Exception as exc:
            raise FeaturehubError(
                f"Spark failed to write view {task.view.name!r}: {_short(exc)}"
            ) from exc
        for leftover in staging.rglob("*"):
            if leftover.is_file() and not leftover.name.endswith(".parquet"):
                leftover.unlink()  # _SUCCESS markers and .crc checksums


def _short(exc: Any) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__
