"""Build a point-in-time correct training set for trip_completion_v1 from trips.parquet.

    python build_training_set.py [--out data/training_set.parquet]

Each trip request gets the feature values known at its request time. The script also counts
how many values a join that ignores created timestamps (Feast's default) would have leaked.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd

from featurehub import FeatureStore

REPO = Path(__file__).parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=REPO / "data" / "training_set.parquet")
    args = parser.parse_args()
    store = FeatureStore(REPO)
    trips = pd.read_parquet(REPO / "data" / "trips.parquet")
    job = store.get_historical_features(trips, "trip_completion_v1")
    training = job.to_pandas()
    job.to_parquet(args.out)
    features = [c for c in training.columns if c not in trips.columns]
    print(f"training set: {len(training):,} rows x {len(features)} features -> {args.out}")
    print(training.head(5).to_string(index=False))
    leaky = store.get_historical_features(trips, "trip_completion_v1", created_cutoff=False)
    naive, careful = leaky.to_pandas()[features], training[features]
    leaked = ~((naive == careful).fillna(False) | (naive.isna() & careful.isna()))
    print(
        f"values a join without the created-time cutoff would change (leaks from late "
        f"backfills): {int(leaked.to_numpy().sum()):,} of {training[features].size:,}"
    )


if __name__ == "__main__":
    main()
