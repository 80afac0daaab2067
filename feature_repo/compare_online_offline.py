"""Look a few entities up online and show the same rows from the offline store, as of now.

    python compare_online_offline.py [--count 5]

The two tables must agree value for value: that is featurehub's promise.
"""

from __future__ import annotations

import argparse
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd

from featurehub import FeatureStore

REPO = Path(__file__).parent
SERVICE = "trip_completion_v1"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=5)
    args = parser.parse_args()
    store = FeatureStore(REPO)
    trips = pd.read_parquet(REPO / "data" / "trips.parquet").tail(args.count)
    keys = trips[["driver_id", "customer_id", "pickup_zone", "dropoff_zone"]]
    online = store.get_online_features(SERVICE, keys.to_dict("records")).to_pandas()
    now = pd.Timestamp(datetime.now(timezone.utc))
    offline = store.get_historical_features(keys.assign(event_timestamp=now), SERVICE).to_pandas()
    offline = offline.drop(columns=["event_timestamp"])
    with pd.option_context("display.width", 200, "display.max_columns", 20):
        print("online (get_online_features, now):")
        print(online.to_string(index=False))
        print("\noffline (get_historical_features, event_timestamp = now):")
        print(offline.to_string(index=False))
    features = [c for c in online.columns if c not in keys.columns]
    a, b = online[features].reset_index(drop=True), offline[features].reset_index(drop=True)
    equal = ((a == b) | (a.isna() & b.isna())).to_numpy().all()
    print(f"\nonline == offline for all {a.size} values: {bool(equal)}")
    if not equal:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
