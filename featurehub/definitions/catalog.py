"""A project's complete set of definitions, and feature references resolved against it.

The loader builds one from a repo's Python files, the registry from stored specs; serving
keeps one in memory so that resolving "view:feature" never queries the registry.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from featurehub.definitions.entity import Entity
from featurehub.definitions.feature_service import FeatureService
from featurehub.definitions.feature_view import FeatureView, FeatureViewProjection, Field
from featurehub.definitions.monitor import Monitor
from featurehub.definitions.source import DataSource
from featurehub.errors import DefinitionError, NotFoundError, did_you_mean

KINDS = ("entity", "source", "feature_view", "feature_service")

Specs = dict[str, dict[str, dict[str, Any]]]
"""kind -> name -> spec (plain JSON-able dicts), the registry's representation."""


@dataclass(frozen=True)
class Catalog:
    """Entities, sources, views and services of one project, by name."""

    entities: dict[str, Entity] = field(default_factory=dict)
    sources: dict[str, DataSource] = field(default_factory=dict)
    feature_views: dict[str, FeatureView] = field(default_factory=dict)
    feature_services: dict[str, FeatureService] = field(default_factory=dict)

    def to_specs(self) -> Specs:
        return {
            "entity": {n: o.to_spec() for n, o in sorted(self.entities.items())},
            "source": {n: o.to_spec() for n, o in sorted(self.sources.items())},
            "feature_view": {n: o.to_spec() for n, o in sorted(self.feature_views.items())},
            "feature_service": {n: o.to_spec() for n, o in sorted(self.feature_services.items())},
        }

    @classmethod
    def from_specs(cls, specs: Specs) -> Catalog:
        entities = {n: Entity.from_spec(s) for n, s in specs.get("entity", {}).items()}
        sources = {n: DataSource.from_spec(s) for n, s in specs.get("source", {}).items()}
        views = {
            n: FeatureView.from_spec(s, entities, sources)
            for n, s in specs.get("feature_view", {}).items()
        }
        services = {}
        for name, spec in specs.get("feature_service", {}).items():
            parts = [views[p["view"]][p["features"]] for p in spec["features"]]
            services[name] = FeatureService(
                name=name,
                features=list(parts),
                owner=spec.get("owner", ""),
                tags=dict(spec.get("tags", {})),
                description=spec.get("description", ""),
                monitor=Monitor.from_spec(spec["monitor"]) if spec.get("monitor") else None,
            )
        return cls(entities, sources, views, services)

    def is_empty(self) -> bool:
        return not (self.entities or self.sources or self.feature_views or self.feature_services)

    # -- look-ups ---------------------------------------------------------------------------

    def entity(self, name: str) -> Entity:
        return _get("entity", self.entities, name)

    def feature_view(self, name: str) -> FeatureView:
        return _get("feature view", self.feature_views, name)

    def feature_service(self, name: str) -> FeatureService:
        return _get("feature service", self.feature_services, name)

    def resolve(
        self, features: Sequence[str] | FeatureService | str
    ) -> list[FeatureViewProjection]:
        """Turn feature references into one projection per view, in first-seen order.

        Accepts a FeatureService, a service name, or a list of "view:feature" strings
        (a list may also hold service names). Unknown names fail with the closest match.
        """
        if isinstance(features, FeatureService):
            return [self.feature_view(p.view.name)[p.features] for p in features.projections]
        if isinstance(features, str):
            features = [features]
        if not features:
            raise DefinitionError("no features requested: pass 'view:feature' strings or a service")
        chosen: dict[str, list[str]] = {}
        for ref in features:
            if not isinstance(ref, str):
                raise DefinitionError(f"feature reference {ref!r} must be a 'view:feature' string")
            if ":" not in ref:
                service = self.feature_service(ref)
                for p in service.projections:
                    _add(chosen, p.view.name, p.features)
                continue
            view_name, _, feature_name = ref.partition(":")
            view = self.feature_view(view_name)
            if not feature_name:
                raise DefinitionError(f"feature reference {ref!r} has no feature after ':'")
            if feature_name == "*":
                _add(chosen, view.name, view.feature_names)
                continue
            view.feature(feature_name)
            _add(chosen, view.name, [feature_name])
        return [self.feature_views[v][names] for v, names in chosen.items()]

    def feature_fields(self, projection: FeatureViewProjection) -> list[Field]:
        view = self.feature_view(projection.view.name)
        return [view.feature(n) for n in projection.features]


def _add(chosen: dict[str, list[str]], view: str, names: Iterable[str]) -> None:
    bucket = chosen.setdefault(view, [])
    bucket.extend(n for n in names if n not in bucket)


def _get(kind: str, objects: dict[str, Any], name: str) -> Any:
    try:
        return objects[name]
    except KeyError:
        hint = did_you_mean(name, objects) or (
            f" Known: {', '.join(sorted(objects))}."
            if objects
            else " None is registered; run `featurehub apply`."
        )
        raise NotFoundError(f"unknown {kind} {name!r}.{hint}") from None
