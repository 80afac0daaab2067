"""A real Spark standalone cluster (one master, one worker) from the pyspark package."""

from __future__ import annotations

import os
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pyspark


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _wait_for_port(port: int, process: subprocess.Popen[bytes], log: Path, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"Spark process exited early; its log:\n{log.read_text()[-3000:]}")
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.3)
    raise RuntimeError(
        f"Spark did not listen on {port} within {seconds}s:\n{log.read_text()[-3000:]}"
    )


@contextmanager
def standalone_cluster(cores: int = 1, memory: str = "1g") -> Iterator[str]:
    """Yields the master URL (spark://127.0.0.1:PORT); stops both processes after."""
    home = Path(pyspark.__file__).parent
    env = {**os.environ, "SPARK_HOME": str(home), "SPARK_LOCAL_IP": "127.0.0.1"}
    spark_class = str(home / "bin" / "spark-class")
    port = free_port()
    master_url = f"spark://127.0.0.1:{port}"
    logs = Path(os.environ.get("TMPDIR", "/tmp")) / f"featurehub-spark-{port}"
    logs.mkdir(parents=True, exist_ok=True)
    processes: list[subprocess.Popen[bytes]] = []
    try:
        master_log = logs / "master.log"
        master = subprocess.Popen(
            [
                spark_class,
                "org.apache.spark.deploy.master.Master",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--webui-port",
                str(free_port()),
            ],
            env=env,
            stdout=master_log.open("wb"),
            stderr=subprocess.STDOUT,
        )
        processes.append(master)
        _wait_for_port(port, master, master_log, 60)
        worker_log = logs / "worker.log"
        worker = subprocess.Popen(
            [
                spark_class,
                "org.apache.spark.deploy.worker.Worker",
                master_url,
                "--host",
                "127.0.0.1",
                "--webui-port",
                str(free_port()),
                "--cores",
                str(cores),
                "--memory",
                memory,
                "--work-dir",
                str(logs / "work"),
            ],
            env=env,
            stdout=worker_log.open("wb"),
            stderr=subprocess.STDOUT,
        )
        processes.append(worker)
        deadline = time.monotonic() + 60
        while "Successfully registered with master" not in worker_log.read_text():
            if worker.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(
                    f"Spark worker did not register:\n{worker_log.read_text()[-3000:]}"
                )
            time.sleep(0.3)
        yield master_url
    finally:
        for process in reversed(processes):
            process.terminate()
        for process in processes:
            try:
                process.wait(20)
            except subprocess.TimeoutExpired:
                process.kill()
