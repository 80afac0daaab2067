"""The serving log's writer: converts served requests to Arrow and commits Parquet files.

It runs in a process of its own (`run`, started by `ServingLog`), so
that its Python work (tens of microseconds per request) holds that process's GIL, not the
server's. `LogWriter` alone also commits in the calling process (`commit`), for tests and
tools.

Commit protocol: a file is written to `<root>/_staging/<uuid>.parquet.tmp`, fsynced, then
renamed (atomic on one file system) into its partition folder, whose directory entry is
fsynced. A reader globbing `**/*.parquet` sees whole files only: staging files do not end in
`.parquet`. Files left in `_staging` by a crash are garbage; delete them at will.
"""

from __future__ import annotations

import contextlib
import gc
import logging
import os
import pickle
import signal
import time
import uuid
from collections.abc import Callable, Sequence
from datetime import datetime, timezone
from multiprocessing.connection import Connection
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from featurehub.monitoring.log_format import (
    Group,
    ServedAnswer,
    concat,
    decode,
    to_tables,
    with_format,
)

log = logging.getLogger(__name__)

CONVERT_ROWS = 4_096
"""Queued rows converted to Arrow at once (or fewer at a flush): converting costs a few Arrow
calls per column whatever the row count, and converted rows take less memory than the
requests they came from."""

Tables = dict[Group, list[pa.Table]]


class LogWriter:
    """Converts requests to Arrow tables and commits them; counts what it wrote or dropped."""

    def __init__(
        self,
        root: Path,
        *,
        on_written: Callable[[int], None] | None = None,
        on_dropped: Callable[[int], None] | None = None,
    ) -> None:
        self.root = Path(root)
        self.written = 0
        self.dropped = 0
        self._on_written = on_written
        self._on_dropped = on_dropped

    def commit(self, answers: Sequence[ServedAnswer]) -> list[Path]:
        """Write `answers` as one Parquet file per (feature service, date); return them."""
        tables = to_tables(list(map(decode, answers)))
        return self.write({group: [table] for group, table in tables.items()})

    def convert(self, answers: list[ServedAnswer], pending: Tables) -> int:
        """Add `answers` to `pending` as Arrow tables; return the rows added. An answer that
        cannot be converted (a body that is not the API's answer) is dropped and counted."""
        if not answers:
            return 0
        try:
            converted = [to_tables(list(map(decode, answers)))]
        except Exception:  # find the culprit: rare, so one answer at a time is fine
            converted = []
            for request in answers:
                try:
                    converted.append(to_tables([decode(request)]))
                except Exception:
                    log.exception("serving log: cannot log request %s", request.request_id)
                    self._drop(request.rows)
        rows = 0
        for tables in converted:
            for group, table in tables.items():
                pending.setdefault(group, []).append(table)
                rows += table.num_rows
        return rows

    def write(self, tables: Tables) -> list[Path]:
        """Commit each group's tables as one Parquet file; return the files."""
        files = []
        for (service, day), parts in tables.items():
            table = concat(parts)
            folder = self.root / f"feature_service={service}" / f"date={day}"
            files.append(self._publish(table, folder))
            self.written += table.num_rows
            if self._on_written is not None:
                self._on_written(table.num_rows)
        return files

    def write_safely(self, tables: Tables) -> None:
        """`write`, but a failure (a full disk, a root that cannot be written) is logged and
        its rows counted as dropped: the writer carries on."""
        if not tables:
            return
        try:
            self.write(tables)
        except Exception:
            lost = sum(t.num_rows for parts in tables.values() for t in parts)
            log.exception("serving log: could not write %d records; they are dropped", lost)
            self._drop(lost)

    def _drop(self, rows: int) -> None:
        self.dropped += rows
        if self._on_dropped is not None:
            self._on_dropped(rows)

    def _publish(self, table: pa.Table, folder: Path) -> Path:
        staging = self.root / "_staging"
        staging.mkdir(parents=True, exist_ok=True)
        name = f"{uuid.uuid4().hex}"
        temporary = staging / f"{name}.parquet.tmp"
        pq.write_table(with_format(table), temporary, compression="zstd")
        with temporary.open("rb") as handle:
            os.fsync(handle.fileno())
        folder.mkdir(parents=True, exist_ok=True)
        stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S%f")
        final = folder / f"part-{stamp}-{os.getpid()}-{name}.parquet"
        os.replace(temporary, final)
        _fsync_dir(folder)
        return final


def run(connection: Connection, root: str, batch_rows: int, flush_seconds: float) -> None:
    """The writer process: receive batches from the server, commit every `batch_rows` rows or
    `flush_seconds`, and report (written, dropped) row counts back after each change.

    Messages in: a pickle of a list of plain tuples (`ServedAnswer` fields), or empty bytes
    to flush and exit. End of file (the server is gone) flushes and exits too. SIGINT and
    SIGTERM are ignored: a Ctrl-C or a stop signal sent to the whole process group must not
    lose what the server already handed over; the server's shutdown ends this process.
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    _lowest_priority()
    # Decoded answers are thousands of short-lived lists and dicts without cycles: the
    # collector, run every 700 of them, would scan the batch over and over (a third of the
    # writer's time for 1-entity answers). Collect once per commit instead, over what came
    # after the imports.
    gc.disable()
    gc.freeze()
    counts = [0, 0]  # written, dropped since the last report

    def count(index: int) -> Callable[[int], None]:
        def add(rows: int) -> None:
            counts[index] += rows

        return add

    writer = LogWriter(Path(root), on_written=count(0), on_dropped=count(1))
    taken: list[ServedAnswer] = []  # not converted yet
    taken_rows = 0
    pending: Tables = {}  # converted, not written yet
    pending_rows = 0
    deadline = time.monotonic() + flush_seconds
    closing = False
    while not closing:
        try:
            if connection.poll(max(0.0, deadline - time.monotonic())):
                message = connection.recv_bytes()
                closing = not message
                for fields in pickle.loads(message) if message else ():
                    answer = ServedAnswer._make(fields)
                    taken.append(answer)
                    taken_rows += answer.rows
        except (EOFError, OSError):
            closing = True
        due = closing or time.monotonic() >= deadline
        if taken_rows >= min(CONVERT_ROWS, batch_rows) or (due and taken):
            pending_rows += writer.convert(taken, pending)
            taken, taken_rows = [], 0
        if pending_rows >= batch_rows or (pending and due):
            writer.write_safely(pending)
            pending, pending_rows = {}, 0
            gc.collect()
        if due:
            deadline = time.monotonic() + flush_seconds
        if counts != [0, 0]:
            with contextlib.suppress(OSError):  # the server is gone: nobody to tell
                connection.send(tuple(counts))
            counts[:] = [0, 0]
    connection.close()
    gc.unfreeze()  # let the interpreter's exit free everything (extensions check for leaks)
    gc.enable()


def main(arguments: list[str]) -> None:
    """`run` in a process started by `ServingLog`: pipe descriptor, root, batch rows, flush
    seconds."""
    descriptor, root, batch_rows, flush_seconds = arguments
    run(Connection(int(descriptor)), root, int(batch_rows), float(flush_seconds))


def _lowest_priority() -> None:
    """Run only on CPU time nothing else wants (Linux's SCHED_IDLE; elsewhere nice 19).

    On the server's machine the writer competes with the server, its clients and Redis; at
    normal priority its bursts of conversion delayed requests (p99 at concurrency 1 about
    twice as long on 2 cores). When the machine is saturated the writer falls behind
    instead, and the server's bounded queue drops and counts records: logging yields to
    serving, as everywhere else in the log."""
    try:
        os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))
    except (AttributeError, OSError):
        with contextlib.suppress(OSError):
            os.nice(19)


def _fsync_dir(folder: Path) -> None:
    descriptor = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
