"""Models in the registry: immutable versions, aliases, archived versions, alias history.

A version row is inserted once and never updated; its number is the next free one of the
model, and the unique (project, name, version) constraint is what settles two registrations
racing for it. Lifecycle changes (`featurehub.models.lifecycle` decides them) are applied in
one transaction that locks the model first, each change with its history row, so the
history always explains exactly how the aliases came to be what they are.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from typing import Any

import sqlalchemy as sa

from featurehub.errors import FeaturehubError, NotFoundError, did_you_mean
from featurehub.registry.tables import (
    model_alias_history,
    model_aliases,
    model_archived,
    model_versions,
    registry_objects,
)
from featurehub.types import as_utc

_INSERT_ATTEMPTS = 5


class ModelError(FeaturehubError, ValueError):
    """A model cannot be registered, moved or loaded as asked; nothing was changed."""


class ModelNotFoundError(ModelError, NotFoundError):
    """No model, version or alias of that name."""


@dataclass(frozen=True)
class SignatureInput:
    name: str
    type: str  # a featurehub value type name ("Float64")


@dataclass(frozen=True)
class Signature:
    """What a model takes (the feature service's features, in its order) and gives."""

    inputs: list[SignatureInput]
    output: str  # the Arrow type of a prediction, e.g. "int64"

    @property
    def feature_names(self) -> list[str]:
        return [item.name for item in self.inputs]

    def to_dict(self) -> dict[str, Any]:
        return {"inputs": [vars(item) for item in self.inputs], "output": self.output}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Signature:
        return cls([SignatureInput(**item) for item in data["inputs"]], data["output"])


@dataclass(frozen=True)
class ModelVersion:
    """One registered version of a model: what it is, what it was trained on. Immutable."""

    name: str
    version: int
    flavor: str
    artifact_sha256: str
    artifact_path: str
    feature_service: str
    feature_service_version: int
    training_dataset: str
    training_dataset_fingerprint: str
    signature: Signature
    created_by: str
    created_at: datetime
    metrics: dict[str, float] = field(default_factory=dict)
    params: dict[str, str] = field(default_factory=dict)
    description: str = ""

    @property
    def reference(self) -> str:
        return f"models:/{self.name}/{self.version}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "version": self.version,
            "reference": self.reference,
            "flavor": self.flavor,
            "artifact_sha256": self.artifact_sha256,
            "artifact_path": self.artifact_path,
            "feature_service": self.feature_service,
            "feature_service_version": self.feature_service_version,
            "training_dataset": self.training_dataset,
            "training_dataset_fingerprint": self.training_dataset_fingerprint,
            "signature": self.signature.to_dict(),
            "metrics": dict(self.metrics),
            "params": dict(self.params),
            "description": self.description,
            "created_by": self.created_by,
            "created_at": self.created_at.isoformat(),
        }


@dataclass(frozen=True)
class LifecycleChange:
    """One change to a model's aliases or archived set, as history records it."""

    action: str  # promote | rollback | alias | remove | archive | unarchive
    alias: str  # the alias changed, or "archived"
    version: int | None  # holds the alias after (None: removed)
    previous_version: int | None  # held it before


@dataclass(frozen=True)
class HistoryEvent:
    """A row of the alias history."""

    id: int
    model: str
    alias: str
    action: str
    version: int | None
    previous_version: int | None
    actor: str
    reason: str
    forced: bool
    gate: list[dict[str, Any]] | None
    at: datetime

    def to_dict(self) -> dict[str, Any]:
        data = {k: v for k, v in vars(self).items() if k != "at"}
        return {**data, "at": self.at.isoformat()}


@dataclass(frozen=True)
class LifecycleState:
    """A model's lifecycle now: its versions, who holds which alias, which are archived."""

    versions: frozenset[int]
    aliases: dict[str, int]
    archived: frozenset[int]
    # (version, version it replaced) of every production promotion, oldest first.
    promotions: list[tuple[int, int | None]] = field(default_factory=list)


def _now() -> datetime:
    return datetime.now(timezone.utc)


class ModelCatalog:
    """The models of one project, kept in the registry database."""

    def __init__(self, engine: sa.Engine, project: str) -> None:
        self._engine = engine
        self._project = project

    # -- versions ----------------------------------------------------------------------------

    def service_version(self, service: str) -> int | None:
        """The registry version of a feature service now (None: not registered)."""
        table = registry_objects
        query = sa.select(table.c.version).where(
            table.c.project == self._project,
            table.c.kind == "feature_service",
            table.c.name == service,
        )
        with self._engine.connect() as conn:
            value = conn.execute(query).scalar()
        return None if value is None else int(value)

    def insert(self, version: ModelVersion) -> ModelVersion:
        """Record a new version under the next free number of its model; returns it with
        that number. A registration racing another one retries with the next number."""
        values = dict(
            project=self._project,
            name=version.name,
            flavor=version.flavor,
            artifact_sha256=version.artifact_sha256,
            artifact_path=version.artifact_path,
            feature_service=version.feature_service,
            feature_service_version=version.feature_service_version,
            training_dataset=version.training_dataset,
            training_dataset_fingerprint=version.training_dataset_fingerprint,
            metrics=json.dumps(version.metrics, sort_keys=True),
            params=json.dumps(version.params, sort_keys=True),
            signature=json.dumps(version.signature.to_dict()),
            description=version.description,
            created_by=version.created_by,
            created_at=version.created_at,
        )
        for attempt in range(_INSERT_ATTEMPTS):
            try:
                with self._engine.begin() as conn:
                    latest = conn.execute(
                        sa.select(sa.func.max(model_versions.c.version)).where(
                            model_versions.c.project == self._project,
                            model_versions.c.name == version.name,
                        )
                    ).scalar()
                    number = int(latest or 0) + 1
                    conn.execute(model_versions.insert().values(**values, version=number))
                return replace(version, version=number)
            except sa.exc.IntegrityError:
                if attempt == _INSERT_ATTEMPTS - 1:
                    raise
        raise AssertionError("unreachable")

    def names(self, conn: sa.Connection | None = None) -> list[str]:
        if conn is None:
            with self._engine.connect() as own:
                return self.names(own)
        query = (
            sa.select(model_versions.c.name)
            .where(model_versions.c.project == self._project)
            .distinct()
        )
        return sorted(row[0] for row in conn.execute(query))

    def versions(self, name: str) -> list[ModelVersion]:
        """Every version of a model, oldest first; an unknown model is an error."""
        query = (
            sa.select(model_versions)
            .where(model_versions.c.project == self._project, model_versions.c.name == name)
            .order_by(model_versions.c.version)
        )
        with self._engine.connect() as conn:
            rows = conn.execute(query).mappings().all()
        if not rows:
            self._unknown_model(name)
        return [_version_of(row) for row in rows]

    def version(self, name: str, number: int) -> ModelVersion:
        query = sa.select(model_versions).where(
            model_versions.c.project == self._project,
            model_versions.c.name == name,
            model_versions.c.version == number,
        )
        with self._engine.connect() as conn:
            row = conn.execute(query).mappings().first()
        if row is None:
            known = [v.version for v in self.versions(name)]  # unknown model: that error
            raise ModelNotFoundError(
                f"model {name!r} has no version {number}; its versions are "
                f"{', '.join(map(str, known))}. List them with: featurehub models list"
            )
        return _version_of(row)

    def _unknown_model(self, name: str, conn: sa.Connection | None = None) -> None:
        names = self.names(conn)
        hint = did_you_mean(name, names) or (
            f" Registered models: {', '.join(names)}." if names else " None is registered yet."
        )
        raise ModelNotFoundError(
            f"no model named {name!r} in project {self._project!r}.{hint} "
            "Register one with: featurehub models register NAME ARTIFACT ..."
        )

    # -- lifecycle ---------------------------------------------------------------------------

    def state(self, name: str, conn: sa.Connection | None = None) -> LifecycleState:
        """The model's lifecycle now (an unknown model is an error)."""
        if conn is None:
            with self._engine.connect() as own:
                return self.state(name, own)
        numbers = frozenset(
            int(row[0])
            for row in conn.execute(
                sa.select(model_versions.c.version).where(
                    model_versions.c.project == self._project, model_versions.c.name == name
                )
            )
        )
        if not numbers:
            self._unknown_model(name, conn)
        aliases = {
            alias: int(version)
            for alias, version in conn.execute(
                sa.select(model_aliases.c.alias, model_aliases.c.version).where(
                    model_aliases.c.project == self._project, model_aliases.c.model == name
                )
            )
        }
        archived = frozenset(
            int(row[0])
            for row in conn.execute(
                sa.select(model_archived.c.version).where(
                    model_archived.c.project == self._project, model_archived.c.model == name
                )
            )
        )
        history = model_alias_history
        promotions = [
            (int(version), None if previous is None else int(previous))
            for version, previous in conn.execute(
                sa.select(history.c.version, history.c.previous_version)
                .where(
                    history.c.project == self._project,
                    history.c.model == name,
                    history.c.alias == "production",
                    history.c.action == "promote",
                )
                .order_by(history.c.id)
            )
        ]
        return LifecycleState(numbers, aliases, archived, promotions)

    def change(
        self,
        name: str,
        decide: Any,
        *,
        actor: str,
        reason: str = "",
        forced: bool = False,
        gate: Sequence[dict[str, Any]] | None = None,
    ) -> list[LifecycleChange]:
        """Apply what `decide(state) -> [LifecycleChange]` returns for the model's state read
        under its lock, with one history row per change, in one transaction. `decide` raises
        to refuse: then nothing changes."""
        with self._engine.begin() as conn:
            self._lock(conn, name)
            changes: list[LifecycleChange] = decide(self.state(name, conn))
            now = _now()
            key = dict(project=self._project, model=name)
            for item in changes:
                self._apply(conn, key, item, actor, now)
                conn.execute(
                    model_alias_history.insert().values(
                        **key,
                        alias=item.alias,
                        action=item.action,
                        version=item.version,
                        previous_version=item.previous_version,
                        actor=actor,
                        reason=reason,
                        forced=forced,
                        # The gate's checks belong to the promotion it let through.
                        gate=None
                        if gate is None or item.action != "promote"
                        else json.dumps(list(gate)),
                        at=now,
                    )
                )
        return changes

    def _apply(
        self, conn: sa.Connection, key: dict[str, str], item: LifecycleChange, actor: str, at: Any
    ) -> None:
        if item.action == "archive":
            assert item.version is not None
            conn.execute(
                model_archived.insert().values(**key, version=item.version, archived_at=at)
            )
            return
        if item.action == "unarchive":
            conn.execute(
                model_archived.delete().where(
                    model_archived.c.project == key["project"],
                    model_archived.c.model == key["model"],
                    model_archived.c.version == item.previous_version,
                )
            )
            return
        conn.execute(
            model_aliases.delete().where(
                model_aliases.c.project == key["project"],
                model_aliases.c.model == key["model"],
                model_aliases.c.alias == item.alias,
            )
        )
        if item.version is not None:
            conn.execute(
                model_aliases.insert().values(
                    **key, alias=item.alias, version=item.version, set_by=actor, set_at=at
                )
            )

    def _lock(self, conn: sa.Connection, name: str) -> None:
        """Hold the model's lock until the transaction ends (SQLite: BEGIN IMMEDIATE has
        taken the database's write lock already)."""
        if conn.dialect.name == "postgresql":
            conn.execute(
                sa.select(
                    sa.func.pg_advisory_xact_lock(sa.func.hashtext(f"{self._project}/{name}"))
                )
            )

    def history(self, name: str) -> list[HistoryEvent]:
        """Every lifecycle change of the model, oldest first."""
        self.state(name)  # an unknown model is an error
        table = model_alias_history
        query = (
            sa.select(table)
            .where(table.c.project == self._project, table.c.model == name)
            .order_by(table.c.id)
        )
        with self._engine.connect() as conn:
            rows = conn.execute(query).mappings().all()
        return [
            HistoryEvent(
                id=int(row["id"]),
                model=row["model"],
                alias=row["alias"],
                action=row["action"],
                version=row["version"],
                previous_version=row["previous_version"],
                actor=row["actor"],
                reason=row["reason"] or "",
                forced=bool(row["forced"]),
                gate=None if row["gate"] is None else json.loads(row["gate"]),
                at=as_utc(row["at"]),
            )
            for row in rows
        ]

    # Last in the class: below it, `list` in an annotation would name this method.
    def list(self) -> list[ModelVersion]:
        """The latest version of every model, by name."""
        return [self.versions(name)[-1] for name in self.names()]


def _version_of(row: Any) -> ModelVersion:
    return ModelVersion(
        name=row["name"],
        version=int(row["version"]),
        flavor=row["flavor"],
        artifact_sha256=row["artifact_sha256"],
        artifact_path=row["artifact_path"],
        feature_service=row["feature_service"],
        feature_service_version=int(row["feature_service_version"]),
        training_dataset=row["training_dataset"],
        training_dataset_fingerprint=row["training_dataset_fingerprint"],
        signature=Signature.from_dict(json.loads(row["signature"])),
        created_by=row["created_by"],
        created_at=as_utc(row["created_at"]),
        metrics=json.loads(row["metrics"]),
        params=json.loads(row["params"]),
        description=row["description"] or "",
    )
