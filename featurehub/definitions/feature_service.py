"""Feature services: the features one model consumes, versioned together."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from featurehub.definitions.feature_view import FeatureView, FeatureViewProjection
from featurehub.definitions.monitor import Monitor
from featurehub.definitions.names import check_name
from featurehub.errors import DefinitionError


@dataclass(frozen=True, eq=False)
class FeatureService:
    """A named list of features (whole views or `view[[...]]` subsets) for one model.

    `monitor`, optional, runs its skew check on a schedule (docs/alerts.md): a failed check
    raises a `skew_check_failed` alert."""

    name: str
    features: list[FeatureView | FeatureViewProjection]
    owner: str = ""
    tags: dict[str, str] = field(default_factory=dict)
    description: str = ""
    monitor: Monitor | None = None

    def __post_init__(self) -> None:
        check_name("feature service", self.name)
        where = f"feature service {self.name!r}"
        projections: list[FeatureViewProjection] = []
        for item in self.features:
            if isinstance(item, FeatureView):
                projections.append(FeatureViewProjection(item, item.feature_names))
            elif isinstance(item, FeatureViewProjection):
                projections.append(item)
            else:
                raise DefinitionError(
                    f"{where}: features must be FeatureView or view[['a', 'b']], got {item!r}"
                )
        if not projections:
            raise DefinitionError(f"{where}: features is empty")
        seen = [p.view.name for p in projections]
        repeated = sorted({n for n in seen if seen.count(n) > 1})
        if repeated:
            raise DefinitionError(
                f"{where}: view(s) {repeated} listed twice; list each view once "
                "with all the features you need: view[['a', 'b']]"
            )
        if self.monitor is not None:
            if not isinstance(self.monitor, Monitor):
                raise DefinitionError(
                    f"{where}: monitor must be Monitor(schedule=..., window=...), "
                    f"got {self.monitor!r}"
                )
            self.monitor.checked(where)
        object.__setattr__(self, "features", projections)
        object.__setattr__(self, "tags", dict(self.tags))

    def __hash__(self) -> int:
        return hash(("feature_service", self.name))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, FeatureService) and self.to_spec() == other.to_spec()

    @property
    def projections(self) -> list[FeatureViewProjection]:
        return [p for p in self.features if isinstance(p, FeatureViewProjection)]

    def to_spec(self) -> dict[str, Any]:
        spec: dict[str, Any] = {
            "name": self.name,
            "features": [p.to_spec() for p in self.projections],
            "owner": self.owner,
            "tags": dict(sorted(self.tags.items())),
            "description": self.description,
        }
        if self.monitor is not None:  # only when set: older registries have no such key
            spec["monitor"] = self.monitor.to_spec()
        return spec
