"""`store.datasets`: save a training set under a name, get it back, list them.

Saving runs the join (if it has not run), profiles every feature, writes the rows through
the commit protocol (`featurehub.datasets.files`) and records them in one registry insert
(`featurehub.registry.datasets`): a save killed at any moment leaves nothing or everything.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timezone

import pyarrow as pa
import pyarrow.compute as pc

from featurehub import failpoints
from featurehub.datasets.dataset import Dataset
from featurehub.datasets.files import DatasetFiles, fingerprint
from featurehub.datasets.profile import profile_table
from featurehub.definitions import FeatureService, FeatureViewProjection
from featurehub.definitions.names import check_name
from featurehub.offline.retrieval import EntityInput, RetrievalJob
from featurehub.registry.datasets import (
    DatasetCatalog,
    DatasetError,
    DatasetExistsError,
    DatasetRecord,
)
from featurehub.types import as_utc

Retrieve = Callable[..., RetrievalJob]
"""`FeatureStore.get_historical_features`."""


@dataclass(frozen=True)
class DatasetRequest:
    """What a retrieval job was asked, as its saved dataset records it."""

    features: list[str]  # "view:feature"
    feature_service: str | None
    view_versions: dict[str, int]
    entity_columns: list[str]
    timestamp_column: str
    created_cutoff: bool


def feature_service_of(features: Sequence[str] | FeatureService | str) -> str | None:
    """The service a request named, when it named exactly one and nothing else."""
    if isinstance(features, FeatureService):
        return features.name
    refs = [features] if isinstance(features, str) else list(features)
    if len(refs) == 1 and isinstance(refs[0], str) and ":" not in refs[0]:
        return refs[0]
    return None


class Datasets:
    """The saved training datasets of one project."""

    def __init__(self, catalog: DatasetCatalog, files: DatasetFiles, retrieve: Retrieve) -> None:
        self._catalog = catalog
        self._files = files
        self._retrieve = retrieve

    def save(
        self,
        name: str,
        entity_df: EntityInput,
        features: Sequence[str] | FeatureService | str,
        *,
        description: str = "",
        timestamp_column: str = "event_timestamp",
        created_cutoff: bool = True,
    ) -> Dataset:
        """`get_historical_features(...).save(name)` in one call."""
        self._check_new(name)
        job = self._retrieve(
            entity_df, features, timestamp_column=timestamp_column, created_cutoff=created_cutoff
        )
        return job.save(name, description=description)

    def get(self, name: str) -> Dataset:
        return Dataset(self._catalog.get(name), self._files)

    def request(
        self,
        features: Sequence[str] | FeatureService | str,
        projections: list[FeatureViewProjection],
        entity_columns: list[str],
        timestamp_column: str,
        created_cutoff: bool,
    ) -> DatasetRequest:
        """What a job is being asked, with the registry version of each view it reads now."""
        views = [p.view.name for p in projections]
        return DatasetRequest(
            features=[f"{p.view.name}:{feature}" for p in projections for feature in p.features],
            feature_service=feature_service_of(features),
            view_versions=self._catalog.view_versions(views),
            entity_columns=list(entity_columns),
            timestamp_column=timestamp_column,
            created_cutoff=created_cutoff,
        )

    def saver(self, request: DatasetRequest) -> Callable[[RetrievalJob, str, str], Dataset]:
        """The function `RetrievalJob.save` calls, bound to what the job was asked."""

        def save(job: RetrievalJob, name: str, description: str) -> Dataset:
            return self.save_job(job, request, name, description)

        return save

    def save_job(
        self, job: RetrievalJob, request: DatasetRequest, name: str, description: str = ""
    ) -> Dataset:
        self._check_new(name)
        table = job.to_arrow()
        if not table.num_rows:
            raise DatasetError(
                f"dataset {name!r}: the entity rows are empty, so there is nothing to save; "
                "pass entity rows (keys and timestamps) that cover the training period"
            )
        columns = [c for c in table.column_names if c not in request.entity_columns]
        profile = profile_table(table, columns)
        self._files.collect_garbage(self._catalog.known_paths())
        staging, files = self._files.stage(table)
        try:
            path = self._files.seal(staging, name)
        except BaseException:
            self._files.discard(staging)
            raise
        start, end = _time_range(table.column(request.timestamp_column))
        record = DatasetRecord(
            name=name,
            features=request.features,
            feature_service=request.feature_service,
            view_versions=request.view_versions,
            timestamp_column=request.timestamp_column,
            entity_start=start,
            entity_end=end,
            row_count=table.num_rows,
            fingerprint=fingerprint(files),
            path=path,
            files=files,
            created_cutoff=request.created_cutoff,
            description=description,
            created_at=datetime.now(timezone.utc),
            profile={column: p.to_dict() for column, p in profile.items()},
        )
        try:
            self._catalog.record(record)
        except DatasetExistsError:  # another save of the name won the race
            self._files.discard(path)
            raise
        failpoints.reach("dataset_published")
        return Dataset(record, self._files)

    def _check_new(self, name: str) -> None:
        check_name("dataset", name)
        self._catalog.check_free(name)

    # Last in the class: below it, `list` in an annotation would name this method.
    def list(self) -> list[Dataset]:
        """Every saved dataset, newest first (metadata only: no rows are read)."""
        return [Dataset(record, self._files) for record in self._catalog.list()]


def _time_range(column: pa.ChunkedArray) -> tuple[datetime | None, datetime | None]:
    """The earliest and latest entity time (a date is midnight UTC)."""
    return _moment(pc.min(column).as_py()), _moment(pc.max(column).as_py())


def _moment(value: datetime | date | None) -> datetime | None:
    if value is None:
        return None
    if not isinstance(value, datetime):
        value = datetime(value.year, value.month, value.day)
    return as_utc(value)
