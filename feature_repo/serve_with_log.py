"""Serve every trip's entities through the SDK, logging what was served, as an application
that embeds featurehub instead of calling the feature server would.

    python serve_with_log.py

The serving log (featurehub.yaml `serving_log:`) is what `featurehub skew` checks.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from featurehub import FeatureStore

REPO = Path(__file__).parent
SERVICE = "trip_completion_v1"


def main() -> None:
    trips = pd.read_parquet(REPO / "data" / "trips.parquet")
    keys = trips[["driver_id", "customer_id", "pickup_zone", "dropoff_zone"]]
    with FeatureStore(REPO) as store:  # closing it commits the log
        for start in range(0, len(keys), 100):  # requests of 100 rows, as a service sends
            store.get_online_features(SERVICE, keys.iloc[start : start + 100], log=True)
        logged = store.config.serving_log_root
        print(f"served {len(keys):,} entity rows of {SERVICE}; logged in {logged}")


if __name__ == "__main__":
    main()
