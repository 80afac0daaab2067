"""Benchmark of the skew checks (issue 10): replay of a serving log and the distribution check,
against `get_historical_features` for the same entity rows, measured in one run.

Builds once, under bench/data/ (gitignored, reused across runs), a repo with two feature views
of 5 features each (float64, int64, bool and string; one feature service of all 10),
`--rows` seeded source rows per view over `--entities` keys and 30 days, materialized into
the offline store; then `--log-rows` entity rows in requests of 100 (drivers and customers at
random, one served_at per request), and
- a serving log of those rows, written through the real writer code (`answer_body`, the
  body the server sends, then `LogWriter`'s decode, conversion and commit), its served values
  those the offline join gives at served_at, so a healthy replay finds no mismatch;
- the training dataset of the same entity rows (`get_historical_features(...).save`).

Then, in one process, --repeat times each and in turn: `get_historical_features` of the
entity rows (`.to_arrow()`), the replay of the logged rows (`replay`), and the distribution
check of the served rows against the dataset (`check_distribution`). Prints wall and CPU
medians and the ratios replay / get_historical_features (target <= 1.5) and distribution /
replay (target <= 0.5).

    python bench/bench_skew.py                              # 10M source rows per view, 1M logged
    python bench/bench_skew.py --rows 1000000 --log-rows 100000    # quick run
    python bench/bench_skew.py --log-format 1               # also a format 1 (JSON) log

`--log-format 1` also writes the same rows as a format 1 log (JSON text columns, with the
writer that wrote them before issue 10: tests/monitoring/v1_log.py) and times its replay and
distribution check too: the cost of the old format, in the same run.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from recording import add_arguments, finish, markers  # noqa: E402

from featurehub import FeatureStore  # noqa: E402
from featurehub.config import RepoConfig, ServingLogConfig, load_config  # noqa: E402
from featurehub.monitoring.log_format import ServedAnswer, answer_body  # noqa: E402
from featurehub.monitoring.log_writer import CONVERT_ROWS, LogWriter, Tables  # noqa: E402
from featurehub.offline.base import EVENT_TIMESTAMP  # noqa: E402
from featurehub.offline.pit import ViewQuery, point_in_time_join  # noqa: E402
from featurehub.offline.source_reader import connect  # noqa: E402
from featurehub.online.lookup import NOT_FOUND, PRESENT, OnlineResponse  # noqa: E402
from featurehub.skew.distribution_check import check_distribution  # noqa: E402
from featurehub.skew.replay import replay  # noqa: E402

DATA_ROOT = Path(__file__).resolve().parent / "data"
END = datetime(2026, 11, 1, tzinfo=timezone.utc)
SPAN_US = 30 * 86_400 * 1_000_000
TS_TYPE = pa.timestamp("us", tz="UTC")
SERVICE = "bench_service"
DATASET = "bench_training"
REQUEST_ROWS = 100
BATCH_ROWS = 50_000  # the serving log's default batch_rows: rows per committed file
VIEWS = {
    "driver_stats": ("driver_id", ["conv_rate", "acc_rate", "trips", "rating", "active"]),
    "customer_stats": ("customer_id", ["balance", "lifetime_trips", "passengers", "zone", "premium"]),  # noqa: E501
}  # fmt: skip

DEFINITIONS = """
from datetime import timedelta
from featurehub import Entity, FeatureService, FeatureView, Field, ParquetSource
from featurehub.types import Bool, Float64, Int64, String

driver = Entity(name="driver", join_keys=["driver_id"])
customer = Entity(name="customer", join_keys=["customer_id"])
driver_stats = FeatureView(
    name="driver_stats",
    entities=[driver],
    source=ParquetSource(path="data/driver_stats.parquet", created_timestamp_field="created"),
    schema=[Field("conv_rate", Float64), Field("acc_rate", Float64), Field("trips", Int64),
            Field("rating", Float64), Field("active", Bool)],
    ttl=timedelta(days=2),
)
customer_stats = FeatureView(
    name="customer_stats",
    entities=[customer],
    source=ParquetSource(path="data/customer_stats.parquet", created_timestamp_field="created"),
    schema=[Field("balance", Float64), Field("lifetime_trips", Int64),
            Field("passengers", Float64), Field("zone", String), Field("premium", Bool)],
    ttl=timedelta(days=30),
)
bench_service = FeatureService(name="bench_service", features=[driver_stats, customer_stats])
"""


@dataclass(frozen=True)
class Scale:
    """Sizes of one generated data set; the directory name encodes them so sizes never mix."""

    rows: int
    entities: int
    log_rows: int
    seed: int
    root: Path = DATA_ROOT

    @property
    def directory(self) -> Path:
        name = f"skew_r{self.rows}_e{self.entities}_q{self.log_rows}_s{self.seed}"
        return self.root / name

    @property
    def repo(self) -> Path:
        return self.directory / "repo"


def config(scale: Scale, log_format: int = 2) -> RepoConfig:
    """The bench repo's config; its serving log under logs_v<format>."""
    loaded = load_config(scale.repo)
    root = scale.directory / f"logs_v{log_format}"
    return loaded.model_copy(update={"serving_log": ServingLogConfig(root=str(root))})


def _source(name: str, key: str, scale: Scale, rng: np.random.Generator) -> pa.Table:
    n = scale.rows
    event = np.sort(int(END.timestamp() * 1e6) - SPAN_US + rng.integers(0, SPAN_US, n))
    columns: dict[str, Any] = {
        key: rng.integers(0, scale.entities, n),
        "event_timestamp": pa.array(event).cast(TS_TYPE),
        "created": pa.array(event + rng.integers(0, 3_600_000_000, n)).cast(TS_TYPE),
    }
    floats, ints, flag, text = (
        ["conv_rate", "acc_rate", "rating"],
        ["trips"],
        "active",
        None,
    )
    if name == "customer_stats":
        floats, ints, flag, text = ["balance", "passengers"], ["lifetime_trips"], "premium", "zone"
    for feature in floats:
        columns[feature] = rng.standard_normal(n)
    for feature in ints:
        columns[feature] = rng.integers(0, 1_000, n)
    columns[flag] = rng.integers(0, 2, n).astype(bool)
    if text is not None:
        zones = np.array([f"zone_{i:02d}" for i in range(20)], dtype=object)
        columns[text] = pa.array(zones[rng.integers(0, 20, n)], pa.string())
    return pa.table(columns)


def build_repo(scale: Scale) -> None:
    """The repo, its sources, applied and materialized into the offline store, once."""
    done = scale.directory / ".repo_complete"
    if done.exists():
        return
    scale.repo.mkdir(parents=True, exist_ok=True)
    (scale.repo / "featurehub.yaml").write_text(
        "project: bench_skew\nregistry: sqlite:///data/registry.db\n"
        "offline_store:\n  root: data/offline\n"
    )
    (scale.repo / "definitions.py").write_text(DEFINITIONS)
    (scale.repo / "data").mkdir(exist_ok=True)
    rng = np.random.default_rng(scale.seed)
    for name, (key, _) in VIEWS.items():
        pq.write_table(_source(name, key, scale, rng), scale.repo / "data" / f"{name}.parquet")
    with FeatureStore(config=config(scale)) as store:
        store.apply()
        store.materialize(END - timedelta(days=31), END + timedelta(days=1), online=False)
    done.touch()


def entity_rows(scale: Scale) -> pa.Table:
    """--log-rows entity rows in requests of REQUEST_ROWS: one served_at per request."""
    path = scale.directory / "entity.parquet"
    if path.exists():
        return pq.read_table(path)
    rng = np.random.default_rng(scale.seed + 1)
    requests = -(-scale.log_rows // REQUEST_ROWS)
    start_us = int(END.timestamp() * 1e6) - SPAN_US + 86_400_000_000  # a day of history
    served = np.sort(start_us + rng.integers(0, SPAN_US - 86_400_000_000, requests))
    times = np.repeat(served, REQUEST_ROWS)[: scale.log_rows]
    drivers = rng.integers(0, scale.entities, scale.log_rows)
    table = pa.table(
        {
            "driver_id": drivers,
            "customer_id": (drivers * 7919) % scale.entities,
            "event_timestamp": pa.array(times).cast(TS_TYPE),
        }
    )
    pq.write_table(table, path)
    return table


def window(entity: pa.Table) -> tuple[datetime, datetime]:
    """[first served_at, last served_at + 1 s): every logged row."""
    times = entity.column("event_timestamp")
    first = times[0].as_py()
    return first, times[len(times) - 1].as_py() + timedelta(seconds=1)


def served_columns(store: FeatureStore, entity: pa.Table) -> pa.Table:
    """What a healthy online store served at each row's time: the offline join's values and
    its winners' event timestamps (as the replay joins them)."""
    queries = []
    for projection in store.catalog().resolve(SERVICE):
        relation = store.offline_store.relation(projection.view)
        query = ViewQuery.of(projection, relation)
        queries.append(replace(query, features=(*query.features, EVENT_TIMESTAMP)))
    con = connect(store.repo_path)
    try:
        return point_in_time_join(con, entity, queries, full_feature_names=True)
    finally:
        con.close()


def answers(joined: pa.Table) -> Iterator[ServedAnswer]:
    """The logged requests as the server hands them over: its answer body (`answer_body`),
    REQUEST_ROWS entity rows each."""
    chunk = 50_000
    for offset in range(0, joined.num_rows, chunk):
        part = joined.slice(offset, chunk).to_pydict()
        times = part["event_timestamp"]
        for start in range(0, len(times), REQUEST_ROWS):
            end = start + REQUEST_ROWS
            response = OnlineResponse(keys={key: part[key][start:end] for key, _ in VIEWS.values()})
            for view, (_, features) in VIEWS.items():
                stamps = part[f"{view}__{EVENT_TIMESTAMP}"][start:end]
                statuses = [NOT_FOUND if s is None else PRESENT for s in stamps]
                micros = [None if s is None else int(s.timestamp() * 1e6) for s in stamps]
                for feature in features:
                    response.values[feature] = part[f"{view}__{feature}"][start:end]
                    response.statuses[feature] = statuses
                    response.event_us[feature] = micros
            request_id = f"bench-{offset + start:09d}"
            body = answer_body(request_id, SERVICE, response)
            rows = len(response.keys["driver_id"])
            yield ServedAnswer(request_id, times[start].timestamp(), SERVICE, rows, body)


def write_log(scale: Scale, joined: pa.Table, log_format: int) -> float:
    """The serving log of `joined`, committed as the writer process does (convert every
    CONVERT_ROWS rows, commit every BATCH_ROWS); the seconds it took, answer bodies
    included. Format 1 with the old writer (tests/monitoring/v1_log.py)."""
    root = Path(config(scale, log_format).serving_log_root)
    started = time.perf_counter()
    if log_format == 1:
        from tests.monitoring.v1_log import write_v1

        batch: list[ServedAnswer] = []
        for answer in answers(joined):
            batch.append(answer)
            if len(batch) * REQUEST_ROWS >= BATCH_ROWS:
                write_v1(root, batch)
                batch = []
        if batch:
            write_v1(root, batch)
    else:
        writer = LogWriter(root)
        taken: list[ServedAnswer] = []
        pending: Tables = {}
        rows = 0
        for answer in answers(joined):
            taken.append(answer)
            if len(taken) * REQUEST_ROWS >= CONVERT_ROWS:
                rows += writer.convert(taken, pending)
                taken = []
            if rows >= BATCH_ROWS:
                writer.write(pending)
                pending, rows = {}, 0
        writer.convert(taken, pending)
        writer.write(pending)
    seconds = time.perf_counter() - started
    (root / ".complete").touch()
    return seconds


def prepare(scale: Scale, formats: list[int]) -> dict[str, float]:
    """Everything the measurements read, built once; how long each part took (0 if cached)."""
    took: dict[str, float] = {}
    started = time.perf_counter()
    build_repo(scale)
    took["repo"] = time.perf_counter() - started
    entity = entity_rows(scale)
    with FeatureStore(config=config(scale)) as store:
        if not any(d.name == DATASET for d in store.datasets.list()):
            started = time.perf_counter()
            store.get_historical_features(entity, SERVICE).save(DATASET)
            took["dataset"] = time.perf_counter() - started
        joined: pa.Table | None = None
        for log_format in formats:
            if not (Path(config(scale, log_format).serving_log_root) / ".complete").exists():
                joined = served_columns(store, entity) if joined is None else joined
                took[f"log format {log_format}"] = write_log(scale, joined, log_format)
    return took


@dataclass
class Timing:
    seconds: list[float]
    cpu: list[float]

    @property
    def median(self) -> float:
        return statistics.median(self.seconds)

    @property
    def median_cpu(self) -> float:
        return statistics.median(self.cpu)


def timed(action: Callable[[], Any], timing: Timing) -> Any:
    started, started_cpu = time.perf_counter(), time.process_time()
    result = action()
    timing.seconds.append(time.perf_counter() - started)
    timing.cpu.append(time.process_time() - started_cpu)
    return result


def measure(
    scale: Scale, formats: list[int], repeat: int
) -> tuple[dict[str, Timing], dict[str, Any]]:
    """--repeat rounds of: get_historical_features, then per log format the replay and the
    distribution check; the timings and what the checks found (last round)."""
    entity = entity_rows(scale)
    start, end = window(entity)
    timings: dict[str, Timing] = {}
    found: dict[str, Any] = {}

    def timing(name: str) -> Timing:
        return timings.setdefault(name, Timing([], []))

    stores = {f: FeatureStore(config=config(scale, f)) for f in formats}
    try:
        first = stores[formats[0]]
        for _ in range(repeat):
            job = first.get_historical_features(entity, SERVICE)
            result = timed(job.to_arrow, timing("get_historical_features"))
            found["get_historical_features rows"] = result.num_rows
            del result
            for log_format, store in stores.items():
                replayed = timed(
                    lambda store=store: replay(store, SERVICE, start, end),
                    timing(f"replay (log format {log_format})"),
                )
                drift = timed(  # the dataset read, checked and profiled as `featurehub skew` does
                    lambda store=store: check_distribution(
                        store.config.serving_log_root, SERVICE, store.get_dataset(DATASET),
                        start, end, store.config.monitoring,
                    ),
                    timing(f"distribution check (log format {log_format})"),
                )  # fmt: skip
                found[f"replay v{log_format} rows"] = replayed.rows
                found[f"replay v{log_format} mismatches"] = sum(
                    f.mismatches for f in replayed.features
                )
                found[f"distribution v{log_format} rows"] = drift.served_rows
    finally:
        for store in stores.values():
            store.close()
    return timings, found


def log_size_mib(scale: Scale, log_format: int) -> float:
    root = Path(config(scale, log_format).serving_log_root)
    return sum(p.stat().st_size for p in root.rglob("*.parquet")) / 2**20


def _ratios(measured: Timing, base: Timing) -> str:
    """median / median, fastest / fastest, median CPU / median CPU."""
    return (
        f"{measured.median / base.median:.2f} / {min(measured.seconds) / min(base.seconds):.2f}"
        f" / {measured.median_cpu / base.median_cpu:.2f}"
    )


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000_000, help="source rows per view")
    parser.add_argument("--entities", type=int, default=100_000, help="distinct keys per view")
    parser.add_argument("--log-rows", type=int, default=1_000_000, help="logged entity rows")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--repeat", type=int, default=3, help="rounds of measurements")
    parser.add_argument(
        "--log-format",
        type=int,
        choices=(1, 2),
        action="append",
        help="also measure a log of this format (2, the current one, always)",
    )
    add_arguments(parser)
    parser.add_argument("--root", type=Path, default=DATA_ROOT, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    args.formats = sorted({2, *(args.log_format or [])}, reverse=True)
    return args


def report(
    scale: Scale, formats: list[int], timings: dict[str, Timing], found: dict[str, Any]
) -> list[str]:
    """The markdown lines: one row per measure, then the ratios."""
    lines = [
        f"{scale.rows:,} source rows per view over {scale.entities:,} keys, "
        f"{scale.log_rows:,} logged rows (10 features, 2 views), {os.cpu_count()} CPUs, "
        f"load average {os.getloadavg()[0]:.2f}, duckdb {duckdb.__version__}",
        "",
        "| measure | median s | median CPU s | runs (s) |",
        "|---|---:|---:|---|",
    ]
    for name, timing in timings.items():
        runs = ", ".join(f"{s:.2f}" for s in timing.seconds)
        lines.append(f"| {name} | {timing.median:.2f} | {timing.median_cpu:.2f} | {runs} |")
    lines += [
        "",
        "Ratios (targets: replay / get_historical_features <= 1.5, distribution / replay <= 0.5)"
        " of the medians, of the fastest runs (the least disturbed by other work on the machine)"
        " and of the median CPU times:",
        "",
        "| log format | log MiB | replay / ghf | distribution / replay | rows replayed "
        "| mismatches |",
        "|---|---:|---|---|---:|---:|",
    ]
    base = timings["get_historical_features"]
    for log_format in formats:
        replayed = timings[f"replay (log format {log_format})"]
        drift = timings[f"distribution check (log format {log_format})"]
        lines.append(
            f"| {log_format} | {log_size_mib(scale, log_format):.0f} | {_ratios(replayed, base)} "
            f"| {_ratios(drift, replayed)} | {found[f'replay v{log_format} rows']:,} "
            f"| {found[f'replay v{log_format} mismatches']:,} |"
        )
    return lines


NAME = "bench_skew"
BEGIN, END_MARK = markers(NAME)
SECTION = "## Skew checks (`bench/bench_skew.py`)"


def main(argv: list[str] | None = None) -> list[str]:
    args = parse_args(argv)
    scale = Scale(args.rows, args.entities, args.log_rows, args.seed, args.root)
    started = time.perf_counter()
    took = prepare(scale, args.formats)
    parts = ", ".join(f"{name} {seconds:.1f} s" for name, seconds in took.items())
    print(f"data: {scale.directory} (ready in {time.perf_counter() - started:.1f} s: {parts})")
    timings, found = measure(scale, args.formats, args.repeat)
    lines = report(scale, args.formats, timings, found)
    print()
    print("\n".join(lines))
    finish(args.record, NAME, SECTION, lines, argv)
    return lines


if __name__ == "__main__":
    main()
