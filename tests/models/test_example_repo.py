"""The example repo's trip model end to end: a LogisticRegression (behind an imputer, as
values past their ttl are missing) over trip_completion_v1's features, in the sklearn and
onnx flavors, gated, promoted and scored with the join training used."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
from skl2onnx import to_onnx
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline

from featurehub import FeatureStore
from tests.example_repo import copy_example_repo

NOW = datetime.now(timezone.utc).replace(minute=0, second=0, microsecond=0)


def test_trip_model_lifecycle(tmp_path: Path) -> None:
    repo = copy_example_repo(tmp_path / "repo", rows=2_000, end=NOW)
    with FeatureStore(repo) as store:
        store.apply()
        store.materialize(NOW - timedelta(days=60), NOW + timedelta(hours=1))
        trips = str(repo / "data" / "trips.parquet")
        dataset = store.datasets.save("trips_train", trips, "trip_completion_v1")
        frame = dataset.to_pandas()
        service = store.get_feature_service("trip_completion_v1")
        features = [f for p in service.projections for f in p.features]
        matrix = frame[features].to_numpy(dtype=np.float64, na_value=np.nan)
        model = make_pipeline(SimpleImputer(), LogisticRegression(max_iter=500))
        model.fit(matrix, frame["completed"].astype(int))
        accuracy = float((model.predict(matrix) == frame["completed"]).mean())

        options = {"feature_service": "trip_completion_v1", "training_dataset": "trips_train"}
        sklearn_version = store.models.register(
            "trip_completion", model, metrics={"accuracy": accuracy}, **options
        )
        onnx_version = store.models.register(
            "trip_completion", to_onnx(model, matrix[:1].astype(np.float32)),
            metrics={"accuracy": accuracy}, **options,
        )  # fmt: skip
        assert [i.name for i in sklearn_version.signature.inputs] == features
        assert sklearn_version.signature.output == "int64"
        expected = model.predict(matrix)
        for version in (1, 2):
            predicted = store.models.load(f"trip_completion:{version}").predict(frame)
            agree = float((predicted == expected).mean())
            assert agree > 0.99, version  # ONNX computes in float32

        store.models.promote("trip_completion", sklearn_version.version, "production")
        store.models.promote("trip_completion", onnx_version.version, "production")
        assert store.models.stage("trip_completion:1") == "Archived"
        out = repo / "scores.parquet"
        result = store.models.score("trip_completion@production", trips, out)
        scored = pq.read_table(out)
        assert result.rows == scored.num_rows == dataset.row_count
        assert set(scored.column("model_version").to_pylist()) == {2}
        assert {"customer_id", "driver_id", "pickup_zone", "completed"} <= set(scored.column_names)
        # Scoring builds the matrix from Arrow; predict from pandas: the same predictions.
        joined = store.get_historical_features(trips, "trip_completion_v1").to_pandas()
        by_pandas = store.models.load("trip_completion@production").predict(joined)
        assert scored.column("prediction").to_pylist() == by_pandas.tolist()
        assert joined[features].isna().to_numpy().any()  # nulls went through both paths
