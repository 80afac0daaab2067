"""Write the example repo's Parquet sources: seeded, any size.

    python generate_data.py                 # 20,000 driver rows: a demo in seconds
    python generate_data.py --rows 10000000 # the benchmark size: 100k drivers

The same --seed and --end give the same files. Some rows are late backfills (created days
after their event time) so that point-in-time correctness has something to prove.
"""

from __future__ import annotations

import argparse
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

DAYS = 30
ZONES = [f"zone_{i:02d}" for i in range(20)]


def _times(rng: np.random.Generator, n: int, end: datetime) -> tuple[np.ndarray, np.ndarray]:
    """Event times over the last DAYS days and created times a little (or a lot) later."""
    end_us = int(end.timestamp() * 1_000_000)
    event = end_us - rng.integers(0, DAYS * 86_400_000_000, n)
    delay = rng.exponential(300e6, n).astype(np.int64)  # about five minutes
    late = rng.random(n) < 0.02
    delay[late] += rng.integers(86_400_000_000, 5 * 86_400_000_000, late.sum())
    created = np.minimum(event + delay, end_us)
    return event, created


def _ts(values: np.ndarray) -> pa.Array:
    return pa.array(values, pa.timestamp("us", tz="UTC"))


def drivers(rng: np.random.Generator, rows: int, end: datetime, n_drivers: int) -> pa.Table:
    event, created = _times(rng, rows, end)
    ids = rng.integers(1001, 1001 + n_drivers, rows)
    return pa.table(
        {
            "driver_id": pa.array(ids, pa.int64()),
            "event_timestamp": _ts(event),
            "created": _ts(created),
            "conv_rate": rng.random(rows),
            "acc_rate": rng.beta(8, 2, rows),
            "avg_daily_trips": rng.poisson(18, rows),
            "rating": pa.array(np.round(rng.uniform(3.5, 5.0, rows), 2), pa.float32()),
            "trips_today": rng.poisson(6, rows),
        }
    )


def customers(rng: np.random.Generator, rows: int, end: datetime, n_customers: int) -> pa.Table:
    event, created = _times(rng, rows, end)
    return pa.table(
        {
            "customer_id": pa.array(rng.integers(1, 1 + n_customers, rows), pa.int64()),
            "event_timestamp": _ts(event),
            "created": _ts(created),
            "current_balance": np.round(rng.gamma(2.0, 20.0, rows), 2),
            "lifetime_trips": rng.poisson(40, rows),
            "avg_passenger_count": np.round(rng.uniform(1, 3, rows), 2),
            "is_premium": rng.random(rows) < 0.15,
            "home_zone": pa.array(np.array(ZONES)[rng.integers(0, len(ZONES), rows)]),
        }
    )


def routes(rng: np.random.Generator, rows: int, end: datetime) -> pa.Table:
    event, created = _times(rng, rows, end)
    zones = np.array(ZONES)
    return pa.table(
        {
            "pickup_zone": pa.array(zones[rng.integers(0, len(zones), rows)]),
            "dropoff_zone": pa.array(zones[rng.integers(0, len(zones), rows)]),
            "event_timestamp": _ts(event),
            "created": _ts(created),
            "avg_fare": np.round(rng.gamma(3.0, 6.0, rows), 2),
            "avg_duration_min": np.round(rng.gamma(4.0, 5.0, rows), 1),
            "trip_count": rng.poisson(30, rows),
        }
    )


def trips(
    rng: np.random.Generator, rows: int, end: datetime, n_drivers: int, n_customers: int
) -> pa.Table:
    """Trip requests with a label: the entity rows a training set starts from."""
    event, _ = _times(rng, rows, end)
    zones = np.array(ZONES)
    return pa.table(
        {
            "trip_id": pa.array(np.arange(rows), pa.int64()),
            "driver_id": pa.array(rng.integers(1001, 1001 + n_drivers, rows), pa.int64()),
            "customer_id": pa.array(rng.integers(1, 1 + n_customers, rows), pa.int64()),
            "pickup_zone": pa.array(zones[rng.integers(0, len(zones), rows)]),
            "dropoff_zone": pa.array(zones[rng.integers(0, len(zones), rows)]),
            "event_timestamp": _ts(event),
            "completed": rng.random(rows) < 0.8,
        }
    )


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
        "trips": trips(rng, max(100, rows // 10), end, n_drivers, n_customers),
    }
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
