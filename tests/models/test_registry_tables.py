"""Migration 0009 creates exactly the model tables tables.py declares, on both databases;
concurrent registrations get distinct numbers; the models: section is checked."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from featurehub import FeatureStore
from featurehub.config import load_config
from featurehub.errors import ConfigError
from featurehub.registry.sql import SqlRegistry
from featurehub.registry.tables import metadata
from tests.models.conftest import train


def test_migrations_match_the_tables(registry_url: str) -> None:
    registry = SqlRegistry(registry_url)
    try:
        with registry.engine.connect() as conn:
            differences = compare_metadata(MigrationContext.configure(conn), metadata)
    finally:
        registry.close()
    assert differences == []


def test_concurrent_registrations_get_distinct_numbers(model_repo: Path) -> None:
    with FeatureStore(model_repo) as store:
        model = train(store)

    def register(_: int) -> int:
        with FeatureStore(model_repo) as own:
            return own.models.register(
                "driver_model", model, feature_service="driver_service", training_dataset="train"
            ).version

    with ThreadPoolExecutor(4) as pool:
        numbers = sorted(pool.map(register, range(4)))
    assert numbers == [1, 2, 3, 4]


@pytest.mark.parametrize(
    ("section", "message"),
    [
        ("models:\n  gates:\n    accuracy: {}\n", "a metric gate needs min, max or max_drop"),
        ("models:\n  gates:\n    accuracy: {min: 0.9, max: 0.8}\n", "min 0.9 is above max 0.8"),
        ("models:\n  gates:\n    accuracy: {max_drop: -1}\n", "max_drop"),
        ("models:\n  artefact_root: x\n", "artefact_root"),
    ],
)
def test_the_models_section_is_checked(tmp_path: Path, section: str, message: str) -> None:
    (tmp_path / "featurehub.yaml").write_text("project: p\n" + section)
    with pytest.raises(ConfigError, match=message):
        load_config(tmp_path)


def test_the_artifact_root_default_and_override(tmp_path: Path) -> None:
    (tmp_path / "featurehub.yaml").write_text("project: p\n")
    assert load_config(tmp_path, env={}).model_artifact_root == tmp_path / "data" / "models"
    env = {"FEATUREHUB_MODEL_ARTIFACT_ROOT": "/srv/models"}
    assert load_config(tmp_path, env=env).model_artifact_root == Path("/srv/models")
