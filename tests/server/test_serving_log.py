"""The serving log: every served vector in Parquet, readable with DuckDB, never blocking."""

from __future__ import annotations

import base64
import os
import signal
import time
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import duckdb
import orjson
import pyarrow as pa
import pyarrow.parquet as pq
from fastapi.testclient import TestClient

from featurehub import FeatureStore
from featurehub.config import RepoConfig
from featurehub.monitoring import SCHEMA, LogWriter, ServedAnswer, ServingLog
from featurehub.monitoring.log_format import FORMAT, FORMAT_KEY
from featurehub.server import create_app
from tests.monitoring.log_rows import record
from tests.server.conftest import server_config, with_serving_log


def read_log(root: Path) -> list[dict[str, object]]:
    relation = duckdb.sql(
        f"SELECT * FROM read_parquet('{root}/**/*.parquet', hive_partitioning = true, "
        "union_by_name = true) "
        "ORDER BY served_at, request_id, row"
    )
    return relation.arrow().read_all().to_pylist()  # type: ignore[no-any-return]


def answer(
    request_id: str,
    service: str | None,
    keys: dict[str, list[Any]],
    features: dict[str, tuple[list[Any], list[str], list[Any]]],
) -> ServedAnswer:
    """What the server hands the log: its answer's body, here built from columns (feature ->
    values, statuses, event timestamps)."""
    body = {
        "request_id": request_id,
        "feature_service": service,
        "keys": keys,
        "features": {
            name: {"values": values, "statuses": statuses, "event_timestamps": stamps}
            for name, (values, statuses, stamps) in features.items()
        },
    }
    rows = len(next(iter(keys.values())))
    return ServedAnswer(request_id, time.time(), service, rows, orjson.dumps(body, default=b64))


def b64(value: bytes) -> str:
    return base64.b64encode(value).decode()


def served(request_id: str, service: str | None = "svc", rows: int = 2) -> ServedAnswer:
    return answer(
        request_id,
        service,
        {"driver_id": list(range(rows))},
        {
            "conv_rate": ([0.5] * rows, ["present"] * rows, [None] * rows),
            "blob": ([b"\x00\x01"] * rows, ["not_found"] * rows, [None] * rows),
        },
    )


def test_server_logs_what_it_served(served_config: RepoConfig, log_root: Path) -> None:
    config = with_serving_log(served_config, log_root, sample_rates={"dispatch": 0.0})
    served_store = FeatureStore(config=config)
    app = create_app(served_store, server_config())
    with served_store, TestClient(app) as client:
        for _ in range(3):
            answer = client.post(
                "/v1/features",
                json={"feature_service": "driver_service", "entities": {"driver_id": [1001, 9]}},
            )
            assert answer.status_code == 200
        client.post(
            "/v1/features", json={"features": ["zone_stats:label"], "entities": {"zone": ["a"]}}
        )
        client.post(
            "/v1/features",
            json={"feature_service": "dispatch", "entities": {"driver_id": [1], "zone": ["a"]}},
        )  # sampled out
        last = answer.json()
    rows = read_log(log_root)  # the app stopped: the log is flushed
    assert len(rows) == 3 * 2 + 1
    assert {r["feature_service"] for r in rows} == {"driver_service", "ad-hoc"}
    mine = [r for r in rows if r["request_id"] == last["request_id"]]
    assert [r["row"] for r in mine] == [0, 1]
    first, second = record(mine[0]), record(mine[1])
    assert first["entity_keys"] == {"driver_id": 1001}
    assert first["feature_values"] == {"conv_rate": 0.5, "trips_today": 5}
    assert second["statuses"] == {"conv_rate": "not_found", "trips_today": "not_found"}
    assert first["event_timestamps"]["conv_rate"].tzinfo is not None
    assert second["event_timestamps"] == {"conv_rate": None, "trips_today": None}
    assert mine[0]["model_version"] is None
    assert {r["source"] for r in rows} == {"server"}
    assert str(mine[0]["date"]) == time.strftime("%Y-%m-%d", time.gmtime())
    assert not list(log_root.rglob("*.tmp"))


def test_schema_is_stable_and_staging_invisible(tmp_path: Path) -> None:
    writer = LogWriter(tmp_path)
    (tmp_path / "_staging").mkdir()
    (tmp_path / "_staging" / "crashed.parquet.tmp").write_bytes(b"half a file")
    files = writer.commit([served("a"), served("b", None, 1)])
    assert len(files) == 2
    for file in files:
        assert duckdb.sql(f"DESCRIBE SELECT * FROM '{file}'").fetchall()[0][0] == "request_id"
        schema = pq.read_schema(file)
        assert schema.metadata == {FORMAT_KEY: FORMAT}
        assert pq.read_schema(file).remove_metadata().names[: len(SCHEMA)] == SCHEMA.names
        assert schema.field("value.blob").type == pa.string()
    rows = read_log(tmp_path)
    assert len(rows) == 3
    assert rows[0]["value.blob"] == "AAE="  # bytes as base64, as served


def test_full_queue_drops_and_counts(tmp_path: Path) -> None:
    dropped: list[int] = []
    log = ServingLog(tmp_path, queue_size=2, on_dropped=dropped.append)  # not started
    assert log.log(served("a")) and log.log(served("b"))
    assert not log.log(served("c", rows=3))
    assert log.dropped == 3 and dropped == [3]
    log.close()  # commits what was queued
    assert len(read_log(tmp_path)) == 4
    assert not log.log(served("d"))  # closed


def test_close_loses_nothing_queued(tmp_path: Path) -> None:
    log = ServingLog(tmp_path, queue_size=100_000, batch_rows=1_000_000, flush_seconds=60)
    log.start()
    for index in range(5_000):
        assert log.log(served(f"r{index}", rows=1))
    log.close()
    assert len(read_log(tmp_path)) == 5_000
    assert log.written == 5_000 and log.dropped == 0


def test_write_failure_is_counted_not_fatal(tmp_path: Path) -> None:
    (tmp_path / "a_file").write_text("")
    dropped: list[int] = []
    log = ServingLog(tmp_path / "a_file" / "logs", flush_seconds=0.05, on_dropped=dropped.append)
    log.start()
    log.log(served("a"))
    wait_for(lambda: log.dropped == 2)  # the writer could not write it, and carries on
    log.log(served("b", rows=3))
    log.close()
    assert log.dropped == 5 and sum(dropped) == 5 and log.written == 0
    assert log.writer_starts == 1


def test_writer_death_is_counted_and_the_writer_restarted(tmp_path: Path) -> None:
    log = ServingLog(tmp_path, batch_rows=1_000_000, flush_seconds=3600)
    log.start()
    for index in range(10):
        log.log(served(f"lost{index}"))
    wait_for(lambda: log.queued == 0 and log.writer_pid is not None)
    pid = log.writer_pid
    assert pid is not None
    os.kill(pid, signal.SIGKILL)
    wait_for(lambda: log.dropped == 20)  # what it had not committed
    wait_for(lambda: log.writer_starts == 2)
    for index in range(5):
        log.log(served(f"kept{index}"))
    log.close()
    assert log.dropped == 20 and log.written == 10
    assert {r["request_id"] for r in read_log(tmp_path)} == {f"kept{i}" for i in range(5)}


def test_unreadable_answer_is_dropped_alone(tmp_path: Path) -> None:
    log = ServingLog(tmp_path)
    log.start()
    log.log(served("a"))
    log.log(ServedAnswer("odd", time.time(), "svc", 3, b"not the API's answer"))
    log.log(served("b"))
    log.close()
    assert log.dropped == 3 and log.written == 4
    assert {r["request_id"] for r in read_log(tmp_path)} == {"a", "b"}


def wait_for(condition: Callable[[], bool]) -> None:
    """Poll `condition` until it holds (the writer is another process); fail after a minute."""
    deadline = time.monotonic() + 60
    while not condition():
        assert time.monotonic() < deadline, "condition never held"
        time.sleep(0.01)


def test_rows_are_typed_columns_of_what_was_served(tmp_path: Path) -> None:
    """Each key and feature is a typed column (nulls stay nulls; NaN, which the answer holds
    as null, too), and lists shared by several features (one view's statuses) are read right."""
    shared = ["present", "not_found", "expired"]
    values: dict[str, list[object]] = {
        "rate": [0.5, 100.0, float("nan")],
        "count": [1, None, -(2**63)],
        "flag": [True, False, None],
        "zone": ['a,"b"', None, "é\n"],
        "blob": [b"\x00", None, b"\xff"],
    }
    stamp = "2026-01-01T00:00:00Z"
    request = answer(
        "r1",
        "svc",
        {"driver_id": [1, 2, 3], "zone_id": ["x", "y,z", "w"]},
        {
            name: (column, shared, [stamp, None, stamp] if name != "blob" else [None] * 3)
            for name, column in values.items()
        },
    )
    (file,) = LogWriter(tmp_path).commit([request])
    schema = pq.read_schema(file)
    types = {"rate": pa.float64(), "count": pa.int64(), "flag": pa.bool_(), "zone": pa.string()}
    for name, arrow_type in {**types, "blob": pa.string()}.items():
        assert schema.field(f"value.{name}").type == arrow_type
        assert schema.field(f"event_timestamp.{name}").type == pa.timestamp("us", tz="UTC")
    assert schema.field("key.driver_id").type == pa.int64()
    rows = read_log(tmp_path)
    assert [r["row"] for r in rows] == [0, 1, 2]
    for index, row in enumerate(rows):
        logged = record(row)
        expected = {name: column[index] for name, column in values.items()}
        expected["rate"] = [0.5, 100.0, None][index]
        expected["blob"] = [b64(b"\x00"), None, b64(b"\xff")][index]
        assert logged["feature_values"] == expected
        assert logged["statuses"] == dict.fromkeys(values, shared[index])
        assert logged["entity_keys"] == {
            "driver_id": index + 1,
            "zone_id": ["x", "y,z", "w"][index],
        }
    assert record(rows[1])["event_timestamps"] == dict.fromkeys(values)
    assert record(rows[0])["event_timestamps"]["rate"] == datetime(2026, 1, 1, tzinfo=timezone.utc)
