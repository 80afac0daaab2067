"""Write the example repo's Parquet sources: seeded, any size.

    python generate_data.py                 # 20,000 driver rows: a demo in seconds
    python generate_data.py --rows 10000000 # the benchmark size: 100k drivers

The same --seed and --end give the same files. Some rows are late backfills (created days
after their event time) so that point-in-time correctness has something to prove.

The trips' label (`completed`) depends on the feature values that were known when each trip
was requested: this script runs featurehub's point-in-time rules itself (`known_at`) to find
them. A model trained on a point-in-time correct training set therefore learns the real
relation; features joined any other way (the latest row, or ignoring when a row was written)
are partly wrong, and the model shows it. Driver statistics persist per driver and drift
from day to day, so an older or newer row of the same driver is related but not the same.
"""

from __future__ import annotations

import argparse
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

DAYS = 30
DAY_US = 86_400_000_000
ZONES = [f"zone_{i:02d}" for i in range(20)]


class SourceView(NamedTuple):
    """What the label needs of one feature view of feature_repo/features.py: its source, keys,
    TTL (as declared there) and first feature (the tie-break), and the features it uses."""

    source: str
    keys: tuple[str, ...]
    ttl_us: int
    first_feature: str
    features: tuple[str, ...]


SOURCE_VIEWS = (
    SourceView(
        "driver_hourly_stats",
        ("driver_id",),
        2 * DAY_US,
        "conv_rate",
        ("acc_rate", "rating", "conv_rate"),
    ),
    SourceView(
        "customer_profile",
        ("customer_id",),
        30 * DAY_US,
        "current_balance",
        ("is_premium", "lifetime_trips"),
    ),
    SourceView(
        "route_stats",
        ("pickup_zone", "dropoff_zone"),
        7 * DAY_US,
        "avg_fare",
        ("avg_duration_min",),
    ),
)
# Weights of the standardized known features in the label's log-odds.
COMPLETION_WEIGHTS = {
    "acc_rate": 1.3,
    "rating": 0.5,
    "conv_rate": 0.3,
    "is_premium": 0.4,
    "lifetime_trips": 0.2,
    "avg_duration_min": -0.4,
}


def _times(rng: np.random.Generator, n: int, end: datetime) -> tuple[np.ndarray, np.ndarray]:
    """Event times over the last DAYS days and created times a little (or a lot) later."""
    end_us = int(end.timestamp() * 1_000_000)
    event = end_us - rng.integers(0, DAYS * DAY_US, n)
    delay = rng.exponential(300e6, n).astype(np.int64)  # about five minutes
    late = rng.random(n) < 0.02
    delay[late] += rng.integers(DAY_US, 5 * DAY_US, late.sum())
    created = np.minimum(event + delay, end_us)
    return event, created


def _ts(values: np.ndarray) -> pa.Array:
    return pa.array(values, pa.timestamp("us", tz="UTC"))


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def _standard(values: np.ndarray) -> np.ndarray:
    return (values - values.mean()) / (values.std() or 1.0)


def drivers(rng: np.random.Generator, rows: int, end: datetime, n_drivers: int) -> pa.Table:
    """Hourly statistics: each driver has a lasting level and a level of the day (a new one
    every day), and each report adds its own noise."""
    event, created = _times(rng, rows, end)
    index = rng.integers(0, n_drivers, rows)
    day = (event - event.min()) // DAY_US
    skill = rng.standard_normal(n_drivers)
    daily = rng.standard_normal((n_drivers, int(day.max()) + 1))
    level = 0.7 * skill[index] + 0.7 * daily[index, day]
    eagerness = rng.standard_normal(n_drivers)[index]
    return pa.table(
        {
            "driver_id": pa.array(1001 + index, pa.int64()),
            "event_timestamp": _ts(event),
            "created": _ts(created),
            "conv_rate": _sigmoid(eagerness + 0.5 * rng.standard_normal(rows)),
            "acc_rate": _sigmoid(1.4 + 0.6 * level + 0.3 * rng.standard_normal(rows)),
            "avg_daily_trips": rng.poisson(np.exp(2.9 + 0.2 * eagerness)),
            "rating": pa.array(
                np.round(np.clip(4.4 + 0.2 * level + 0.15 * rng.standard_normal(rows), 1, 5), 2),
                pa.float32(),
            ),
            "trips_today": rng.poisson(6, rows),
        }
    )


def customers(rng: np.random.Generator, rows: int, end: datetime, n_customers: int) -> pa.Table:
    """Daily profiles: premium riders stay premium; lifetime trips grow with time."""
    event, created = _times(rng, rows, end)
    index = rng.integers(0, n_customers, rows)
    premium = rng.random(n_customers) < 0.15
    base_trips = rng.poisson(40, n_customers)
    days_in = (event - event.min()) // DAY_US
    return pa.table(
        {
            "customer_id": pa.array(1 + index, pa.int64()),
            "event_timestamp": _ts(event),
            "created": _ts(created),
            "current_balance": np.round(rng.gamma(2.0, 20.0, rows), 2),
            "lifetime_trips": base_trips[index] + rng.poisson(days_in / 3),
            "avg_passenger_count": np.round(rng.uniform(1, 3, rows), 2),
            "is_premium": premium[index],
            "home_zone": pa.array(np.array(ZONES)[rng.integers(0, len(ZONES), rows)]),
        }
    )


def routes(rng: np.random.Generator, rows: int, end: datetime) -> pa.Table:
    """Fares and durations per pair of zones: each route has its typical duration."""
    event, created = _times(rng, rows, end)
    zones = np.array(ZONES)
    pickup, dropoff = rng.integers(0, len(zones), rows), rng.integers(0, len(zones), rows)
    typical = rng.gamma(4.0, 5.0, (len(zones), len(zones)))
    duration = typical[pickup, dropoff] * rng.uniform(0.8, 1.2, rows)
    return pa.table(
        {
            "pickup_zone": pa.array(zones[pickup]),
            "dropoff_zone": pa.array(zones[dropoff]),
            "event_timestamp": _ts(event),
            "created": _ts(created),
            "avg_fare": np.round(3.0 + 1.2 * duration + rng.gamma(2.0, 2.0, rows), 2),
            "avg_duration_min": np.round(duration, 1),
            "trip_count": rng.poisson(30, rows),
        }
    )


def _micros(column: pa.ChunkedArray) -> np.ndarray:
    return column.cast(pa.int64()).to_numpy()


def _join_order(composite: np.ndarray, created: np.ndarray, first: np.ndarray) -> np.ndarray:
    """Row order by (key and event, created, first feature). One stable argsort of the
    composite, then only the rare rows sharing a key and event time are sorted by the rest
    (a full three-key lexsort of 10M rows takes five times as long)."""
    order = np.argsort(composite, kind="stable")
    ordered = composite[order]
    same = ordered[1:] == ordered[:-1]
    tied = np.zeros(len(order), dtype=bool)
    tied[1:] |= same
    tied[:-1] |= same
    positions = np.flatnonzero(tied)
    rows = order[positions]
    order[positions] = rows[np.lexsort((first[rows], created[rows], composite[rows]))]
    return order


def known_at(
    keys: np.ndarray,
    event: np.ndarray,
    created: np.ndarray,
    first_feature: np.ndarray,
    ttl_us: int | None,
    at_keys: np.ndarray,
    at: np.ndarray,
) -> np.ndarray:
    """For each (at_keys[i], at[i]) the index of the row a point-in-time join returns, or -1.

    The rules of docs/point-in-time.md on integer keys and microsecond times: same key,
    event <= t, event > t - ttl, created <= t; the latest event wins, then the latest created,
    then the greatest first feature. Vectorized: a binary search finds the latest row with
    event <= t, then every query not yet answered steps back one row at a time (past rows
    created after t) until it finds one, leaves its key or leaves the TTL.
    """
    found = np.full(len(at), -1, dtype=np.int64)
    if len(keys) == 0 or len(at) == 0:
        return found
    low_key, low_time = min(keys.min(), at_keys.min()), min(event.min(), at.min())
    span = max(event.max(), at.max()) - low_time + 1
    if (max(keys.max(), at_keys.max()) - low_key + 1) * span >= 2**63:
        raise ValueError("keys times the time span overflow int64: use smaller key codes")
    composite = (keys - low_key) * span + (event - low_time)  # (key, event) as one number
    order = _join_order(composite, created, first_feature)
    k, e, c = keys[order], event[order], created[order]
    wanted = (at_keys - low_key) * span + (at - low_time)
    position = np.searchsorted(composite[order], wanted, "right") - 1
    oldest = at - ttl_us if ttl_us is not None else np.full_like(at, np.iinfo(np.int64).min)
    todo = np.arange(len(at))
    while todo.size:
        p = position[todo]
        q = np.maximum(p, 0)
        alive = (p >= 0) & (k[q] == at_keys[todo]) & (e[q] > oldest[todo])
        hit = alive & (c[q] <= at[todo])
        found[todo[hit]] = order[q[hit]]
        todo = todo[alive & ~hit]
        position[todo] -= 1
    return found


def _key_codes(table: pa.Table, keys: tuple[str, ...]) -> np.ndarray:
    """Integer codes of a view's join keys: an id itself, or a pair of zones as one number."""
    if keys == ("pickup_zone", "dropoff_zone"):
        zones = pa.array(ZONES)
        pickup = pc.index_in(table.column("pickup_zone"), value_set=zones).to_numpy()
        dropoff = pc.index_in(table.column("dropoff_zone"), value_set=zones).to_numpy()
        return pickup.astype(np.int64) * len(ZONES) + dropoff
    (key,) = keys
    return table.column(key).to_numpy()


def known_features(table: pa.Table, view: SourceView, requests: pa.Table) -> dict[str, np.ndarray]:
    """The values of `view.features` a point-in-time join gives each request (as floats, NaN
    where no row qualifies)."""
    found = known_at(
        _key_codes(table, view.keys),
        _micros(table.column("event_timestamp")),
        _micros(table.column("created")),
        table.column(view.first_feature).to_numpy().astype(np.float64),
        view.ttl_us,
        _key_codes(requests, view.keys),
        _micros(requests.column("event_timestamp")),
    )
    known = {}
    for name in view.features:
        values = table.column(name).to_numpy().astype(np.float64)
        known[name] = np.where(found >= 0, values[np.maximum(found, 0)], np.nan)
    return known


def completion_logit(known: dict[str, np.ndarray]) -> np.ndarray:
    """How likely a trip is completed, from the feature values known at its request time
    (standardized; an unknown value counts as average): reliable, well-rated drivers,
    premium riders and short routes complete more."""
    logit = np.full(len(next(iter(known.values()))), 1.6)
    for name, weight in COMPLETION_WEIGHTS.items():
        values = known[name]
        present = ~np.isnan(values)
        if present.any():
            values = np.where(present, values, np.nanmean(values))
            logit += weight * _standard(values)
    return logit


def trips(
    rng: np.random.Generator,
    rows: int,
    end: datetime,
    n_drivers: int,
    n_customers: int,
    sources: dict[str, pa.Table],
) -> pa.Table:
    """Trip requests, the entity rows a training set starts from, with their label drawn
    from the feature values known at each request (seeded)."""
    event, _ = _times(rng, rows, end)
    zones = np.array(ZONES)
    requests = pa.table(
        {
            "trip_id": pa.array(np.arange(rows), pa.int64()),
            "driver_id": pa.array(1001 + rng.integers(0, n_drivers, rows), pa.int64()),
            "customer_id": pa.array(1 + rng.integers(0, n_customers, rows), pa.int64()),
            "pickup_zone": pa.array(zones[rng.integers(0, len(zones), rows)]),
            "dropoff_zone": pa.array(zones[rng.integers(0, len(zones), rows)]),
            "event_timestamp": _ts(event),
        }
    )
    known: dict[str, np.ndarray] = {}
    for view in SOURCE_VIEWS:
        known |= known_features(sources[view.source], view, requests)
    completed = rng.random(rows) < _sigmoid(completion_logit(known))
    return requests.append_column("completed", pa.array(completed))


def generate(out: Path, rows: int, seed: int, end: datetime) -> dict[str, int]:
    """Write every source under `out`; return rows written per file."""
    rng = np.random.default_rng(seed)
    out.mkdir(parents=True, exist_ok=True)
    n_drivers = max(10, rows // 100)
    n_customers = 2 * n_drivers
    tables = {
        "driver_hourly_stats": drivers(rng, rows, end, n_drivers),
        "customer_profile": customers(rng, max(100, rows // 5), end, n_customers),
        "route_stats": routes(rng, max(100, rows // 20), end),
    }
    tables["trips"] = trips(rng, max(100, rows // 4), end, n_drivers, n_customers, tables)
    for name, table in tables.items():
        pq.write_table(table, out / f"{name}.parquet", row_group_size=1_000_000)
    return {name: table.num_rows for name, table in tables.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=20_000, help="driver stats rows")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument(
        "--end",
        type=datetime.fromisoformat,
        default=None,
        help="last event time, ISO 8601 (default: now, to the hour, UTC)",
    )
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "data")
    args = parser.parse_args()
    end = args.end or datetime.now(timezone.utc).replace(minute=0, second=0, microsecond=0)
    if end.tzinfo is None:
        end = end.replace(tzinfo=timezone.utc)
    written = generate(args.out, args.rows, args.seed, end + timedelta(0))
    for name, count in written.items():
        print(f"wrote {count:>10,} rows to {args.out / name}.parquet")


if __name__ == "__main__":
    main()
