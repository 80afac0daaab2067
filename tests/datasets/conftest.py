"""A driver repo on each registry database, materialized, with entity rows to save."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from featurehub import FeatureStore
from tests.repos import BASE, make_repo


def entity_rows() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "driver_id": [1000, 1001, 1002, 1000, 1003],
            "event_timestamp": [BASE + timedelta(hours=h) for h in (3, 5, 8, 11, 9)],
        }
    )


@pytest.fixture
def dataset_repo(tmp_path: Path, registry_url: str) -> Path:
    repo = make_repo(
        tmp_path / "repo", project=f"ds_{uuid.uuid4().hex[:10]}", registry=registry_url
    )
    table = pa.Table.from_pandas(entity_rows(), preserve_index=False)
    pq.write_table(table, repo / "data" / "entities.parquet")
    with FeatureStore(repo) as store:
        store.apply()
        store.materialize(BASE, BASE + timedelta(hours=12), online=False)
    return repo


@pytest.fixture
def dataset_store(dataset_repo: Path) -> Iterator[FeatureStore]:
    with FeatureStore(dataset_repo) as store:
        yield store
