"""Leases in the registry: at most one process runs a named job (a view's materialization)
at a time, however many schedulers and `materialize-incremental` commands share the registry.

A lease is taken with one conditional upsert (INSERT ... ON CONFLICT DO UPDATE ... WHERE the
lease expired or is ours), which SQLite and PostgreSQL both run atomically: of two processes
racing for a free lease exactly one gets it. The holder renews it by heartbeat (a thread, every
third of the lease time) and deletes it when done. A holder killed with -9 stops renewing: its
lease expires after `seconds` and the next process to ask takes it; on the same host a dead
pid frees it at once (as abandoned runs are detected in featurehub/registry/runs.py).

Times are the asking process's clock (UTC): hosts sharing a registry need synchronised clocks
to well within the lease time, as they do for run heartbeats.
"""

from __future__ import annotations

import logging
import os
import threading
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from featurehub.errors import FeaturehubError
from featurehub.registry.runs import _HOST, _alive
from featurehub.registry.tables import leases
from featurehub.types import as_utc

log = logging.getLogger(__name__)

DEFAULT_LEASE_SECONDS = 60.0


class LeaseHeld(FeaturehubError):
    """Another process holds a lease this one needs."""


class LeaseLost(FeaturehubError):
    """A held lease expired and another process took it (this one stopped renewing)."""


@dataclass(frozen=True)
class Lease:
    name: str
    holder: str
    host: str
    pid: int
    acquired_at: datetime
    heartbeat_at: datetime
    expires_at: datetime

    def describe(self) -> str:
        return (
            f"pid {self.pid} on {self.host} holds it since {self.acquired_at:%Y-%m-%d %H:%M:%S} "
            f"UTC (it expires at {self.expires_at:%H:%M:%S} unless renewed)"
        )


def view_lease(view: str) -> str:
    """The lease name of a view's materialization."""
    return f"view:{view}"


class Leases:
    """The leases of one project, taken as one holder (this object: a token, the host and pid).

    `hold` is re-entrant for the thread holding a lease, so a scheduler's job holding a
    view's lease can call `store.materialize_incremental`, which holds it too, without
    releasing it early. Another thread of this process (the scheduler runs jobs on several)
    is refused as another process is: one run of a view at a time holds within a process too.
    """

    def __init__(
        self, engine: sa.Engine, project: str, *, seconds: float = DEFAULT_LEASE_SECONDS
    ) -> None:
        self._engine = engine
        self._project = project
        self.seconds = seconds
        self.holder = f"{_HOST}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self._held: dict[str, tuple[int, int]] = {}  # name -> (holding thread, depth of holds)
        self._lock = threading.Lock()
        self.lost: set[str] = set()  # held names another process took (renewal refused)

    # -- one statement each --------------------------------------------------------------------

    def try_acquire(self, name: str) -> Lease | None:
        """Take the lease (or renew it, if ours) and return None; or return the other holder's
        lease. A same-host holder whose pid is gone loses it at once."""
        current = self._upsert(name)
        if current.holder == self.holder or (
            current.host == _HOST and not _alive(current.pid) and self._steal(current)
        ):
            self.lost.discard(name)
            return None
        return current

    def _upsert(self, name: str) -> Lease:
        now = datetime.now(timezone.utc)
        values = {
            "project": self._project,
            "name": name,
            "holder": self.holder,
            "host": _HOST,
            "pid": os.getpid(),
            "acquired_at": now,
            "heartbeat_at": now,
            "expires_at": now + timedelta(seconds=self.seconds),
        }
        with self._engine.begin() as conn:
            dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
            insert = dialect.insert(leases).values(**values)
            ours = leases.c.holder == self.holder
            conn.execute(
                insert.on_conflict_do_update(
                    index_elements=[leases.c.project, leases.c.name],
                    set_={
                        "holder": insert.excluded.holder,
                        "host": insert.excluded.host,
                        "pid": insert.excluded.pid,
                        "acquired_at": sa.case(
                            (ours, leases.c.acquired_at), else_=insert.excluded.acquired_at
                        ),
                        "heartbeat_at": insert.excluded.heartbeat_at,
                        "expires_at": insert.excluded.expires_at,
                    },
                    where=sa.or_(ours, leases.c.expires_at <= now),
                )
            )
            row = conn.execute(sa.select(leases).where(self._is(name))).one()
        return _lease(row._mapping)

    def _steal(self, dead: Lease) -> bool:
        """Take a lease from a holder known dead, if it still has it (compare and swap)."""
        now = datetime.now(timezone.utc)
        with self._engine.begin() as conn:
            taken = conn.execute(
                leases.update()
                .where(self._is(dead.name), leases.c.holder == dead.holder)
                .values(
                    holder=self.holder,
                    host=_HOST,
                    pid=os.getpid(),
                    acquired_at=now,
                    heartbeat_at=now,
                    expires_at=now + timedelta(seconds=self.seconds),
                )
            ).rowcount
        return taken == 1

    def check_held(self, name: str, conn: sa.Connection) -> None:
        """Raise LeaseLost unless this holder still holds `name`, locking the lease row until
        `conn`'s transaction ends (SQLite: its write lock does): a run publishes only while
        no other process can have taken its view over (a fence)."""
        holder = conn.execute(
            sa.select(leases.c.holder).where(self._is(name)).with_for_update()
        ).scalar()
        if holder != self.holder:
            self.lost.add(name)
            raise LeaseLost(
                f"the lease {name!r} was taken over while this run ran (its holder stopped "
                f"renewing it for over {self.seconds:.0f}s); nothing of the run was published "
                "offline: the process now holding the view runs it"
            )

    def renew(self, name: str) -> bool:
        """Push the expiry on; False when the lease is no longer ours."""
        now = datetime.now(timezone.utc)
        with self._engine.begin() as conn:
            renewed = conn.execute(
                leases.update()
                .where(self._is(name), leases.c.holder == self.holder)
                .values(heartbeat_at=now, expires_at=now + timedelta(seconds=self.seconds))
            ).rowcount
        return renewed == 1

    def release(self, name: str) -> None:
        with self._engine.begin() as conn:
            conn.execute(leases.delete().where(self._is(name), leases.c.holder == self.holder))

    def list(self) -> list[Lease]:
        """The project's leases, expired ones included (their holder may come back)."""
        query = sa.select(leases).where(leases.c.project == self._project)
        with self._engine.connect() as conn:
            return [_lease(row._mapping) for row in conn.execute(query.order_by(leases.c.name))]

    def _is(self, name: str) -> sa.ColumnElement[bool]:
        return sa.and_(leases.c.project == self._project, leases.c.name == name)

    # -- holding ---------------------------------------------------------------------------

    @contextmanager
    def hold(self, names: Sequence[str]) -> Iterator[None]:
        """Hold every lease in `names` while the block runs, renewing them; LeaseHeld (and
        none kept) when another process, or another thread of this one, holds one."""
        me = threading.get_ident()
        taken: list[str] = []  # counted in `_held` by this call
        fresh: list[str] = []  # taken in the registry here, not already held by an outer `hold`
        try:
            for name in sorted(set(names)):  # one order everywhere: no two wait on each other
                with self._lock:
                    thread, depth = self._held.get(name, (me, 0))
                    if thread != me:
                        raise LeaseHeld(
                            f"another run of {_subject(name)!r} is in progress in this process "
                            f"(pid {os.getpid()}, another thread): wait for it to finish"
                        )
                    self._held[name] = (me, depth + 1)
                taken.append(name)
                if depth == 0:
                    other = self.try_acquire(name)
                    if other is not None:
                        raise LeaseHeld(
                            f"another run of {_subject(name)!r} is in progress: "
                            f"{other.describe()}. Wait for it to finish (a killed holder's "
                            f"lease expires within {self.seconds:.0f}s), then re-run"
                        )
                    fresh.append(name)
            with self._renewing(fresh):
                yield
        finally:
            for name in taken:
                with self._lock:
                    thread, depth = self._held[name]
                    if depth == 1:
                        del self._held[name]
                    else:
                        self._held[name] = (thread, depth - 1)
                if name in fresh:  # the outermost hold, which took it
                    self.release(name)

    @contextmanager
    def _renewing(self, names: Sequence[str]) -> Iterator[None]:
        stop = threading.Event()

        def beat() -> None:
            while not stop.wait(self.seconds / 3):
                for name in names:
                    try:
                        if not self.renew(name):
                            self.lost.add(name)
                            log.error("lease %s was taken by another process", name)
                    except Exception as exc:  # retried at the next beat
                        log.warning("lease %s renewal failed: %s", name, exc)

        thread = threading.Thread(target=beat, name="featurehub-lease", daemon=True)
        thread.start()
        try:
            yield
        finally:
            stop.set()
            thread.join()


def _subject(name: str) -> str:
    """What a lease is for: `view:stats` -> `stats`."""
    return name.split(":", 1)[-1]


def _lease(row: sa.RowMapping) -> Lease:
    return Lease(
        name=row["name"],
        holder=row["holder"],
        host=row["host"],
        pid=row["pid"],
        acquired_at=as_utc(row["acquired_at"]),
        heartbeat_at=as_utc(row["heartbeat_at"]),
        expires_at=as_utc(row["expires_at"]),
    )
