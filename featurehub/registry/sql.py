"""The registry: definitions of every project in a SQL database (SQLite or PostgreSQL).

One row per object holds its current spec (JSON); every change also appends to a history
table, so each object's versions can be listed. `apply` is one transaction that locks the
project first: two concurrent applies run one after the other, never interleaved.
"""

from __future__ import annotations

import importlib.util
import json
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from featurehub.definitions.catalog import Catalog, Specs
from featurehub.errors import BreakingChangeError, RegistryError
from featurehub.registry import migrate
from featurehub.registry.diff import Plan, compute_plan
from featurehub.registry.leases import Leases
from featurehub.registry.offline_commits import OfflineCommitLog
from featurehub.registry.runs import RunLog
from featurehub.registry.tables import (
    offline_commits,
    projects,
    registry_history,
    registry_objects,
)
from featurehub.types import as_utc


@dataclass(frozen=True)
class RegistryState:
    """A consistent read of one project: its definitions and the generation they are at."""

    generation: int
    catalog: Catalog


@dataclass(frozen=True)
class HistoryEntry:
    kind: str
    name: str
    version: int
    action: str
    changes: list[dict[str, Any]]
    generation: int
    applied_at: datetime


def normalize_url(url: str) -> str:
    """`postgresql://` means psycopg 3 when psycopg2 is not installed."""
    if url.startswith("postgresql://") and importlib.util.find_spec("psycopg2") is None:
        return "postgresql+psycopg://" + url[len("postgresql://") :]
    return url


REGISTRY_URL_HINT = (
    "Use sqlite:///PATH or postgresql://USER@HOST/DB in registry.url of featurehub.yaml "
    "(or FEATUREHUB_REGISTRY_URL)"
)


def _create_engine(url: str) -> sa.Engine:
    """An engine for a SQLite or PostgreSQL URL; any other URL, a missing driver or a folder
    that cannot be created is a RegistryError that says what to change, not a traceback."""
    url = normalize_url(url)
    parsed = sa.make_url(url)
    backend = parsed.get_backend_name()
    if backend not in ("sqlite", "postgresql"):
        raise RegistryError(
            f"the registry cannot be in {backend!r}: only SQLite and PostgreSQL are supported. "
            f"{REGISTRY_URL_HINT}"
        )
    if backend == "postgresql":
        try:
            return sa.create_engine(url, pool_pre_ping=True)
        except ImportError:
            raise RegistryError(
                "a postgresql:// registry needs the psycopg driver, which is not installed: "
                "pip install 'featurehub[postgres]'"
            ) from None
    path = parsed.database
    if path and path != ":memory:":
        folder = Path(path).parent
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise RegistryError(
                f"cannot create the folder {str(folder)!r} of the SQLite registry "
                f"({exc.strerror}). {REGISTRY_URL_HINT}, pointing at a folder you can write to"
            ) from None
    engine = sa.create_engine(url, connect_args={"timeout": 60})

    @sa.event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy's "begin" below decide when a transaction starts.
        dbapi_connection.isolation_level = None
        dbapi_connection.execute("PRAGMA journal_mode=WAL")

    @sa.event.listens_for(engine, "begin")
    def _on_begin(connection: sa.Connection) -> None:
        # Take the write lock at the start, so a read-then-write never races another writer.
        connection.exec_driver_sql("BEGIN IMMEDIATE")

    return engine


def _now() -> datetime:
    return datetime.now(timezone.utc)


class SqlRegistry:
    """Definitions and their history, in any database SQLAlchemy reaches."""

    def __init__(self, url: str) -> None:
        self.url = url
        try:
            self._engine = _create_engine(url)
            migrate.upgrade(self._engine)
        except sa.exc.SQLAlchemyError as exc:
            raise RegistryError(
                f"cannot open the registry at {_safe(url)}: {exc.__class__.__name__}: "
                f"{str(exc).splitlines()[0]}. Check registry.url in featurehub.yaml "
                "or FEATUREHUB_REGISTRY_URL"
            ) from None

    @property
    def engine(self) -> sa.Engine:
        return self._engine

    def close(self) -> None:
        self._engine.dispose()

    def offline_commits(self, project: str) -> OfflineCommitLog:
        """The commit log of the project's offline store, in this database."""
        return OfflineCommitLog(self._engine, project)

    def leases(self, project: str, seconds: float) -> Leases:
        """The project's leases, held as a new holder (one per scheduler or store)."""
        return Leases(self._engine, project, seconds=seconds)

    def runs(self, project: str) -> RunLog:
        """The project's materialization runs and watermarks."""
        return RunLog(self._engine, project)

    # -- reads --------------------------------------------------------------------------------

    def generation(self, project: str) -> int:
        """A cheap number that changes whenever the project's definitions do."""
        with self._engine.connect() as conn:
            value = conn.execute(
                sa.select(projects.c.generation).where(projects.c.name == project)
            ).scalar()
        return int(value or 0)

    def state(self, project: str) -> RegistryState:
        """All definitions of a project, read in one transaction."""
        with self._engine.connect() as conn:
            generation = conn.execute(
                sa.select(projects.c.generation).where(projects.c.name == project)
            ).scalar()
            specs = _read_specs(conn, project)
        return RegistryState(int(generation or 0), Catalog.from_specs(specs))

    def catalog(self, project: str) -> Catalog:
        return self.state(project).catalog

    def specs(self, project: str) -> Specs:
        with self._engine.connect() as conn:
            return _read_specs(conn, project)

    def history(
        self, project: str, kind: str | None = None, name: str | None = None
    ) -> list[HistoryEntry]:
        """Every recorded change, oldest first; filter by object kind and name."""
        query = sa.select(registry_history).where(registry_history.c.project == project)
        if kind:
            query = query.where(registry_history.c.kind == kind)
        if name:
            query = query.where(registry_history.c.name == name)
        with self._engine.connect() as conn:
            rows = conn.execute(query.order_by(registry_history.c.id)).mappings().all()
        return [
            HistoryEntry(
                kind=row["kind"],
                name=row["name"],
                version=row["version"],
                action=row["action"],
                changes=json.loads(row["changes"]),
                generation=row["generation"],
                applied_at=as_utc(row["applied_at"]),
            )
            for row in rows
        ]

    # -- writes -------------------------------------------------------------------------------

    def plan(self, project: str, desired: Specs) -> Plan:
        return compute_plan(self.specs(project), desired)

    def apply(self, project: str, desired: Specs, *, force: bool = False) -> Plan:
        """Make the project's definitions exactly `desired`, in one transaction.

        The diff is computed after the project lock is taken, so it is against what is
        really there, even when another apply committed in between.
        """
        with self._engine.begin() as conn:
            _lock_project(conn, project)
            plan = compute_plan(_read_specs(conn, project), desired)
            if plan.breaking and not force:
                raise BreakingChangeError(plan.breaking)
            if not plan.has_changes:
                return plan
            now = _now()
            generation = conn.execute(
                sa.update(projects)
                .where(projects.c.name == project)
                .values(generation=projects.c.generation + 1, updated_at=now)
                .returning(projects.c.generation)
            ).scalar_one()
            versions = dict(
                conn.execute(
                    sa.select(
                        registry_history.c.kind + ":" + registry_history.c.name,
                        sa.func.max(registry_history.c.version),
                    )
                    .where(registry_history.c.project == project)
                    .group_by(registry_history.c.kind, registry_history.c.name)
                ).all()
            )
            for change in plan.changes:
                key = dict(project=project, kind=change.kind, name=change.name)
                version = int(versions.get(f"{change.kind}:{change.name}") or 0) + 1
                spec = json.dumps(change.spec, sort_keys=True) if change.spec else None
                where = sa.and_(*(registry_objects.c[k] == v for k, v in key.items()))
                if change.action == "create":
                    conn.execute(
                        registry_objects.insert().values(
                            **key, version=version, spec=spec, created_at=now, updated_at=now
                        )
                    )
                elif change.action == "update":
                    conn.execute(
                        registry_objects.update()
                        .where(where)
                        .values(version=version, spec=spec, updated_at=now)
                    )
                else:
                    conn.execute(registry_objects.delete().where(where))
                conn.execute(
                    registry_history.insert().values(
                        **key,
                        version=version,
                        action=change.action,
                        spec=spec,
                        changes=json.dumps([asdict(f) for f in change.fields], default=str),
                        generation=generation,
                        applied_at=now,
                    )
                )
            if plan.reset_views:
                conn.execute(
                    offline_commits.update()
                    .where(
                        offline_commits.c.project == project,
                        offline_commits.c.view.in_(plan.reset_views),
                    )
                    .values(superseded=True)
                )
        return plan


def _read_specs(conn: sa.Connection, project: str) -> Specs:
    specs: Specs = {}
    rows = conn.execute(
        sa.select(registry_objects.c.kind, registry_objects.c.name, registry_objects.c.spec).where(
            registry_objects.c.project == project
        )
    )
    for kind, name, spec in rows:
        specs.setdefault(kind, {})[name] = json.loads(spec)
    return specs


def _lock_project(conn: sa.Connection, project: str) -> None:
    """Create the project row if needed, then hold its lock until the transaction ends."""
    dialect = conn.dialect.name
    insert: Any = postgresql.insert if dialect == "postgresql" else sqlite.insert
    conn.execute(
        insert(projects)
        .values(name=project, generation=0, updated_at=_now())
        .on_conflict_do_nothing(index_elements=["name"])
    )
    if dialect == "postgresql":
        conn.execute(sa.select(projects.c.name).where(projects.c.name == project).with_for_update())


def _safe(url: str) -> str:
    """The URL without its password, for messages."""
    try:
        return sa.make_url(url).render_as_string(hide_password=True)
    except sa.exc.ArgumentError:
        return url
