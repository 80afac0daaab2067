"""A real HTTP listener on loopback (http.server in a thread) that records what is POSTed,
answers 500 to its first `failures` requests, and, when `hold` is given, keeps each request
waiting until the event is set (a hung webhook)."""

from __future__ import annotations

import json
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class Listener:
    def __init__(self, failures: int = 0, hold: threading.Event | None = None) -> None:
        self.failures = failures
        self.hold = hold
        self.attempts = 0
        self.received: list[dict[str, Any]] = []  # bodies answered 200
        self.headers: list[dict[str, str]] = []
        self.arrived = threading.Event()  # a request came in (answered or not)
        self.got = threading.Condition()
        listener = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                with listener.got:
                    listener.attempts += 1
                    failing = listener.attempts <= listener.failures
                listener.arrived.set()
                if listener.hold is not None:
                    listener.hold.wait()
                if failing:
                    self.send_response(500)
                    self.end_headers()
                    return
                with listener.got:
                    listener.received.append(json.loads(body))
                    listener.headers.append(dict(self.headers))
                    listener.got.notify_all()
                self.send_response(200)
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> Listener:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.hold is not None:
            self.hold.set()
        self.server.shutdown()
        self.server.server_close()

    def wait_for(self, count: int, timeout: float = 30.0) -> list[dict[str, Any]]:
        """The bodies received once there are `count` of them (or at `timeout`)."""
        with self.got:
            self.got.wait_for(lambda: len(self.received) >= count, timeout)
            return list(self.received)


def dead_url() -> str:
    """A loopback URL nothing listens on: connections are refused."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}/hook"
