"""The Redis store's read path: MGET on pooled sockets, past redis-py's client layer.

Why: on loopback an MGET of one key is a ~35 us round trip, and redis-py's client layer (pool
checkout with its health checks, the retry wrapper, command packing in Python) adds ~90 us to
it, more than everything else a one-entity lookup does. So redis-py still opens each connection,
which applies every setting of the URL exactly as for writes (TLS, user and password, db, RESP
version, timeouts), and then MGET goes straight to that connection's socket, answered through a
hiredis reader of our own.

Failures:
- A pooled connection that fails (the server restarted, the connection was killed) is dropped
  and the MGET sent once more on a new connection; a new connection's failure is raised. Reads
  are idempotent, so a retry after a half-sent command is safe.
- A timeout drops the connection (its late answer would be read as the next command's) and is
  raised, not retried: an unreachable server fails within `socket_timeout`.
- A connection is returned to the pool only after a complete answer; any error drops it.
- Errors are redis-py exceptions, so the store maps them as it maps those of other commands.
"""

from __future__ import annotations

import os
import socket
import threading
from collections.abc import Callable, Sequence

import hiredis
import redis.exceptions as rex
from redis.connection import AbstractConnection

READ_BUFFER_BYTES = 65_536


def _reply_error(message: str) -> rex.RedisError:
    """The redis-py exception of an error answer (hiredis returns it, we raise it)."""
    if message.startswith(("NOAUTH", "WRONGPASS")):
        return rex.AuthenticationError(message)
    if message.startswith("LOADING"):
        return rex.BusyLoadingError(message)
    return rex.ResponseError(message)


class _Link:
    """One connection opened by redis-py, used through its socket for MGET alone."""

    __slots__ = ("address", "buffer", "connection", "reader", "sock")

    def __init__(self, connection: AbstractConnection) -> None:
        connection.connect()  # redis-py: socket, TLS, AUTH, SELECT; raises redis-py errors
        sock: socket.socket | None = getattr(connection, "_sock", None)
        if sock is None:  # a redis-py without `_sock`: fail loudly, not silently slow
            connection.disconnect()
            raise rex.ConnectionError("redis-py connection exposes no socket")
        self.connection = connection
        self.sock = sock
        self.reader = hiredis.Reader(replyError=_reply_error)
        self.buffer = bytearray(READ_BUFFER_BYTES)
        self.address = f"{getattr(connection, 'host', '?')}:{getattr(connection, 'port', '?')}"

    def call(self, command: bytes) -> list[bytes | None]:
        """Send a packed command and read its whole answer; socket errors as redis-py's."""
        sock, reader, buffer = self.sock, self.reader, self.buffer
        try:
            sock.sendall(command)
            while True:
                received = sock.recv_into(buffer)
                if not received:
                    raise rex.ConnectionError(f"connection to {self.address} closed by server")
                reader.feed(buffer, 0, received)  # type: ignore[arg-type]  # stub: bytes only
                reply = reader.gets()
                if reply is not False:
                    break
        except TimeoutError as exc:  # socket.timeout is TimeoutError since Python 3.10
            raise rex.TimeoutError(f"timeout reading from {self.address}") from exc
        except OSError as exc:  # reset, broken pipe, TLS errors
            raise rex.ConnectionError(f"error talking to {self.address}: {exc}") from exc
        except hiredis.ProtocolError as exc:
            raise rex.ConnectionError(f"protocol error from {self.address}: {exc}") from exc
        if isinstance(reply, Exception):
            raise reply
        found: list[bytes | None] = reply
        return found

    def close(self) -> None:
        self.connection.disconnect()


class MgetPool:
    """Connections for MGET, checked out without health checks; thread-safe.

    The pool grows to the number of concurrent readers. `list.pop` and `list.append` are atomic,
    so checkout and return take no lock."""

    def __init__(self, make_connection: Callable[[], AbstractConnection]) -> None:
        self._make_connection = make_connection
        self._idle: list[_Link] = []
        self._pid = os.getpid()
        self._lock = threading.Lock()  # close() against a concurrent return
        self._closed = False

    def mget(self, names: Sequence[bytes]) -> list[bytes | None]:
        """The values of `names` (None for a missing key or a non-string value)."""
        command: bytes = hiredis.pack_command(("MGET", *names))  # type: ignore[arg-type]
        if self._pid != os.getpid():  # forked: the parent's sockets are not ours to share
            self._idle, self._pid = [], os.getpid()
        try:
            link = self._idle.pop()
        except IndexError:
            return self._call_fresh(command)
        try:
            found = link.call(command)
        except rex.TimeoutError:
            link.close()
            raise
        except rex.ConnectionError:  # a stale connection: one more try on a new one
            link.close()
            return self._call_fresh(command)
        except BaseException:
            link.close()
            raise
        self._release(link)
        return found

    def _call_fresh(self, command: bytes) -> list[bytes | None]:
        link = _Link(self._make_connection())
        try:
            found = link.call(command)
        except BaseException:
            link.close()
            raise
        self._release(link)
        return found

    def _release(self, link: _Link) -> None:
        if self._closed:
            link.close()
            return
        self._idle.append(link)
        if self._closed:  # close() ran meanwhile: it may have missed this link
            self._close_idle()

    def close(self) -> None:
        """Close the idle connections; those in use close when they come back."""
        self._closed = True
        self._close_idle()

    def _close_idle(self) -> None:
        with self._lock:
            while self._idle:
                self._idle.pop().close()
