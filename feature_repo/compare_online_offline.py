"""Look every trip's entities up online in every view and compare with the offline store, as of now.

    python compare_online_offline.py [--count 5]

Prints `--count` of them side by side, and checks all of them: the two must agree value for
value, for every entity (that is featurehub's promise); exit 1 when any value differs.
"""

from __future__ import annotations

import argparse
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd

from featurehub import FeatureStore

REPO = Path(__file__).parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=5)
    args = parser.parse_args()
    store = FeatureStore(REPO)
    trips = pd.read_parquet(REPO / "data" / "trips.parquet")
    keys = trips[["driver_id", "customer_id", "pickup_zone", "dropoff_zone"]].drop_duplicates()
    keys = keys.reset_index(drop=True)
    every = [f"{view.name}:*" for view in store.list_feature_views() if view.online]
    online = store.get_online_features(every, keys, full_feature_names=True).to_pandas()
    now = pd.Timestamp(datetime.now(timezone.utc))
    entities = keys.assign(event_timestamp=now)
    offline = store.get_historical_features(entities, every, full_feature_names=True).to_pandas()
    offline = offline.drop(columns=["event_timestamp"])
    with pd.option_context("display.width", 200, "display.max_columns", 20):
        print(f"online (get_online_features, now), the last {args.count} entity rows:")
        print(online.tail(args.count).T.to_string(header=False))
        print("\noffline (get_historical_features, event_timestamp = now), the same rows:")
        print(offline.tail(args.count).T.to_string(header=False))
    features = [c for c in online.columns if c not in keys.columns]
    a, b = online[features], offline[features]
    same = ((a == b).fillna(False) | (a.isna() & b.isna())).to_numpy()
    present = int(a.notna().to_numpy().sum())
    print(
        f"\nonline == offline for {int(same.sum()):,} of {same.size:,} values "
        f"({len(keys):,} entity rows, {present:,} values present): {bool(same.all())}"
    )
    if not same.all():
        raise SystemExit(1)


if __name__ == "__main__":
    main()
