"""FeatureStore: the Python entry point. It builds the parts from config and delegates.

It holds no logic of its own beyond wiring: definitions come from `repo.loader`, checks from
`repo.validate`, storage from `registry`. Nothing here prints; the CLI renders results.
"""

from __future__ import annotations

import os
from pathlib import Path
from types import TracebackType

from featurehub.config import RepoConfig, load_config
from featurehub.definitions import Entity, FeatureService, FeatureView
from featurehub.definitions.catalog import Catalog
from featurehub.registry import Plan, RegistryState, SqlRegistry
from featurehub.registry.sql import HistoryEntry
from featurehub.repo.loader import load_repo
from featurehub.repo.validate import validate_repo


class FeatureStore:
    """A feature repo and the stores its configuration points to."""

    def __init__(
        self, repo_path: str | os.PathLike[str] = ".", *, config: RepoConfig | None = None
    ) -> None:
        self.config = config or load_config(repo_path)
        self._registry: SqlRegistry | None = None
        self._state: RegistryState | None = None

    @property
    def project(self) -> str:
        return self.config.project

    @property
    def repo_path(self) -> Path:
        return self.config.repo_path

    @property
    def registry(self) -> SqlRegistry:
        if self._registry is None:
            self._registry = SqlRegistry(self.config.registry_url)
        return self._registry

    def close(self) -> None:
        if self._registry is not None:
            self._registry.close()
            self._registry = None

    def __enter__(self) -> FeatureStore:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- definitions: repo -> registry -----------------------------------------------------------

    def load_definitions(self) -> Catalog:
        """The repo's definitions, checked against their sources (nothing is written)."""
        return validate_repo(load_repo(self.repo_path), self.repo_path)

    def plan(self) -> Plan:
        """What `apply` would change in the registry."""
        return self.registry.plan(self.project, self.load_definitions().to_specs())

    def apply(self, *, force: bool = False) -> Plan:
        """Validate the repo, then make the registry match it in one transaction."""
        plan = self.registry.apply(self.project, self.load_definitions().to_specs(), force=force)
        self._state = None
        return plan

    # -- registered definitions ------------------------------------------------------------------

    def catalog(self) -> Catalog:
        """Registered definitions, re-read only when an apply changed them."""
        generation = self.registry.generation(self.project)
        if self._state is None or self._state.generation != generation:
            self._state = self.registry.state(self.project)
        return self._state.catalog

    def list_entities(self) -> list[Entity]:
        return list(self.catalog().entities.values())

    def list_feature_views(self) -> list[FeatureView]:
        return list(self.catalog().feature_views.values())

    def list_feature_services(self) -> list[FeatureService]:
        return list(self.catalog().feature_services.values())

    def get_entity(self, name: str) -> Entity:
        return self.catalog().entity(name)

    def get_feature_view(self, name: str) -> FeatureView:
        return self.catalog().feature_view(name)

    def get_feature_service(self, name: str) -> FeatureService:
        return self.catalog().feature_service(name)

    def history(self, kind: str | None = None, name: str | None = None) -> list[HistoryEntry]:
        return self.registry.history(self.project, kind, name)
