"""The deployable server in a process of its own: SIGHUP re-reads the registry; SIGTERM lets
in-flight requests finish and flushes the serving log, losing nothing."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import duckdb
import httpx

from featurehub import FeatureStore
from tests.redis_server import free_port
from tests.server.conftest import DEFS, materialize
from tests.server.test_refresh import NEW_SERVICE

ROOT = Path(__file__).resolve().parents[2]
YAML = """project: shutdown
registry: {url: "sqlite:///data/registry.db", refresh_seconds: 3600}
serving_log: {flush_seconds: 3600, batch_rows: 1000000}
"""
BODY = {"feature_service": "driver_service", "entities": {"driver_id": [1001, 1002]}}


def start(repo: Path, port: int) -> subprocess.Popen[bytes]:
    command = [
        sys.executable, "-m", "uvicorn", "serving.app:app", "--host", "127.0.0.1",
        "--port", str(port), "--log-level", "warning", "--timeout-graceful-shutdown", "20",
    ]  # fmt: skip
    env = {**os.environ, "FEATUREHUB_REPO": str(repo)}
    process = subprocess.Popen(command, cwd=ROOT, env=env)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1).status_code == 200:
                return process
        except httpx.HTTPError:
            time.sleep(0.1)
    process.kill()
    raise AssertionError("the server did not start")


def test_sighup_and_graceful_shutdown(tmp_path: Path) -> None:
    config = materialize(tmp_path / "repo", project="shutdown")
    repo = config.repo_path
    (repo / "featurehub.yaml").write_text(YAML)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    process = start(repo, port)
    try:
        # SIGHUP: a new service is served without waiting for refresh_seconds (an hour)
        (repo / "defs.py").write_text(DEFS + NEW_SERVICE)
        with FeatureStore(repo) as other:
            other.apply()
        process.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + 10
        extra = {"feature_service": "extra", "entities": {"zone": ["a"]}}
        while httpx.post(f"{url}/v1/features", json=extra).status_code != 200:
            assert time.monotonic() < deadline, "SIGHUP did not refresh the registry"
            time.sleep(0.1)

        # SIGTERM while clients are sending: every answered request was logged
        answered: list[str] = []
        refused = []
        lock = threading.Lock()
        halfway = threading.Event()

        def client(index: int) -> None:
            with httpx.Client(base_url=url, timeout=30) as http:
                for request in range(200):
                    if request == 25 and index == 0:
                        halfway.set()
                    try:
                        answer = http.post("/v1/features", json=BODY)
                    except httpx.HTTPError:
                        refused.append(index)
                        return
                    assert answer.status_code == 200, answer.text
                    with lock:
                        answered.append(answer.json()["request_id"])

        with ThreadPoolExecutor(4) as pool:
            futures = [pool.submit(client, index) for index in range(4)]
            halfway.wait(30)
            process.send_signal(signal.SIGTERM)
            for future in futures:
                future.result()
        # uvicorn re-raises the signal after its graceful shutdown
        assert process.wait(30) in (0, -signal.SIGTERM)
    finally:
        if process.poll() is None:
            process.kill()
    logged = duckdb.sql(
        f"SELECT request_id FROM read_parquet('{repo}/data/serving_logs/**/*.parquet', "
        "hive_partitioning = true) WHERE feature_service = 'driver_service'"
    ).fetchall()
    assert len(answered) >= 25
    assert sorted(r[0] for r in logged) == sorted(answered * 2)  # two entity rows each
