"""Benchmark of materialization: source Parquet -> offline store + Redis online store.

Data: the point-in-time benchmark's driver view (bench_pit.py generates it: 10M rows over 100k
entities, 10 features). Each run is a fresh child process running `featurehub materialize`
over the whole interval into an empty offline root and an empty Redis project, so a run
includes everything a scheduled run does (registry, run record, offline commit, online write)
except interpreter start-up. Engines: local (DuckDB), spark on local[2], spark on a standalone
cluster of one master and one worker (2 cores) started from the pyspark package.

    python bench/bench_materialize.py                         # 10M rows, every engine
    python bench/bench_materialize.py --rows 1000000 --engines local
    python bench/bench_materialize.py --engines local --feast   # and Feast 0.67 (feast_peer.py)

With --feast, bench/feast_peer.py (in the Feast venv bench/.venv-feast) runs Feast's
`materialize(start, end)` of the same driver view from the same Parquet files (DuckDB offline
store, local compute engine) into the same, flushed, redis-server, --repeat times; Feast writes
only the online store, so its row is compared with featurehub's offline + online run.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "bench")]

from bench_pit import START_US, Scale, feature_names, generate  # noqa: E402
from feast_peer import check_venv, run_peer  # noqa: E402
from recording import Transcript, add_arguments, finish  # noqa: E402
from redis import Redis  # noqa: E402

from tests.redis_server import RedisServer  # noqa: E402
from tests.spark_cluster import standalone_cluster  # noqa: E402

SECTION = "## Materialization (`bench/bench_materialize.py`)"
DEFINITIONS = """
from featurehub import Entity, FeatureView, Field, ParquetSource
from featurehub.types import Float64, Int64

driver = Entity(name="driver", join_keys=["driver_id"])
driver_stats = FeatureView(
    name="driver_stats",
    entities=[driver],
    source=ParquetSource(
        path="{path}", created_timestamp_field="created_timestamp", allow_outside_repo=True
    ),
    schema=[{fields}],
)
"""


def make_repo(directory: Path, source: Path, redis_url: str, master: str) -> Path:
    names = feature_names("driver_stats")
    fields = ", ".join(
        f'Field("{n}", {"Float64" if i % 2 == 0 else "Int64"})' for i, n in enumerate(names)
    )
    directory.mkdir(parents=True)
    (directory / "defs.py").write_text(DEFINITIONS.format(path=source, fields=fields))
    (directory / "featurehub.yaml").write_text(
        f"project: bench\nonline_store: {redis_url}\nspark:\n  master: {master}\n"
        "  conf:\n    spark.driver.memory: 4g\n    spark.executor.memory: 2g\n"
    )
    return directory


def run_once(repo: Path, engine: str, redis: RedisServer, extra_env: dict[str, str]) -> dict:
    """One materialization in a fresh process, on empty stores; returns its figures."""
    shutil.rmtree(repo / "data", ignore_errors=True)
    Redis.from_url(redis.url).flushall()
    env = {**os.environ, **extra_env}
    featurehub = [sys.executable, "-m", "featurehub", "-r", str(repo)]
    subprocess.run([*featurehub, "apply"], check=True, capture_output=True, env=env)
    begin = datetime.fromtimestamp(START_US // 1_000_000, timezone.utc)
    end = begin + timedelta(days=31)
    began = time.perf_counter()
    done = subprocess.run(
        [
            *featurehub,
            "materialize",
            begin.isoformat(),
            end.isoformat(),
            "--engine",
            engine,
            "--json",
        ],
        capture_output=True,
        text=True,
        env=env,
    )
    wall = time.perf_counter() - began
    if done.returncode != 0:
        raise RuntimeError(done.stderr[-3000:])
    [result] = json.loads(done.stdout)["results"]
    runs = subprocess.run(
        [*featurehub, "runs", "--json", "-n", "1"],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    )
    [run] = json.loads(runs.stdout)
    return {
        "wall": wall,
        "run": run["duration_seconds"],
        "offline": result["rows_written"],
        "online": result["online_rows_written"],
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--entities", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--engines", default="local,spark-local,spark-cluster")
    parser.add_argument(
        "--feast", action="store_true", help="also run Feast (bench/feast_peer.py, Feast venv)"
    )
    add_arguments(parser)
    args = parser.parse_args(argv)
    if args.feast:
        check_venv()
    scale = Scale(rows=args.rows, entities=args.entities, entity_rows=args.rows // 10, seed=42)
    if not (scale.directory / ".complete").exists():
        generate(scale)
    source = scale.directory / "driver_stats"
    table = [
        "| engine | rows | run s (median) | process s (median) | online rows | rows/s |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    medians: dict[str, float] = {}
    feast_line = ""
    with RedisServer() as redis, tempfile.TemporaryDirectory() as tmp:
        for engine in args.engines.split(","):
            runs = []
            if engine == "spark-cluster":
                with standalone_cluster(cores=2, memory="3g") as master:
                    repo = make_repo(Path(tmp) / engine, source, redis.url, master)
                    runs = [run_once(repo, "spark", redis, {}) for _ in range(args.repeat)]
            else:
                master = "local[2]"
                repo = make_repo(Path(tmp) / engine, source, redis.url, master)
                name = "spark" if engine.startswith("spark") else "local"
                runs = [run_once(repo, name, redis, {}) for _ in range(args.repeat)]
            run_s = statistics.median(r["run"] for r in runs)
            medians[engine] = run_s
            wall_s = statistics.median(r["wall"] for r in runs)
            print(f"{engine}: runs {[round(r['run'], 2) for r in runs]} s", flush=True)
            table.append(
                f"| {engine} | {runs[0]['offline']:,} | {run_s:.2f} | {wall_s:.2f} | "
                f"{runs[0]['online']:,} | {runs[0]['offline'] / run_s:,.0f} |"
            )
        if args.feast:
            peers = []
            for _ in range(args.repeat):
                began = time.perf_counter()
                peer = run_peer(
                    "materialize", "--data", str(scale.directory), "--redis", redis.url, "--flush"
                )  # fmt: skip
                peers.append({**peer, "wall": time.perf_counter() - began})
            feast_s = statistics.median(p["seconds"] for p in peers)
            wall_s = statistics.median(p["wall"] for p in peers)
            print(f"feast: runs {[round(p['seconds'], 2) for p in peers]} s", flush=True)
            table.append(
                f"| feast {peers[0]['feast']} (duckdb, online only) | {args.rows:,} | "
                f"{feast_s:.2f} | {wall_s:.2f} | {peers[0]['online_keys']:,} | "
                f"{args.rows / feast_s:,.0f} |"
            )
            feast_line = "\nfeaturehub / Feast time (run s medians): " + ", ".join(
                f"{engine} {run_s / feast_s:.2f}" for engine, run_s in medians.items()
            )
    out = Transcript()
    out("\n".join(table) + feast_line)
    finish(args.record, "bench_materialize", SECTION, out.lines, argv)


if __name__ == "__main__":
    main()
