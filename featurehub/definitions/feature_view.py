"""Feature views: a named group of features computed from one source, keyed by entities."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from featurehub import types
from featurehub.definitions.entity import Entity
from featurehub.definitions.names import check_name
from featurehub.definitions.source import DataSource
from featurehub.errors import DefinitionError, did_you_mean
from featurehub.skew.thresholds import checked_thresholds


@dataclass(frozen=True)
class Field:
    """A named, typed column: a feature of a view.

    `skew` overrides, for this feature, thresholds of featurehub.yaml's `monitoring:`
    section by the same keys (`{"psi_fail": 0.1, "max_value_skew_rate": 0.001}`): a noisy
    feature may be allowed more, a critical one less, without changing every other feature.
    """

    name: str
    dtype: types.ValueType
    description: str = ""
    skew: dict[str, float | int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        check_name("field", self.name)
        if not isinstance(self.dtype, types.ValueType):
            raise DefinitionError(
                f"field {self.name!r}: dtype must be a featurehub type such as "
                f"featurehub.types.Float64, not {self.dtype!r}"
            )
        object.__setattr__(self, "skew", checked_thresholds(f"field {self.name!r}", self.skew))

    def __hash__(self) -> int:
        return hash((self.name, self.dtype, self.description, tuple(self.skew.items())))

    def to_spec(self) -> dict[str, Any]:
        spec: dict[str, Any] = {
            "name": self.name,
            "dtype": self.dtype.name,
            "description": self.description,
        }
        if self.skew:  # only when set: older registries have no such key
            spec["skew"] = dict(self.skew)
        return spec

    @classmethod
    def from_spec(cls, spec: dict[str, Any]) -> Field:
        return cls(
            spec["name"],
            types.from_name(spec["dtype"]),
            spec.get("description", ""),
            dict(spec.get("skew") or {}),
        )


def check_schedule(owner: str, schedule: str | None) -> None:
    """Accept a five-field cron expression or an @-alias (@hourly, @daily, ...)."""
    if schedule is None:
        return
    from croniter import croniter

    if not isinstance(schedule, str) or not croniter.is_valid(schedule):
        raise DefinitionError(
            f"{owner}: schedule {schedule!r} is not a valid cron expression; use five fields "
            "such as '0 * * * *' or an alias: @hourly, @daily, @weekly, @monthly, @yearly"
        )


CATCHUP_POLICIES = ("latest", "all")


@dataclass(frozen=True, eq=False)
class FeatureView:
    """Features of one or more entities, read from `source`.

    `ttl` bounds how old a value may be and still be served (offline and online alike);
    None means values never expire. `schedule` is when materialization runs.

    `lookback`, for a source without a created-timestamp column, is how late its rows may
    land after their event time: an incremental run re-reads that much before its watermark
    (a source with a created timestamp needs none: its arrival times say what is new).

    `transformation`, optional, is SQL in DuckDB's dialect over the table `source` (derived
    columns, filters, aggregations per entity and time bucket). It must output the join keys,
    the source's timestamp columns and the features. Both engines run it (Spark through a
    sqlglot translation), so it is written once.

    `catchup` is what `featurehub schedule` does with ticks it missed (it was down): "latest"
    runs once, to now; "all" runs each missed interval, tick to tick, as Airflow does.
    `freshness` bounds how old the newest materialized event may be before `featurehub
    status` calls the view stale; None means twice the schedule's interval (no bound for a
    view without a schedule).
    """

    name: str
    source: DataSource
    schema: list[Field]
    entities: list[Entity] = field(default_factory=list)
    ttl: timedelta | None = None
    online: bool = True
    schedule: str | None = None
    owner: str = ""
    tags: dict[str, str] = field(default_factory=dict)
    description: str = ""
    transformation: str | None = None
    lookback: timedelta | None = None
    catchup: str = "latest"
    freshness: timedelta | None = None

    def __post_init__(self) -> None:
        check_name("feature view", self.name)
        where = f"feature view {self.name!r}"
        if not isinstance(self.source, DataSource):
            raise DefinitionError(
                f"{where}: source must be a ParquetSource, CsvSource or SqlSource"
            )
        object.__setattr__(self, "schema", list(self.schema))
        object.__setattr__(self, "entities", list(self.entities))
        object.__setattr__(self, "tags", dict(self.tags))
        if not self.schema:
            raise DefinitionError(f"{where}: schema is empty; declare its features as Field(...)")
        for item in self.schema:
            if not isinstance(item, Field):
                raise DefinitionError(f"{where}: schema items must be Field(name, dtype)")
        for entity in self.entities:
            if not isinstance(entity, Entity):
                raise DefinitionError(f"{where}: entities must be Entity objects, got {entity!r}")
        names = [f.name for f in self.schema]
        repeated = sorted({n for n in names if names.count(n) > 1})
        if repeated:
            raise DefinitionError(f"{where}: feature(s) {repeated} are declared twice in schema")
        reserved = {*self.join_keys, self.source.timestamp_field, "event_timestamp"}
        reserved |= {"created_timestamp"}
        if self.source.created_timestamp_field:
            reserved.add(self.source.created_timestamp_field)
        clash = sorted(set(names) & reserved)
        if clash:
            raise DefinitionError(
                f"{where}: feature(s) {clash} clash with a join key or timestamp column; "
                "remove them from schema (keys and timestamps are not features)"
            )
        if self.ttl is not None:
            if not isinstance(self.ttl, timedelta):
                raise DefinitionError(f"{where}: ttl must be a datetime.timedelta or None")
            if self.ttl < timedelta(0):
                raise DefinitionError(
                    f"{where}: ttl {self.ttl} is negative; use a positive "
                    "timedelta, or None for values that never expire"
                )
            if self.ttl == timedelta(0):
                object.__setattr__(self, "ttl", None)
        check_schedule(where, self.schedule)
        if self.lookback is not None:
            if not isinstance(self.lookback, timedelta) or self.lookback < timedelta(0):
                raise DefinitionError(
                    f"{where}: lookback must be a non-negative datetime.timedelta, or None"
                )
            if self.source.created_timestamp_field:
                raise DefinitionError(
                    f"{where}: lookback is for sources without a created timestamp; "
                    f"{self.source.name!r} has {self.source.created_timestamp_field!r}, which "
                    "already tells incremental runs which rows arrived late: remove lookback"
                )
            if self.lookback == timedelta(0):
                object.__setattr__(self, "lookback", None)
        if self.catchup not in CATCHUP_POLICIES:
            raise DefinitionError(
                f"{where}: catchup {self.catchup!r} is not a policy; use 'latest' (run once, "
                "to now, after missed ticks) or 'all' (run each missed interval)"
            )
        if self.freshness is not None and (
            not isinstance(self.freshness, timedelta) or self.freshness <= timedelta(0)
        ):
            raise DefinitionError(
                f"{where}: freshness must be a positive datetime.timedelta (how old the newest "
                "materialized event may get), or None for twice the schedule's interval"
            )
        if self.transformation is not None and (
            not isinstance(self.transformation, str) or "source" not in self.transformation
        ):
            raise DefinitionError(
                f"{where}: transformation must be a SQL query that reads the view's source as "
                "the table `source`, e.g. 'SELECT ..., x * 2 AS y FROM source'"
            )

    def __hash__(self) -> int:
        return hash(("feature_view", self.name))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, FeatureView) and self.to_spec() == other.to_spec()

    @property
    def join_keys(self) -> list[str]:
        """All join keys of the view's entities, in declaration order."""
        return [key for entity in self.entities for key in entity.join_keys]

    @property
    def feature_names(self) -> list[str]:
        return [f.name for f in self.schema]

    def feature(self, name: str) -> Field:
        for item in self.schema:
            if item.name == name:
                return item
        raise DefinitionError(
            f"feature view {self.name!r} has no feature {name!r}."
            + did_you_mean(name, self.feature_names)
        )

    def __getitem__(self, features: list[str] | str) -> FeatureViewProjection:
        """`view[["a", "b"]]`: a subset of this view's features, for a FeatureService."""
        selected = [features] if isinstance(features, str) else list(features)
        for name in selected:
            self.feature(name)
        return FeatureViewProjection(self, selected)

    def to_spec(self) -> dict[str, Any]:
        spec: dict[str, Any] = {
            "name": self.name,
            "entities": [e.name for e in self.entities],
            "source": self.source.name,
            "schema": [f.to_spec() for f in self.schema],
            "ttl_seconds": self.ttl.total_seconds() if self.ttl is not None else None,
            "online": self.online,
            "schedule": self.schedule,
            "owner": self.owner,
            "tags": dict(sorted(self.tags.items())),
            "description": self.description,
            "transformation": self.transformation,
        }
        if self.lookback is not None:  # only when set: older registries have no such key
            spec["lookback_seconds"] = self.lookback.total_seconds()
        if self.catchup != "latest":
            spec["catchup"] = self.catchup
        if self.freshness is not None:
            spec["freshness_seconds"] = self.freshness.total_seconds()
        return spec

    @classmethod
    def from_spec(
        cls, spec: dict[str, Any], entities: dict[str, Entity], sources: dict[str, DataSource]
    ) -> FeatureView:
        ttl = spec.get("ttl_seconds")
        lookback = spec.get("lookback_seconds")
        freshness = spec.get("freshness_seconds")
        return cls(
            name=spec["name"],
            source=sources[spec["source"]],
            schema=[Field.from_spec(f) for f in spec["schema"]],
            entities=[entities[name] for name in spec["entities"]],
            ttl=timedelta(seconds=ttl) if ttl is not None else None,
            online=spec.get("online", True),
            schedule=spec.get("schedule"),
            owner=spec.get("owner", ""),
            tags=dict(spec.get("tags", {})),
            description=spec.get("description", ""),
            transformation=spec.get("transformation"),
            lookback=timedelta(seconds=lookback) if lookback is not None else None,
            catchup=spec.get("catchup", "latest"),
            freshness=timedelta(seconds=freshness) if freshness is not None else None,
        )


@dataclass(frozen=True)
class FeatureViewProjection:
    """Some features of one view, as a FeatureService lists them."""

    view: FeatureView
    features: list[str]

    def to_spec(self) -> dict[str, Any]:
        return {"view": self.view.name, "features": list(self.features)}
