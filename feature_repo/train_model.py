"""Train the trip-completion model on a saved training dataset, register it and promote it.

    python train_model.py DATASET [--name trip_completion]

The model (an imputer, since values past their ttl are missing, then a logistic regression)
is trained on the earlier 80 % of the dataset's trips and evaluated on the later 20 %, as it
would be used: on trips after the ones it learnt from. The version is registered with its
metrics, tied to the dataset and its feature service, and promoted to production through the
gate (docs/models.md).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.pipeline import Pipeline, make_pipeline

from featurehub import FeatureStore

REPO = Path(__file__).parent
SERVICE = "trip_completion_v1"


def training_arrays(store: FeatureStore, dataset: str) -> tuple[np.ndarray, np.ndarray]:
    """The dataset's features (in the feature service's order, a missing value NaN) and
    labels, earliest trip first: the rows `train` splits in time."""
    frame = store.get_dataset(dataset).to_pandas().sort_values("event_timestamp")
    service = store.get_feature_service(SERVICE)
    features = [feature for projection in service.projections for feature in projection.features]
    matrix = frame[features].to_numpy(dtype=np.float64, na_value=np.nan)
    return matrix, frame["completed"].astype(int).to_numpy()


def train(matrix: np.ndarray, labels: np.ndarray) -> tuple[Pipeline, dict[str, float]]:
    """The model fitted on the earlier 80 % of the rows, and its metrics on the later 20 %.
    bench/bench_predict.py serves this same model."""
    split = int(len(matrix) * 0.8)
    model = make_pipeline(SimpleImputer(), LogisticRegression(max_iter=1_000))
    model.fit(matrix[:split], labels[:split])
    auc = float(roc_auc_score(labels[split:], model.predict_proba(matrix[split:])[:, 1]))
    accuracy = float((model.predict(matrix[split:]) == labels[split:]).mean())
    return model, {"auc": auc, "accuracy": accuracy}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dataset", help="A saved training dataset of trip_completion_v1.")
    parser.add_argument("--name", default="trip_completion", help="The model's name.")
    args = parser.parse_args()
    with FeatureStore(REPO) as store:
        matrix, labels = training_arrays(store, args.dataset)
        model, metrics = train(matrix, labels)
        version = store.models.register(
            args.name,
            model,
            feature_service=SERVICE,
            training_dataset=args.dataset,
            metrics=metrics,
            params={"model": "SimpleImputer + LogisticRegression", "train_share": 0.8},
            description=f"trained on the earlier 80 % of {args.dataset}",
        )
        held_out = len(matrix) - int(len(matrix) * 0.8)
        print(
            f"{version.reference}: AUC {metrics['auc']:.3f}, accuracy "
            f"{metrics['accuracy']:.3f} on the later {held_out:,} trips"
        )
        for change in store.models.promote(args.name, version.version, "production"):
            print(f"  {args.name}@{change.alias} -> version {change.version}")


if __name__ == "__main__":
    main()
