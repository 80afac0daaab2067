"""The serving log: every feature vector the server (or the SDK, `sdk_log`) served, as
Parquet, for later checks. Both build it with `open_serving_log`, from `serving_log:`.

The request path only appends the answer it sent (`ServedAnswer`: ids and the body's bytes)
to a bounded queue (`ServingLog.log`). A thread of the server drains it every 50 ms and hands
what it took to a writer process (`log_writer.run`, a fresh interpreter) over a
pipe: one pickle and one write per 64 answers, a microsecond or two per request. The writer
decodes the bodies, converts them to Arrow and commits one Parquet file per (feature
service, date) every `batch_rows` rows or `flush_seconds`. That work (~70 us per request, in
bursts) used to run on a thread of the server, where requests paid for it in CPU and in
waits for the GIL.

When the queue is full the records are dropped and counted (`dropped`), so a slow disk never
slows serving. The writer reports the rows it wrote or dropped (`written`, `dropped`); if it
dies, the rows it had not reported are counted as dropped, the error is logged and a new
writer is started.

Layout, readable with DuckDB's hive partitioning::

    <root>/feature_service=<name>/date=YYYY-MM-DD/part-<utc time>-<pid>-<uuid>.parquet

Requests that named features rather than a service go to `feature_service=ad-hoc` (a name no
service can have). The schema is in `log_format`, the commit protocol in `log_writer`.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import logging
import pickle
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable
from multiprocessing.connection import Connection
from pathlib import Path

from featurehub.config import ServingLogConfig
from featurehub.errors import FeaturehubError
from featurehub.monitoring.log_format import ServedAnswer

log = logging.getLogger(__name__)

SEND_ANSWERS = 64
"""Answers per message to the writer: one pickle (a copy of their bodies, under the GIL) and
one write to the pipe (which lets the GIL go)."""

_WRITER_MAIN = (
    "import json, sys; sys.path[:0] = json.loads(sys.argv[1]); "
    "from featurehub.monitoring.log_writer import main; main(sys.argv[2:])"
)

RESTART_SECONDS = 1.0
"""Least time between two starts of the writer process, should it keep dying."""


class ServingLogError(FeaturehubError):
    """The serving log cannot be written or read where featurehub.yaml points."""


def open_serving_log(
    settings: ServingLogConfig,
    repo_path: Path,
    *,
    on_dropped: Callable[[int], None] | None = None,
    on_written: Callable[[int], None] | None = None,
) -> ServingLog:
    """The serving log `settings` describe (not started), its root checked first: a root
    that cannot be written fails here, in one line, rather than every record later in the
    writer process, where nobody would see it."""
    root = Path(settings.root).expanduser()
    root = root if root.is_absolute() else Path(repo_path) / root
    check_root(root)
    return ServingLog(
        root,
        queue_size=settings.queue_size,
        batch_rows=settings.batch_rows,
        flush_seconds=settings.flush_seconds,
        on_dropped=on_dropped,
        on_written=on_written,
    )


def check_root(root: Path) -> None:
    """Create `root` and its staging folder, and write and remove a file there; raise a
    ServingLogError naming the problem and the setting to change if any step fails."""
    staging = root / "_staging"
    probe = staging / f"probe-{uuid.uuid4().hex}.tmp"
    try:
        staging.mkdir(parents=True, exist_ok=True)
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise ServingLogError(
            f"cannot write the serving log under {root} ({reason}: {exc.filename}); set "
            "serving_log.root in featurehub.yaml to a folder featurehub can create and write"
        ) from None


class _Writer:
    """One writer process, its pipe, and the rows sent to it not yet reported back.

    A fresh interpreter (`python -c`, fork and exec in C): nothing of the server runs in it,
    not even its main module, which multiprocessing's spawn would import again (and a
    script calling `uvicorn.run(app)` without a main guard would start a second server).
    """

    def __init__(self, root: Path, batch_rows: int, flush_seconds: float) -> None:
        ours, theirs = socket.socketpair()
        arguments = [json.dumps(sys.path), str(theirs.fileno()), str(root), str(batch_rows)]
        self.process = subprocess.Popen(
            [sys.executable, "-c", _WRITER_MAIN, *arguments, repr(flush_seconds)],
            pass_fds=[theirs.fileno()],
            stdin=subprocess.DEVNULL,
        )
        theirs.close()
        self.connection = Connection(ours.detach())
        self.unreported = 0
        self.ended = False

    def exitcode(self) -> int | None:
        return self.process.poll()

    def wait(self, seconds: float) -> bool:
        """Whether the process exited within `seconds`."""
        try:
            self.process.wait(seconds)
        except subprocess.TimeoutExpired:
            return False
        return True

    def send(self, message: bytes, rows: int) -> None:
        self.unreported += rows  # lost with the process if it dies, even while sending
        self.connection.send_bytes(message)

    def reports(self) -> tuple[int, int]:
        """(written, dropped) rows reported since the last call; sets `ended` once the
        process closed its end of the pipe (it exited, or is exiting)."""
        written = dropped = 0
        try:
            while self.connection.poll():
                more_written, more_dropped = self.connection.recv()
                written += more_written
                dropped += more_dropped
        except (EOFError, OSError):
            self.ended = True
        self.unreported -= written + dropped
        return written, dropped


class ServingLog:
    """A bounded queue of served answers, and the thread that hands them to the writer.

    `log` is called on the request path and never blocks: it appends to a deque (atomic under
    the GIL, no lock, no wake-up of the thread); the thread polls it every `poll_seconds`.
    `close` hands over everything queued and waits for the writer to commit it (a graceful
    shutdown loses nothing).
    """

    def __init__(
        self,
        root: Path,
        *,
        queue_size: int = 10_000,
        batch_rows: int = 50_000,
        flush_seconds: float = 10.0,
        poll_seconds: float = 0.05,
        on_dropped: Callable[[int], None] | None = None,
        on_written: Callable[[int], None] | None = None,
    ) -> None:
        self.root = Path(root)
        self.queue_size = queue_size
        self.batch_rows = batch_rows
        self.flush_seconds = flush_seconds
        self.poll_seconds = min(poll_seconds, flush_seconds)
        self.dropped = 0
        self.written = 0
        self.writer_starts = 0
        self._on_dropped = on_dropped
        self._on_written = on_written
        self._queue: deque[ServedAnswer] = deque()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._writer: _Writer | None = None
        self._closed = False
        self._close_timeout = 30.0

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._run, name="featurehub-serving-log", daemon=True
            )
            self._thread.start()
            # A process that exits without `close` still commits what it logged.
            atexit.register(self.close)

    def log(self, answer: ServedAnswer) -> bool:
        """Queue a served answer; False (and counted as dropped) when the queue is full."""
        if not self._closed and len(self._queue) < self.queue_size:
            self._queue.append(answer)
            return True
        self._drop(answer.rows)
        return False

    def close(self, timeout: float = 30.0) -> None:
        """Hand over everything queued, wait (up to `timeout` seconds) for the writer to
        commit it and exit. Later `log` calls drop."""
        if self._closed:
            return
        self._closed = True
        self._close_timeout = timeout
        if self._thread is None:
            if not self._queue:
                return
            self.start()
        atexit.unregister(self.close)
        self._stop.set()
        assert self._thread is not None
        self._thread.join(timeout + 5)
        if self._thread.is_alive():  # stuck on a writer that neither reads nor dies
            writer = self._writer
            if writer is not None:
                writer.process.kill()
            self._thread.join(5)

    @property
    def queued(self) -> int:
        return len(self._queue)

    @property
    def writer_pid(self) -> int | None:
        """The writer process's id (None before it started or after it exited)."""
        writer = self._writer
        return writer.process.pid if writer is not None else None

    # -- the hand-off thread -----------------------------------------------------------------

    def _drop(self, rows: int) -> None:
        if rows:
            self.dropped += rows
            if self._on_dropped is not None:
                self._on_dropped(rows)

    def _written(self, rows: int) -> None:
        if rows:
            self.written += rows
            if self._on_written is not None:
                self._on_written(rows)

    def _run(self) -> None:
        next_start = 0.0
        while True:
            try:
                if self._writer is None and time.monotonic() >= next_start:
                    self._start_writer()
                    next_start = time.monotonic() + RESTART_SECONDS
                if self._writer is not None:
                    self._hand_off(self._writer)
            except Exception:  # a bug: the thread must outlive it, or the log stops for good
                log.exception("serving log: hand-off failed")
            if self._stop.wait(self.poll_seconds):
                break
        self._finish()

    def _start_writer(self) -> None:
        try:
            self._writer = _Writer(self.root, self.batch_rows, self.flush_seconds)
            self.writer_starts += 1
        except Exception:  # no process can be started (out of memory, pid limit): try again
            log.exception("serving log: cannot start the writer process")

    def _hand_off(self, writer: _Writer) -> bool:
        """Send what is queued and count what the writer reported; False (and the writer
        forgotten) if it is gone."""
        queue = self._queue
        with contextlib.suppress(OSError):  # a broken pipe: the process is gone
            while queue:
                answers = [queue.popleft() for _ in range(min(len(queue), SEND_ANSWERS))]
                rows = sum(answer.rows for answer in answers)
                try:
                    message = pickle.dumps(list(map(tuple, answers)), protocol=5)
                except Exception:  # not a ServedAnswer of bytes: a bug, but not fatal
                    log.exception("serving log: cannot send %d records", rows)
                    self._drop(rows)
                    continue
                writer.send(message, rows)
        self._count(writer)
        if writer.exitcode() is None and not writer.ended:
            return True
        self._lost(writer, "exited")
        return False

    def _count(self, writer: _Writer) -> None:
        written, dropped = writer.reports()
        self._written(written)
        self._drop(dropped)

    def _lost(self, writer: _Writer, why: str) -> None:
        if not writer.wait(1):
            writer.process.kill()
            writer.wait(1)
        log.error(
            "serving log: the writer process %s (exit code %s); the %d records it had not "
            "committed are dropped",
            why,
            writer.exitcode(),
            writer.unreported,
        )
        self._drop(writer.unreported)
        writer.unreported = 0
        writer.connection.close()
        self._writer = None

    def _finish(self) -> None:
        """Closing: hand over the rest, then an empty message, and wait for the writer to
        commit and exit. `log` refuses new records from now on."""
        deadline = time.monotonic() + self._close_timeout
        if self._writer is None:
            self._start_writer()
        writer = self._writer
        if writer is None or not self._hand_off(writer):
            self._drop(sum(answer.rows for answer in self._queue))
            self._queue.clear()
            return
        with contextlib.suppress(OSError):  # gone: counted below
            writer.connection.send_bytes(b"")
        while not writer.ended and time.monotonic() < deadline:
            writer.connection.poll(min(0.1, max(0.0, deadline - time.monotonic())))
            self._count(writer)
        writer.wait(max(0.0, deadline - time.monotonic()))
        if writer.unreported or writer.exitcode() != 0:
            self._lost(writer, "did not finish in time or failed while closing")
        else:
            writer.connection.close()
            self._writer = None
