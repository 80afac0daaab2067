"""The serving log: every served vector in Parquet, readable with DuckDB, never blocking."""

from __future__ import annotations

import base64
import time
from pathlib import Path

import duckdb
import orjson
import pytest
from fastapi.testclient import TestClient

from featurehub import FeatureStore
from featurehub.monitoring import SCHEMA, ServedRequest, ServingLog
from featurehub.server import create_app
from tests.server.conftest import server_config


def read_log(root: Path) -> list[dict[str, object]]:
    relation = duckdb.sql(
        f"SELECT * FROM read_parquet('{root}/**/*.parquet', hive_partitioning = true) "
        "ORDER BY served_at, request_id, row"
    )
    return relation.arrow().read_all().to_pylist()  # type: ignore[no-any-return]


def served(request_id: str, service: str | None = "svc", rows: int = 2) -> ServedRequest:
    return ServedRequest(
        request_id,
        time.time(),
        service,
        {"driver_id": list(range(rows))},
        {"conv_rate": [0.5] * rows, "blob": [b"\x00\x01"] * rows},
        {"conv_rate": ["present"] * rows, "blob": ["not_found"] * rows},
        {"conv_rate": [None] * rows, "blob": [None] * rows},
    )


def test_server_logs_what_it_served(served_store: FeatureStore, log_root: Path) -> None:
    app = create_app(served_store, server_config(log_root, log_sample_rates={"dispatch": 0.0}))
    with TestClient(app) as client:
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
    assert orjson.loads(mine[0]["entity_keys"]) == {"driver_id": 1001}
    assert orjson.loads(mine[0]["feature_values"]) == {"conv_rate": 0.5, "trips_today": 5}
    assert orjson.loads(mine[1]["statuses"]) == {
        "conv_rate": "not_found",
        "trips_today": "not_found",
    }
    assert orjson.loads(mine[0]["event_timestamps"])["conv_rate"].endswith("Z")
    assert mine[0]["model_version"] is None
    assert str(mine[0]["date"]) == time.strftime("%Y-%m-%d", time.gmtime())
    assert not list(log_root.rglob("*.tmp"))


def test_schema_is_stable_and_staging_invisible(tmp_path: Path) -> None:
    log = ServingLog(tmp_path)
    (tmp_path / "_staging").mkdir()
    (tmp_path / "_staging" / "crashed.parquet.tmp").write_bytes(b"half a file")
    files = log.commit([served("a"), served("b", None, 1)])
    assert len(files) == 2
    for file in files:
        assert duckdb.sql(f"DESCRIBE SELECT * FROM '{file}'").fetchall()[0][0] == "request_id"
        import pyarrow.parquet as pq

        assert pq.read_schema(file).remove_metadata().equals(SCHEMA)
    rows = read_log(tmp_path)
    assert len(rows) == 3
    assert orjson.loads(rows[0]["feature_values"])["blob"] == "AAE="  # bytes as base64


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


def test_write_failure_is_counted_not_fatal(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    log = ServingLog(tmp_path, flush_seconds=0.05)
    calls = []

    def fail(requests: object) -> None:
        calls.append(1)
        raise OSError("disk full")

    monkeypatch.setattr(log, "write", fail)
    log.start()
    log.log(served("a"))
    log.close()
    assert calls and log.dropped == 2


def test_rows_read_as_orjson_writes_them(tmp_path: Path) -> None:
    """Columns are turned into JSON text by Arrow kernels; the text is orjson's, value for
    value, and lists shared by several features (one view's statuses) are read right."""
    shared = ["present", "not_found", "expired"]
    values: dict[str, list[object]] = {
        "rate": [0.5, 100.0, float("nan")],
        "count": [1, None, -(2**63)],
        "flag": [True, False, None],
        "zone": ['a,"b"', None, "é\n"],
        "blob": [b"\x00", None, b"\xff"],
    }
    stamp = "2026-01-01T00:00:00Z"
    request = ServedRequest(
        "r1",
        time.time(),
        "svc",
        {"driver_id": [1, 2, 3], "zone_id": ["x", "y,z", "w"]},
        values,
        {name: shared for name in values},
        {name: [stamp, None, stamp] if name != "blob" else [None] * 3 for name in values},
    )
    ServingLog(tmp_path).commit([request])
    rows = read_log(tmp_path)
    assert [r["row"] for r in rows] == [0, 1, 2]
    for index, row in enumerate(rows):
        expected_values = {name: column[index] for name, column in values.items()}
        as_served = orjson.dumps(expected_values, default=lambda b: base64.b64encode(b).decode())
        assert row["feature_values"] == as_served.decode()
        assert orjson.loads(row["statuses"]) == dict.fromkeys(values, shared[index])
        assert orjson.loads(row["entity_keys"]) == {
            "driver_id": index + 1,
            "zone_id": ["x", "y,z", "w"][index],
        }
    assert orjson.loads(rows[1]["event_timestamps"]) == dict.fromkeys(values)
