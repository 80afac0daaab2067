"""Saved datasets on SQLite and PostgreSQL registries: what is recorded, immutability,
fingerprint checks, and the errors a user can cause."""

from __future__ import annotations

import hashlib
import os
from datetime import timedelta
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pytest

from featurehub import FeatureStore
from featurehub.datasets.profile import profile_column
from featurehub.errors import FeaturehubError, NotFoundError
from featurehub.offline.retrieval import RetrievalJob
from featurehub.registry.datasets import DatasetError, DatasetExistsError
from tests.datasets.conftest import entity_rows
from tests.repos import BASE, make_repo


def test_a_saved_dataset_holds_the_join_and_its_record(dataset_store: FeatureStore) -> None:
    store = dataset_store
    job = store.get_historical_features(entity_rows(), "driver_service")
    saved = job.save("trip_training_2026_11", description="first model")
    expected = job.to_arrow()

    again = store.get_dataset("trip_training_2026_11")
    assert again.to_arrow().equals(expected)
    assert again.to_pandas().equals(job.to_pandas())
    assert again.features == ["driver_stats:conv_rate", "driver_stats:trips_today"]
    assert again.feature_service == "driver_service"
    [entry] = store.history("feature_view", "driver_stats")
    assert again.view_versions == {"driver_stats": entry.version}
    assert again.entity_range == (BASE.replace(hour=3), BASE.replace(hour=11))
    assert again.row_count == 5 and again.created_cutoff is True
    assert again.description == "first model"
    assert again.created_at == saved.created_at

    folder = store.config.offline_root / store.project / "_datasets" / "trip_training_2026_11"
    [data_file] = list(folder.rglob("*.parquet"))
    file_sha = hashlib.sha256(data_file.read_bytes()).hexdigest()
    assert [f.sha256 for f in again.record.files] == [file_sha]
    assert again.fingerprint == hashlib.sha256(f"part-0.parquet\0{file_sha}\n".encode()).hexdigest()
    assert not list((folder.parent / ".staging").iterdir())


def test_the_profile_is_stored_and_read_without_the_rows(dataset_store: FeatureStore) -> None:
    store = dataset_store
    job = store.get_historical_features(entity_rows(), ["driver_stats:conv_rate"])
    job.save("only_conv")
    table = job.to_arrow()
    dataset = store.get_dataset("only_conv")
    for path in (store.config.offline_root / store.project / "_datasets").rglob("*.parquet"):
        path.unlink()  # a drift check needs the profile alone
    [name] = dataset.profile
    assert name == "conv_rate"
    assert dataset.profile["conv_rate"] == profile_column("conv_rate", table.column("conv_rate"))
    assert dataset.profile["conv_rate"].missing == 1  # driver 1003 has no history
    assert dataset.feature_service is None


def test_store_datasets_save_get_and_list(dataset_store: FeatureStore) -> None:
    store = dataset_store
    first = store.datasets.save("a_set", entity_rows(), ["driver_stats:*"], created_cutoff=False)
    store.datasets.save("b_set", entity_rows(), "driver_service")
    assert first.created_cutoff is False
    assert [d.name for d in store.datasets.list()] == ["b_set", "a_set"]
    assert store.datasets.get("a_set").to_arrow().num_rows == 5


def test_a_saved_name_is_never_overwritten(dataset_store: FeatureStore) -> None:
    store = dataset_store
    store.datasets.save("fixed", entity_rows(), "driver_service")
    before = store.get_dataset("fixed").fingerprint
    other = entity_rows().iloc[:2]
    with pytest.raises(DatasetExistsError, match="'fixed' is already saved.*immutable"):
        store.get_historical_features(other, "driver_service").save("fixed")
    with pytest.raises(DatasetExistsError):
        store.datasets.save("fixed", other, "driver_service")
    assert store.get_dataset("fixed").fingerprint == before
    assert store.get_dataset("fixed").to_arrow().num_rows == 5
    folder = store.config.offline_root / store.project / "_datasets" / "fixed"
    assert len(list(folder.iterdir())) == 1  # the refused save left no files


def test_errors_name_the_problem_and_the_fix(dataset_store: FeatureStore) -> None:
    store = dataset_store
    store.datasets.save("trips_2026", entity_rows(), "driver_service")
    with pytest.raises(NotFoundError, match="Did you mean 'trips_2026'") as unknown:
        store.get_dataset("trips_2025")
    assert "\n" not in str(unknown.value)
    with pytest.raises(FeaturehubError, match="dataset name 'bad-name' is invalid"):
        store.datasets.save("bad-name", entity_rows(), "driver_service")
    with pytest.raises(DatasetError, match="empty, so there is nothing to save"):
        store.datasets.save("nothing", entity_rows().iloc[:0], "driver_service")
    assert [d.name for d in store.datasets.list()] == ["trips_2026"]
    with pytest.raises(FeaturehubError, match="cannot be saved"):
        RetrievalJob(lambda: pa.table({"x": [1]})).save("loose")


def test_a_tampered_or_missing_file_is_named(dataset_store: FeatureStore) -> None:
    store = dataset_store
    store.datasets.save("guarded", entity_rows(), "driver_service")
    folder = store.config.offline_root / store.project / "_datasets" / "guarded"
    [data_file] = list(folder.rglob("*.parquet"))
    data = data_file.read_bytes()
    data_file.write_bytes(data[:-9] + bytes([data[-9] ^ 1]) + data[-8:])
    with pytest.raises(DatasetError, match="does not match the sha256") as tampered:
        store.get_dataset("guarded").to_pandas()
    assert str(data_file) in str(tampered.value)
    data_file.unlink()
    with pytest.raises(DatasetError, match="is missing") as missing:
        store.get_dataset("guarded").to_arrow()
    assert str(data_file) in str(missing.value)


def test_what_a_killed_save_left_is_removed_later(dataset_store: FeatureStore) -> None:
    store = dataset_store
    datasets_dir = store.config.offline_root / store.project / "_datasets"
    orphan = datasets_dir / "lost" / "20260101T000000-000000000000"
    staged = datasets_dir / ".staging" / "20260101T000000-111111111111"
    fresh = datasets_dir / ".staging" / "20260101T000000-222222222222"
    for folder in (orphan, staged, fresh):
        folder.mkdir(parents=True)
        (folder / "part-0.parquet").write_bytes(b"partial")
    old = BASE.timestamp()
    for folder in (orphan, staged):
        os.utime(folder, (old, old))
    store.datasets.save("next_one", entity_rows(), "driver_service")
    assert not orphan.exists() and not staged.exists()
    assert fresh.exists()  # may be a save still in flight
    assert store.datasets.get("next_one").to_arrow().num_rows == 5


def test_a_view_changed_since_is_recorded_at_the_version_read(
    dataset_repo: Path,
) -> None:
    with FeatureStore(dataset_repo) as store:
        store.datasets.save("v1", entity_rows(), "driver_service")
    defs = dataset_repo / "defs.py"
    defs.write_text(defs.read_text().replace('schedule="@hourly"', 'schedule="@daily"'))
    with FeatureStore(dataset_repo) as store:
        store.apply()
        store.datasets.save("v2", entity_rows(), "driver_service")
        assert store.get_dataset("v1").view_versions == {"driver_stats": 1}
        assert store.get_dataset("v2").view_versions == {"driver_stats": 2}


CITY_DEFS = """
from datetime import timedelta
from featurehub import Entity, FeatureView, Field, ParquetSource
from featurehub.types import Bool, Float64, String

driver = Entity(name="driver", join_keys=["driver_id"])
profile = FeatureView(
    name="driver_profile",
    entities=[driver],
    source=ParquetSource(path="data/profiles.parquet"),
    schema=[Field("city", String), Field("active", Bool), Field("rating", Float64)],
    ttl=timedelta(days=2),
)
"""


def test_strings_and_booleans_get_category_frequencies(tmp_path: Path, registry_url: str) -> None:
    rows = 12
    profiles = pa.table(
        {
            "driver_id": pa.array([i % 4 for i in range(rows)], pa.int64()),
            "event_timestamp": pa.array(
                [BASE + timedelta(hours=i) for i in range(rows)], pa.timestamp("us", tz="UTC")
            ),
            "city": ["paris", "rome", "paris", None] * 3,
            "active": [True, False, True, True] * 3,
            "rating": [float(i) for i in range(rows)],
        }
    )
    repo = make_repo(
        tmp_path / "repo",
        files={"defs.py": CITY_DEFS},
        data={"profiles": profiles},
        registry=registry_url,
    )
    entity = pd.DataFrame(
        {"driver_id": [0, 1, 2, 3, 0], "event_timestamp": [BASE + timedelta(hours=12)] * 5}
    )
    with FeatureStore(repo) as store:
        store.apply()
        store.materialize(BASE, BASE + timedelta(hours=rows), online=False)
        saved = store.datasets.save("cities", entity, ["driver_profile:*"])
        profile = store.get_dataset("cities").profile
    assert saved.row_count == 5
    city, active = profile["city"], profile["active"]
    assert (city.kind, city.categories, city.other_count, city.missing) == (
        "category", [("paris", 3), ("rome", 1)], 0, 1,
    )  # fmt: skip
    assert (active.kind, active.categories) == ("category", [(True, 4), (False, 1)])
    assert profile["rating"].kind == "number" and profile["rating"].quantiles["100"] == 11.0
