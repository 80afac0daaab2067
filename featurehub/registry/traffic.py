"""Traffic policies in the registry: how a model's requests are split between versions.

The table is append-only (`model_traffic`): setting a policy adds a row, the newest row of a
model is its policy now, the rows before it are its history. A model without a row is served
by its production version alone. The feature server reads every model's route (production
version and policy) in two queries at each registry refresh (`routes`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

import sqlalchemy as sa

from featurehub.registry.models import ModelError
from featurehub.registry.tables import model_aliases, model_traffic
from featurehub.types import as_utc

PRODUCTION_ONLY = "production"
CANARY = "canary"
SHADOW = "shadow"
AB = "ab"
POLICIES = (PRODUCTION_ONLY, CANARY, SHADOW, AB)


@dataclass(frozen=True)
class TrafficPolicy:
    """production (no other version), canary (`percent` % of keys to `version`), shadow
    (`version` also predicts, unseen) or ab (`percent` % of keys to `version`)."""

    policy: str = PRODUCTION_ONLY
    version: int | None = None
    percent: float | None = None

    def __post_init__(self) -> None:
        if self.policy not in POLICIES:
            raise ModelError(f"unknown traffic policy {self.policy!r}; one of {POLICIES}")
        if self.policy == PRODUCTION_ONLY:
            if self.version is not None or self.percent is not None:
                raise ModelError("a production-only policy names no other version")
            return
        if self.version is None or self.version < 1:
            raise ModelError(f"a {self.policy} policy needs a version number (e.g. 3)")
        if self.policy == SHADOW:
            if self.percent is not None:
                raise ModelError("a shadow version sees every request: give no percent")
            return
        if self.percent is None or not 0 < self.percent < 100:
            raise ModelError(
                f"a {self.policy} policy needs a percent strictly between 0 and 100 "
                f"(e.g. {self.policy} {self.version}:5), got {self.percent}"
            )

    def describe(self) -> str:
        if self.policy == PRODUCTION_ONLY:
            return "production only"
        if self.policy == SHADOW:
            return f"shadow: version {self.version} also predicts (logged, not returned)"
        return f"{self.policy}: {self.percent:g} % of entity keys to version {self.version}"

    def to_dict(self) -> dict[str, Any]:
        return {"policy": self.policy, "version": self.version, "percent": self.percent}


@dataclass(frozen=True)
class TrafficEvent:
    """A row of a model's traffic history."""

    id: int
    model: str
    policy: TrafficPolicy
    actor: str
    reason: str
    at: datetime

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "model": self.model,
            **self.policy.to_dict(),
            "actor": self.actor,
            "reason": self.reason,
            "at": self.at.isoformat(),
        }


@dataclass(frozen=True)
class Route:
    """What the server needs to route a model's requests: its production version (None: not
    promoted yet), its policy, and the id of the policy's row (0: none), which an automatic
    rollback compares so it never undoes a newer change."""

    production: int | None
    policy: TrafficPolicy
    policy_id: int = 0


class TrafficCatalog:
    """The traffic policies of one project's models."""

    def __init__(self, engine: sa.Engine, project: str) -> None:
        self._engine = engine
        self._project = project

    def set(
        self,
        model: str,
        policy: TrafficPolicy,
        *,
        actor: str,
        reason: str = "",
        unless_changed_since: int | None = None,
    ) -> int | None:
        """Record `policy` as the model's policy now; its row id. With
        `unless_changed_since`, only if the newest row is still that id (else None)."""
        with self._engine.begin() as conn:
            if unless_changed_since is not None:
                newest = self._newest(conn, model)
                if (0 if newest is None else int(newest["id"])) != unless_changed_since:
                    return None
            result = conn.execute(
                model_traffic.insert().values(
                    project=self._project,
                    model=model,
                    policy=policy.policy,
                    version=policy.version,
                    percent=policy.percent,
                    actor=actor,
                    reason=reason,
                    at=datetime.now(timezone.utc),
                )
            )
            key = result.inserted_primary_key
            return None if key is None else int(key[0])

    def get(self, model: str) -> TrafficPolicy:
        with self._engine.connect() as conn:
            newest = self._newest(conn, model)
        return TrafficPolicy() if newest is None else _policy_of(newest)

    def history(self, model: str) -> list[TrafficEvent]:
        """Every policy change of the model, oldest first."""
        table = model_traffic
        query = (
            sa.select(table)
            .where(table.c.project == self._project, table.c.model == model)
            .order_by(table.c.id)
        )
        with self._engine.connect() as conn:
            rows = conn.execute(query).mappings().all()
        return [
            TrafficEvent(
                int(row["id"]),
                row["model"],
                _policy_of(row),
                row["actor"],
                row["reason"] or "",
                as_utc(row["at"]),
            )
            for row in rows
        ]

    def routes(self) -> dict[str, Route]:
        """Every model's production version and policy now (models that have either)."""
        table = model_traffic
        newest = (
            sa.select(sa.func.max(table.c.id))
            .where(table.c.project == self._project)
            .group_by(table.c.model)
        )
        with self._engine.connect() as conn:
            production = {
                model: int(version)
                for model, version in conn.execute(
                    sa.select(model_aliases.c.model, model_aliases.c.version).where(
                        model_aliases.c.project == self._project,
                        model_aliases.c.alias == "production",
                    )
                )
            }
            policies = {
                row["model"]: (int(row["id"]), _policy_of(row))
                for row in conn.execute(sa.select(table).where(table.c.id.in_(newest)))
                .mappings()
                .all()
            }
        routes = {}
        for name in set(production) | set(policies):
            policy_id, policy = policies.get(name, (0, TrafficPolicy()))
            routes[name] = Route(production.get(name), policy, policy_id)
        return routes

    def _newest(self, conn: sa.Connection, model: str) -> Any:
        table = model_traffic
        query = (
            sa.select(table)
            .where(table.c.project == self._project, table.c.model == model)
            .order_by(table.c.id.desc())
            .limit(1)
        )
        return conn.execute(query).mappings().first()


def _policy_of(row: Any) -> TrafficPolicy:
    version = row["version"]
    percent = row["percent"]
    return TrafficPolicy(
        row["policy"],
        None if version is None else int(version),
        None if percent is None else float(percent),
    )
