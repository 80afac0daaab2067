"""Feast peer figures for the featurehub benchmarks; run ONLY with bench/.venv-feast/bin/python.

Never imports featurehub. Each subcommand builds a throwaway Feast repo over the same data the
featurehub benchmark uses and prints one JSON object to stdout (Feast's logging goes to stderr):

    pit --data DIR --views 1|3 --repeat N [--driver-ttl-seconds S|none]
                                               get_historical_features on the DuckDB offline
                                               store, each repetition in a fresh child process
                                               that reports its own peak RSS (VmHWM)
    online --redis URL --entities N --iterations K
                                               write_to_online_store + get_online_features
                                               latency (1 and 100 entities) on Redis
    materialize --data DIR --redis URL         materialize() of the driver view into Redis
    serve --repo DIR --data DIR --redis URL --port N
                                               materialize the example repo's driver_stats and
                                               customer_profile into Redis, then become
                                               `feast serve` (1 worker, recycling off)

Create the venv with:
    python -m venv bench/.venv-feast
    bench/.venv-feast/bin/pip install 'feast[redis,duckdb]==0.67.0'
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import json
import logging
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from pathlib import Path
from urllib.parse import urlparse

VENV_PYTHON = Path(__file__).resolve().parent / ".venv-feast" / "bin" / "python"
CREATE_VENV = (
    "python -m venv bench/.venv-feast && "
    "bench/.venv-feast/bin/pip install 'feast[redis,duckdb]==0.67.0'"
)


def run_peer(*args: str) -> dict:
    """Run this script in the Feast venv (from a featurehub benchmark) and return its JSON.

    Importable without Feast: this is the only function the featurehub benchmarks use.
    """
    check_venv()
    done = subprocess.run(
        [str(VENV_PYTHON), __file__, *args], stdout=subprocess.PIPE, text=True, check=False
    )
    if done.returncode != 0:
        raise RuntimeError(f"feast_peer.py {' '.join(args)} failed ({done.returncode})")
    return json.loads(done.stdout.strip().splitlines()[-1])


def check_venv() -> None:
    """Fail early, before the featurehub run, when the Feast venv is missing."""
    if not VENV_PYTHON.exists():
        raise SystemExit(f"--feast needs the Feast venv {VENV_PYTHON.parent.parent}: {CREATE_VENV}")


# Mirrors bench_pit.py (which imports featurehub, so it cannot be imported here).
START_US = 1_700_000_000 * 1_000_000
N_FEATURES = 10
# featurehub's "no TTL": Feast has none, so a TTL longer than the data. Feast's join then
# pairs each entity row with every older row of its key (~50M pairs at 10M rows).
COVER_DATA = timedelta(days=3650)
VIEWS = (  # name, join keys, TTL as in bench_pit.VIEWS (the driver's is --driver-ttl-seconds)
    ("driver_stats", ("driver_id",), COVER_DATA),
    ("customer_stats", ("customer_id",), timedelta(days=7)),
    ("trip_stats", ("driver_id", "customer_id"), timedelta(days=2)),
)


def feature_names(view: str) -> list[str]:
    return [f"{view[:4]}_f{i}" for i in range(N_FEATURES)]


def quiet() -> None:
    """Feast logs and warns a lot; keep stdout for the one JSON object."""
    warnings.filterwarnings("ignore")
    logging.disable(logging.WARNING)


def redis_connection_string(url: str) -> str:
    """redis://host:port/db -> Feast's `host:port[,db=N]`."""
    parsed = urlparse(url)
    text = f"{parsed.hostname or 'localhost'}:{parsed.port or 6379}"
    db = parsed.path.strip("/")
    if db and db != "0":
        text += f",db={db}"
    if parsed.password:
        text += f",password={parsed.password}"
    return text


def write_repo(directory: Path, online: dict[str, str]) -> None:
    lines = [
        "project: feast_bench",
        f"registry: {directory / 'registry.db'}",
        "provider: local",
        "offline_store:",
        "  type: duckdb",
        "online_store:",
        *(f"  {k}: {v}" for k, v in online.items()),
        "entity_key_serialization_version: 3",
    ]
    (directory / "feature_store.yaml").write_text("\n".join(lines) + "\n")


def make_views(
    data: Path | None,
    count: int,
    features: Callable[[str], list[str]],
    driver_ttl: timedelta = COVER_DATA,
) -> list:
    """Entities and FeatureViews over `data/<view>/*.parquet` (same files as featurehub); the
    first view's TTL is `driver_ttl`."""
    from feast import Entity, FeatureView, Field, FileSource, ValueType
    from feast.data_format import ParquetFormat
    from feast.types import Float64, Int64

    entities = {
        "driver_id": Entity(name="driver", join_keys=["driver_id"], value_type=ValueType.INT64),
        "customer_id": Entity(
            name="customer", join_keys=["customer_id"], value_type=ValueType.INT64
        ),
    }
    objects: list = list(entities.values())
    for index, (name, keys, ttl) in enumerate(VIEWS[:count]):
        ttl = driver_ttl if index == 0 else ttl
        path = str(data / name / "*.parquet") if data else f"{name}.parquet"
        source = FileSource(
            name=f"{name}_source",
            path=path,
            file_format=ParquetFormat(),
            timestamp_field="event_timestamp",
            created_timestamp_column="created_timestamp",
        )
        schema = [
            Field(name=n, dtype=Float64 if i % 2 == 0 else Int64)
            for i, n in enumerate(features(name))
        ]
        objects.append(
            FeatureView(
                name=name,
                entities=[entities[k] for k in keys],
                ttl=ttl,
                schema=schema,
                source=source,
                online=True,
            )
        )
    return objects


def open_store(directory: Path):
    from feast import FeatureStore

    quiet()  # again: importing Feast resets warning filters
    return FeatureStore(repo_path=str(directory))


# --- pit ---------------------------------------------------------------------------------


def peak_rss_mib() -> float:
    """This process's own peak RSS (VmHWM, which starts afresh at exec; ru_maxrss starts at
    the parent's peak on Linux). The same measure as bench_pit.peak_rss_mib."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024  # kB
    raise RuntimeError("no VmHWM in /proc/self/status: the benchmark measures memory on Linux")


def pit_child(repo: Path, data: Path, views: int) -> None:
    """One measured get_historical_features(...).to_df() in this fresh process."""
    import pandas as pd

    quiet()
    store = open_store(repo)
    entity_df = pd.read_parquet(data / "entity.parquet")
    refs = [f"{name}:{f}" for name, _, _ in VIEWS[:views] for f in feature_names(name)]
    start, start_cpu = time.perf_counter(), time.process_time()
    df = store.get_historical_features(entity_df=entity_df, features=refs).to_df()
    seconds, cpu = time.perf_counter() - start, time.process_time() - start_cpu
    found = {name: int(df[feature_names(name)[0]].notna().sum()) for name, _, _ in VIEWS[:views]}
    report = {"seconds": seconds, "cpu": cpu, "rows": len(df), "non_null": found}
    print(json.dumps({**report, "peak_mib": peak_rss_mib()}))


def pit(args: argparse.Namespace) -> dict:
    import feast

    quiet()
    data = args.data.resolve()
    driver_ttl = COVER_DATA if args.driver_ttl is None else timedelta(seconds=args.driver_ttl)
    with tempfile.TemporaryDirectory(prefix="feast-pit-") as tmp:
        repo = Path(tmp)
        write_repo(repo, {"type": "sqlite", "path": str(repo / "online.db")})
        open_store(repo).apply(make_views(data, args.views, feature_names, driver_ttl))
        runs = []
        for _ in range(args.repeat):
            cmd = [sys.executable, __file__, "pit-child", str(repo), str(data), str(args.views)]
            done = subprocess.run(cmd, stdout=subprocess.PIPE, text=True, check=False)
            if done.returncode != 0:
                raise RuntimeError(f"feast pit child failed with exit code {done.returncode}")
            runs.append(json.loads(done.stdout.strip().splitlines()[-1]))
    return {
        "views": args.views,
        "driver_ttl_days": driver_ttl / timedelta(days=1),
        "median_seconds": statistics.median(r["seconds"] for r in runs),
        "median_cpu": statistics.median(r["cpu"] for r in runs),
        "peak_mib": max(r["peak_mib"] for r in runs),
        "runs": [round(r["seconds"], 3) for r in runs],
        "rows": runs[0]["rows"],
        "non_null": runs[0]["non_null"],
        "feast": feast.__version__,
    }


# --- online ------------------------------------------------------------------------------


def latencies_us(call: Callable[[], object], iterations: int) -> tuple[float, float]:
    """p50 and p99 in microseconds after a warm-up, GC off while timing (bench_online uses it
    too, so both stores are timed the same way)."""
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


def online_frame(entities: int, shift_us: int, seed: int):
    """bench_online.make_table's layout: one row per entity, f0..f9 (even Float64, odd Int64)."""
    import numpy as np
    import pandas as pd

    event = START_US + shift_us + np.random.default_rng(0).integers(0, 86_400_000_000, entities)
    rng = np.random.default_rng(seed)
    columns = {
        "driver_id": np.arange(entities, dtype=np.int64),
        "event_timestamp": pd.to_datetime(event, unit="us", utc=True),
        "created_timestamp": pd.to_datetime(event + 1_000_000, unit="us", utc=True),
    }
    for i in range(N_FEATURES):
        columns[f"f{i}"] = (
            rng.random(entities) if i % 2 == 0 else rng.integers(0, 1_000_000, entities)
        )
    return pd.DataFrame(columns)


def online(args: argparse.Namespace) -> dict:
    import feast

    quiet()
    with tempfile.TemporaryDirectory(prefix="feast-online-") as tmp:
        repo = Path(tmp)
        conn = redis_connection_string(args.redis)
        write_repo(repo, {"type": "redis", "connection_string": conn})
        store = open_store(repo)
        store.apply(make_views(None, 1, lambda _: [f"f{i}" for i in range(N_FEATURES)]))
        first, second = (
            online_frame(args.entities, 0, 1),
            online_frame(args.entities, 3_600_000_000, 2),
        )
        started = time.perf_counter()
        store.write_to_online_store("driver_stats", df=first)
        write = args.entities / (time.perf_counter() - started)
        started = time.perf_counter()
        store.write_to_online_store("driver_stats", df=second)
        rewrite = args.entities / (time.perf_counter() - started)

        refs = [f"driver_stats:f{i}" for i in range(N_FEATURES)]
        rng = random.Random(3)
        rows_1 = [[{"driver_id": rng.randrange(args.entities)}] for _ in range(args.iterations)]
        rows_100 = [
            [{"driver_id": rng.randrange(args.entities)} for _ in range(100)] for _ in range(64)
        ]
        check = store.get_online_features(features=refs, entity_rows=rows_100[0]).to_dict()
        present = sum(v is not None for v in check["f0"])
        assert present == 100, f"only {present} of 100 entities found in Feast's Redis store"
        results = {}
        for label, rows in (("1", rows_1), ("100", rows_100)):
            for suffix, convert in (("", False), ("_to_dict", True)):
                feed = iter(rows * (2 * args.iterations // len(rows) + 8))

                def call(feed=feed, convert=convert):
                    response = store.get_online_features(features=refs, entity_rows=next(feed))
                    return response.to_dict() if convert else response

                p50, p99 = latencies_us(call, args.iterations)
                results[f"get_{label}{suffix}_us"] = [p50, p99]
    return {
        "entities": args.entities,
        "iterations": args.iterations,
        "write_rows_per_s": write,
        "rewrite_rows_per_s": rewrite,
        **results,
        "feast": feast.__version__,
    }


# --- materialize -------------------------------------------------------------------------


def materialize(args: argparse.Namespace) -> dict:
    import feast
    import redis

    quiet()
    data = args.data.resolve()
    with tempfile.TemporaryDirectory(prefix="feast-mat-") as tmp:
        repo = Path(tmp)
        write_repo(
            repo, {"type": "redis", "connection_string": redis_connection_string(args.redis)}
        )
        store = open_store(repo)
        store.apply(make_views(data, 1, feature_names))
        if args.flush:
            redis.Redis.from_url(args.redis).flushdb()
        client = redis.Redis.from_url(args.redis)
        keys_before = client.dbsize()
        begin = datetime.fromtimestamp(START_US // 1_000_000, timezone.utc)
        end = begin + timedelta(days=31)
        started, started_cpu = time.perf_counter(), time.process_time()
        with contextlib.redirect_stdout(sys.stderr):  # Feast prints progress to stdout
            store.materialize(begin, end, feature_views=["driver_stats"])
        seconds, cpu = time.perf_counter() - started, time.process_time() - started_cpu
        keys = client.dbsize() - keys_before
        client.close()
    return {"seconds": seconds, "cpu": cpu, "online_keys": keys, "feast": feast.__version__}


# --- serve -------------------------------------------------------------------------------

# The example repo's views as featurehub's feature_repo/features.py defines them: names,
# feature types and TTLs, over the same Parquet files (bench_server.py makes them).
EXAMPLE_VIEWS = (
    (
        "driver_stats",
        "driver_hourly_stats.parquet",
        "driver_id",
        timedelta(days=2),
        (
            ("conv_rate", "Float64"),
            ("acc_rate", "Float64"),
            ("avg_daily_trips", "Int64"),
            ("rating", "Float32"),
            ("trips_today", "Int64"),
        ),
    ),
    (
        "customer_profile",
        "customer_profile.parquet",
        "customer_id",
        timedelta(days=30),
        (
            ("current_balance", "Float64"),
            ("lifetime_trips", "Int64"),
            ("avg_passenger_count", "Float64"),
            ("is_premium", "Bool"),
            ("home_zone", "String"),
        ),
    ),
)


def example_views(data: Path) -> list:
    """Feast entities and views equivalent to featurehub's example driver_stats and
    customer_profile views, reading the same Parquet files."""
    import feast.types
    from feast import Entity, FeatureView, Field, FileSource, ValueType
    from feast.data_format import ParquetFormat

    objects: list = []
    for name, file, key, ttl, schema in EXAMPLE_VIEWS:
        entity = Entity(name=key.removesuffix("_id"), join_keys=[key], value_type=ValueType.INT64)
        source = FileSource(
            name=f"{name}_source",
            path=str(data / file),
            file_format=ParquetFormat(),
            timestamp_field="event_timestamp",
            created_timestamp_column="created",
        )
        fields = [Field(name=f, dtype=getattr(feast.types, t)) for f, t in schema]
        view = FeatureView(
            name=name, entities=[entity], ttl=ttl, schema=fields, source=source, online=True
        )
        objects += [entity, view]
    return objects


def serve(args: argparse.Namespace) -> None:
    """Materialize the example views into `args.redis`, then exec `feast serve` in the repo:
    one worker, gunicorn's worker recycling off (--max-requests 0; its default restarts the
    worker every ~1,000 requests), no access log. The caller's process id stays the server's
    (gunicorn's master; its worker is a child)."""
    quiet()
    repo = args.repo.resolve()
    repo.mkdir(parents=True, exist_ok=True)
    write_repo(repo, {"type": "redis", "connection_string": redis_connection_string(args.redis)})
    store = open_store(repo)
    store.apply(example_views(args.data.resolve()))
    start, end = datetime.fromisoformat(args.start), datetime.fromisoformat(args.end)
    with contextlib.redirect_stdout(sys.stderr):  # Feast prints progress to stdout
        store.materialize(start, end)
    sys.stdout.flush()
    sys.stderr.flush()
    feast = Path(sys.executable).parent / "feast"
    os.chdir(repo)
    command = [
        str(feast), "serve", "--host", "127.0.0.1", "--port", str(args.port),
        "--workers", "1", "--max-requests", "0", "--max-requests-jitter", "0",
        "--no-access-log",
    ]  # fmt: skip
    os.execv(command[0], command)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("pit", help="get_historical_features on the DuckDB offline store")
    p.add_argument("--data", type=Path, required=True, help="bench_pit data directory")
    p.add_argument("--views", type=int, choices=(1, 3), default=1)
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument(
        "--driver-ttl-seconds",
        dest="driver_ttl",
        type=lambda text: None if text == "none" else int(text),
        default=None,
        help="the driver view's TTL; none (default): 3,650 days, longer than the data",
    )
    c = sub.add_parser("pit-child")  # internal: one measured run
    c.add_argument("repo", type=Path)
    c.add_argument("data", type=Path)
    c.add_argument("views", type=int)
    o = sub.add_parser("online", help="Redis online store write rate and read latency")
    o.add_argument("--redis", required=True, help="redis://host:port[/db]")
    o.add_argument("--entities", type=int, default=100_000)
    o.add_argument("--iterations", type=int, default=3000)
    m = sub.add_parser("materialize", help="materialize the driver view into Redis")
    m.add_argument("--data", type=Path, required=True, help="bench_pit data directory")
    m.add_argument("--redis", required=True, help="redis://host:port[/db]")
    m.add_argument("--flush", action="store_true", help="FLUSHDB the Redis database first")
    s = sub.add_parser("serve", help="materialize the example views, then run feast serve")
    s.add_argument("--repo", type=Path, required=True, help="an empty folder for the Feast repo")
    s.add_argument("--data", type=Path, required=True, help="the example repo's data folder")
    s.add_argument("--redis", required=True, help="redis://host:port[/db], Feast's own db")
    s.add_argument("--port", type=int, required=True)
    s.add_argument("--start", required=True, help="materialize from (ISO 8601, UTC)")
    s.add_argument("--end", required=True, help="materialize up to (ISO 8601, UTC)")
    args = parser.parse_args(argv)
    if args.command == "serve":
        serve(args)  # does not return: the process becomes feast serve
    if args.command == "pit-child":
        pit_child(args.repo, args.data, args.views)
        return
    result = {"pit": pit, "online": online, "materialize": materialize}[args.command](args)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
