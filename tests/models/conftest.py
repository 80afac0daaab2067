"""A driver repo with a saved training set of its service, materialized up to now (so the
gate finds its views fresh), and a LogisticRegression over the service's features."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from sklearn.linear_model import LogisticRegression

from featurehub import FeatureStore
from tests.repos import BASE, DRIVER_DEFS, driver_table, make_repo

FEATURES = ["conv_rate", "trips_today"]
ROWS = 60


def entity_rows() -> pd.DataFrame:
    hours = range(2, ROWS)
    return pd.DataFrame(
        {
            "driver_id": [1000 + h % 3 for h in hours],
            "event_timestamp": [BASE + timedelta(hours=h, minutes=30) for h in hours],
        }
    )


def build_model_repo(
    root: Path, registry: str, models_yaml: str = "", until: datetime | None = None
) -> Path:
    """The repo, its data materialized up to `until` (now by default), a dataset saved."""
    # The data is from BASE, long ago: a freshness bound of a century keeps the gate's view
    # checks about materialization (tests/models/test_gates.py makes a view stale by `until`).
    defs = DRIVER_DEFS.replace(
        'schedule="@hourly"', 'schedule="@hourly", freshness=timedelta(days=36500)'
    )
    repo = make_repo(
        root,
        files={"defs.py": defs},
        project=f"m_{uuid.uuid4().hex[:10]}",
        registry=registry,
        data={"drivers": driver_table(ROWS)},
    )
    if models_yaml:
        with (repo / "featurehub.yaml").open("a") as file:
            file.write(models_yaml)
    entities = repo / "data" / "entities.parquet"
    pq.write_table(pa.Table.from_pandas(entity_rows(), preserve_index=False), entities)
    with FeatureStore(repo) as store:
        store.apply()
        store.materialize(BASE, until or datetime.now(timezone.utc))
        store.datasets.save("train", str(entities), "driver_service")
    return repo


def train(store: FeatureStore, dataset: str = "train", c: float = 1.0) -> LogisticRegression:
    """A LogisticRegression over the service's features: is the conversion rate high?"""
    frame = store.get_dataset(dataset).to_pandas()
    features = frame[FEATURES].astype("float64")
    labels = (features["conv_rate"] > 0.5).astype(int)
    return LogisticRegression(C=c).fit(features, labels)


def features_of(store: FeatureStore) -> pd.DataFrame:
    return store.get_dataset("train").to_pandas()


def expected_predictions(model: LogisticRegression, frame: pd.DataFrame) -> np.ndarray:
    return model.predict(frame[FEATURES].astype("float64"))


@pytest.fixture
def model_repo(tmp_path: Path, registry_url: str) -> Path:
    """On SQLite and PostgreSQL."""
    return build_model_repo(tmp_path / "repo", registry_url)


@pytest.fixture
def local_repo(tmp_path: Path) -> Path:
    """On SQLite only: for what does not depend on the database."""
    return build_model_repo(tmp_path / "repo", "sqlite:///data/registry.db")


@pytest.fixture
def model_store(model_repo: Path) -> Iterator[FeatureStore]:
    with FeatureStore(model_repo) as store:
        yield store


@pytest.fixture
def local_store(local_repo: Path) -> Iterator[FeatureStore]:
    with FeatureStore(local_repo) as store:
        yield store
