"""Saved training datasets in the registry: one immutable row per name.

Recording a dataset is the one registry transaction of its save (after its files are flushed
and renamed into place, `featurehub.datasets.files`): before it the files are invisible, after
it all of them are. The unique (project, name) constraint is what refuses a second save of a
name, even when two processes race; nothing ever updates a row.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from featurehub.errors import FeaturehubError, NotFoundError, did_you_mean
from featurehub.registry.tables import datasets, registry_objects
from featurehub.types import as_utc


class DatasetError(FeaturehubError, ValueError):
    """A dataset cannot be saved or loaded as asked."""


class DatasetExistsError(DatasetError):
    """A dataset of that name is already saved; saved datasets are immutable."""


@dataclass(frozen=True)
class DatasetFile:
    """One data file of a dataset, relative to its folder, with its sha256."""

    name: str
    sha256: str
    bytes: int


@dataclass(frozen=True)
class DatasetRecord:
    """What the registry keeps of a saved dataset (its profile as plain JSON-able dicts)."""

    name: str
    features: list[str]
    feature_service: str | None
    view_versions: dict[str, int]
    timestamp_column: str
    entity_start: datetime | None
    entity_end: datetime | None
    row_count: int
    fingerprint: str
    path: str
    files: list[DatasetFile]
    created_cutoff: bool
    description: str
    created_at: datetime
    profile: dict[str, dict[str, Any]] = field(default_factory=dict)


def _exists_message(name: str) -> str:
    return (
        f"dataset {name!r} is already saved and saved datasets are immutable; "
        "save under a new name (e.g. with a date or version suffix)"
    )


class DatasetCatalog:
    """The saved datasets of one project, kept in the registry database."""

    def __init__(self, engine: sa.Engine, project: str) -> None:
        self._engine = engine
        self._project = project

    def view_versions(self, views: list[str]) -> dict[str, int]:
        """The registry version of each view now (what a join started now reads)."""
        table = registry_objects
        query = sa.select(table.c.name, table.c.version).where(
            table.c.project == self._project,
            table.c.kind == "feature_view",
            table.c.name.in_(views),
        )
        with self._engine.connect() as conn:
            found = {name: int(version) for name, version in conn.execute(query)}
        return {view: found[view] for view in views if view in found}

    def exists(self, name: str) -> bool:
        with self._engine.connect() as conn:
            return conn.execute(self._where(sa.select(datasets.c.id), name)).first() is not None

    def check_free(self, name: str) -> None:
        """Refuse a name already saved, before any work is done for it."""
        if self.exists(name):
            raise DatasetExistsError(_exists_message(name))

    def record(self, record: DatasetRecord) -> None:
        """Publish a dataset: one insert, refused when the name is taken (even by a save
        that committed a moment ago)."""
        values = dict(
            project=self._project,
            name=record.name,
            features=json.dumps(record.features),
            feature_service=record.feature_service,
            view_versions=json.dumps(record.view_versions, sort_keys=True),
            timestamp_column=record.timestamp_column,
            entity_start=record.entity_start,
            entity_end=record.entity_end,
            row_count=record.row_count,
            fingerprint=record.fingerprint,
            path=record.path,
            files=json.dumps([vars(f) for f in record.files]),
            created_cutoff=record.created_cutoff,
            description=record.description,
            profile=json.dumps(record.profile),
            created_at=record.created_at,
        )
        try:
            with self._engine.begin() as conn:
                conn.execute(datasets.insert().values(**values))
        except sa.exc.IntegrityError:
            raise DatasetExistsError(_exists_message(record.name)) from None

    def get(self, name: str) -> DatasetRecord:
        with self._engine.connect() as conn:
            row = conn.execute(self._where(sa.select(datasets), name)).mappings().first()
        if row is None:
            names = self.names()
            hint = did_you_mean(name, names) or (
                " Saved datasets: " + ", ".join(names) + "." if names else " None is saved yet."
            )
            raise NotFoundError(
                f"no dataset named {name!r} in project {self._project!r}.{hint} "
                "List them with: featurehub datasets list"
            )
        return _record_of(row)

    def names(self) -> list[str]:
        query = sa.select(datasets.c.name).where(datasets.c.project == self._project)
        with self._engine.connect() as conn:
            return sorted(row[0] for row in conn.execute(query))

    def known_paths(self) -> set[str]:
        """The folder of every saved dataset (for removing what a killed save left)."""
        query = sa.select(datasets.c.path).where(datasets.c.project == self._project)
        with self._engine.connect() as conn:
            return {row[0] for row in conn.execute(query)}

    def _where(self, query: Any, name: str) -> Any:
        return query.where(datasets.c.project == self._project, datasets.c.name == name)

    # Last in the class: below it, `list` in an annotation would name this method.
    def list(self) -> list[DatasetRecord]:
        """Every saved dataset, newest first."""
        query = (
            sa.select(datasets)
            .where(datasets.c.project == self._project)
            .order_by(datasets.c.id.desc())
        )
        with self._engine.connect() as conn:
            return [_record_of(row) for row in conn.execute(query).mappings()]


def _record_of(row: Any) -> DatasetRecord:
    return DatasetRecord(
        name=row["name"],
        features=json.loads(row["features"]),
        feature_service=row["feature_service"],
        view_versions=json.loads(row["view_versions"]),
        timestamp_column=row["timestamp_column"],
        entity_start=None if row["entity_start"] is None else as_utc(row["entity_start"]),
        entity_end=None if row["entity_end"] is None else as_utc(row["entity_end"]),
        row_count=int(row["row_count"]),
        fingerprint=row["fingerprint"],
        path=row["path"],
        files=[DatasetFile(**f) for f in json.loads(row["files"])],
        created_cutoff=bool(row["created_cutoff"]),
        description=row["description"] or "",
        created_at=as_utc(row["created_at"]),
        profile=json.loads(row["profile"]),
    )
