"""Batch scoring: the point-in-time features of each entity row through the training join,
then the model, written whole as Parquet."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from featurehub import FeatureStore
from featurehub.models import ModelError, scoring
from featurehub.models.loaded import LoadedModel
from tests.models.conftest import expected_predictions, train


def test_scores_match_the_training_join(model_store: FeatureStore, model_repo: Path) -> None:
    """On both registries: the same rows and predictions as the join plus predict by hand."""
    model = train(model_store)
    model_store.models.register(
        "driver_model", model, feature_service="driver_service", training_dataset="train"
    )
    model_store.models.promote("driver_model", 1, "production")
    entities = str(model_repo / "data" / "entities.parquet")
    out = model_repo / "scores" / "nightly.parquet"
    result = model_store.models.score("driver_model@production", entities, out)
    assert (result.model, result.version, result.rows, result.path) == ("driver_model", 1, 58, out)

    scored = pq.read_table(out)
    assert scored.column_names == [
        "driver_id", "event_timestamp", "model", "model_version", "prediction",
    ]  # fmt: skip
    joined = model_store.get_historical_features(entities, "driver_service").to_pandas()
    assert scored.column("driver_id").to_pylist() == joined["driver_id"].tolist()
    assert scored.column("prediction").to_pylist() == list(expected_predictions(model, joined))
    assert set(scored.column("model").to_pylist()) == {"driver_model"}
    assert set(scored.column("model_version").to_pylist()) == {1}
    assert [p.name for p in out.parent.iterdir()] == ["nightly.parquet"]  # no temp file left


def test_scoring_a_sql_selection_and_refusals(local_store: FeatureStore, local_repo: Path) -> None:
    local_store.models.register(
        "driver_model", train(local_store), feature_service="driver_service",
        training_dataset="train",
    )  # fmt: skip
    entities = local_repo / "data" / "entities.parquet"
    out = local_repo / "scores.parquet"
    query = f"SELECT * FROM '{entities}' WHERE driver_id = 1001"
    result = local_store.models.score("driver_model:1", query, out)
    assert set(pq.read_table(out).column("driver_id").to_pylist()) == {1001}
    assert result.rows == pq.read_metadata(out).num_rows
    with pytest.raises(ModelError, match="has no alias 'production'"):
        local_store.models.score("driver_model@production", str(entities), out)
    assert pq.read_table(out).num_rows == result.rows  # the earlier file is untouched


def test_scores_are_written_a_row_group_at_a_time_and_whole_or_not_at_all(
    local_store: FeatureStore, local_repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each row group is predicted while the last is written: the same rows and predictions
    as in one piece; a model failing on a later group leaves the earlier file as it was and
    no temporary file."""
    model = train(local_store)
    local_store.models.register(
        "driver_model", model, feature_service="driver_service", training_dataset="train"
    )
    entities = str(local_repo / "data" / "entities.parquet")
    out = local_repo / "scores" / "nightly.parquet"
    monkeypatch.setattr(scoring, "ROWS_PER_GROUP", 5)
    result = local_store.models.score("driver_model:1", entities, out)
    assert result.rows == 58 and pq.read_metadata(out).num_row_groups == 12
    joined = local_store.get_historical_features(entities, "driver_service").to_pandas()
    scored = pq.read_table(out)
    assert scored.column("prediction").to_pylist() == list(expected_predictions(model, joined))
    assert scored.column("driver_id").to_pylist() == joined["driver_id"].tolist()

    calls = []
    real = LoadedModel.predict_table

    def failing_on_the_third(self: LoadedModel, features: pa.Table) -> np.ndarray:
        calls.append(features.num_rows)
        if len(calls) == 3:
            raise ModelError("the third group failed")
        return real(self, features)

    monkeypatch.setattr(LoadedModel, "predict_table", failing_on_the_third)
    with pytest.raises(ModelError, match="the third group failed"):
        local_store.models.score("driver_model:1", entities, out)
    assert pq.read_table(out).equals(scored)
    assert [p.name for p in out.parent.iterdir()] == ["nightly.parquet"]

    # a model answering integers for one group and floats for the next: refused, named
    answers = iter([np.array([1] * 5), np.array([0.5] * 5), np.array([2] * 5)])
    monkeypatch.setattr(LoadedModel, "predict_table", lambda self, f: next(answers)[: f.num_rows])
    query = f"SELECT * FROM '{entities}' LIMIT 15"
    with pytest.raises(ModelError, match="answered double for rows from 5 on, int64 before"):
        local_store.models.score("driver_model:1", query, out)
    assert pq.read_table(out).equals(scored)
