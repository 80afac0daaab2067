"""A saved training dataset: its record, its profile, and its rows on demand."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pandas as pd
import pyarrow as pa

from featurehub import dataframes
from featurehub.datasets.files import DatasetFiles
from featurehub.datasets.profile import FeatureProfile
from featurehub.registry.datasets import DatasetRecord


class Dataset:
    """An immutable, named result of `get_historical_features`.

    Metadata and the profile come from the registry; the rows are read (and checked against
    the fingerprint taken when they were written) only when asked for, once.
    """

    def __init__(self, record: DatasetRecord, files: DatasetFiles) -> None:
        self.record = record
        self._files = files
        self._table: pa.Table | None = None

    def __repr__(self) -> str:
        return f"Dataset({self.name!r}, rows={self.row_count}, features={len(self.features)})"

    @property
    def name(self) -> str:
        return self.record.name

    @property
    def description(self) -> str:
        return self.record.description

    @property
    def features(self) -> list[str]:
        return list(self.record.features)

    @property
    def feature_service(self) -> str | None:
        return self.record.feature_service

    @property
    def view_versions(self) -> dict[str, int]:
        return dict(self.record.view_versions)

    @property
    def row_count(self) -> int:
        return self.record.row_count

    @property
    def fingerprint(self) -> str:
        return self.record.fingerprint

    @property
    def created_at(self) -> datetime:
        return self.record.created_at

    @property
    def created_cutoff(self) -> bool:
        return self.record.created_cutoff

    @property
    def entity_range(self) -> tuple[datetime | None, datetime | None]:
        """The earliest and latest entity timestamp of its rows."""
        return self.record.entity_start, self.record.entity_end

    @property
    def profile(self) -> dict[str, FeatureProfile]:
        """Per feature column, the profile computed when the dataset was saved."""
        return {name: FeatureProfile.from_dict(data) for name, data in self.record.profile.items()}

    def to_dict(self, *, profile: bool = True) -> dict[str, Any]:
        """Metadata (and the profile) as JSON-able values: what `datasets describe --json`
        prints."""
        start, end = self.entity_range
        data: dict[str, Any] = {
            "name": self.name,
            "description": self.description,
            "features": self.features,
            "feature_service": self.feature_service,
            "view_versions": self.view_versions,
            "timestamp_column": self.record.timestamp_column,
            "entity_start": None if start is None else start.isoformat(),
            "entity_end": None if end is None else end.isoformat(),
            "row_count": self.row_count,
            "fingerprint": self.fingerprint,
            "created_at": self.created_at.isoformat(),
            "created_cutoff": self.created_cutoff,
            "path": self.record.path,
            "files": [vars(f) for f in self.record.files],
        }
        if profile:
            data["profile"] = {name: p.to_dict() for name, p in self.profile.items()}
        return data

    def to_arrow(self) -> pa.Table:
        """The rows as saved; a missing or modified file is an error naming it."""
        if self._table is None:
            self._table = self._files.read(self.record.path, self.record.files, self.name)
        return self._table

    def to_pandas(self) -> pd.DataFrame:
        """The rows as a DataFrame, in the dtypes `RetrievalJob.to_pandas` gives."""
        return dataframes.to_pandas(self.to_arrow())
