"""Benchmark of the offline point-in-time join (featurehub.offline.pit).

Generates seeded synthetic data with numpy into bench/data/ (gitignored, reused across runs),
then runs the single-view and the three-view join --repeat times each, for each --ttl of the
driver view. Every run is a fresh child process that reports its own peak resident set size,
interpreter and entity table included: the kernel's high-water mark of the child's memory
(VmHWM in /proc/self/status). Not ru_maxrss: Linux carries the parent's peak into a child's
ru_maxrss (os.wait4 and the child's own getrusage alike), so a run that generated the data
first reported the generator's peak.

Default scale is the performance target: each feature view has 10M rows over 100k entities
with 10 features (5 float64, 5 int64), event times uniform over 30 days and created = event +
U[0, 2h); the entity table has 1M rows at uniform times over the same 30 days.

    python bench/bench_pit.py                                        # full scale
    python bench/bench_pit.py --rows 1000000 --entity-rows 100000    # quick run
    python bench/bench_pit.py --feast     # also Feast's get_historical_features (feast_peer.py)
    python bench/bench_pit.py --ttl none --ttl 1d --no-created-cutoff --feast   # both TTLs

--ttl sets the driver view's TTL (none, or a number with s, m, h or d; repeat the flag to
measure several in one run); the default, none, is the most history to search. The other two
views keep 7 and 2 days. With --feast, bench/feast_peer.py runs Feast's DuckDB offline store
on the same files with the same TTLs in the Feast venv (bench/.venv-feast) and the table gains
Feast's median, peak RSS, non-null count and the ratio featurehub / Feast time. Feast has no
created cutoff: compare with --no-created-cutoff.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from feast_peer import check_venv, run_peer
from recording import Transcript, add_arguments, finish

from featurehub.offline.pit import ViewQuery, point_in_time_join

DATA_ROOT = Path(__file__).resolve().parent / "data"
START_US = 1_700_000_000 * 1_000_000  # 2023-11-14T22:13:20Z, in microseconds
SPAN_US = 30 * 86_400 * 1_000_000  # 30 days
MAX_DELAY_US = 2 * 3_600 * 1_000_000  # created = event + U[0, 2h)
FILES_PER_VIEW = 10
N_FEATURES = 10
TS_TYPE = pa.timestamp("us", tz="UTC")
SECTION = "## Point-in-time training data (`bench/bench_pit.py`)"


@dataclass(frozen=True)
class Scale:
    """Sizes of one generated data set; the directory name encodes them so sizes never mix."""

    rows: int
    entities: int
    entity_rows: int
    seed: int
    root: Path = DATA_ROOT

    @property
    def directory(self) -> Path:
        name = f"pit_r{self.rows}_e{self.entities}_q{self.entity_rows}_s{self.seed}"
        return self.root / name


@dataclass(frozen=True)
class ViewSpec:
    """A generated feature view: its name, its join keys and its TTL in the benchmark."""

    name: str
    join_keys: tuple[str, ...]
    ttl: timedelta | None


# The single-view scenario is the first view; --ttl replaces its TTL (default none).
VIEWS = (
    ViewSpec("driver_stats", ("driver_id",), None),
    ViewSpec("customer_stats", ("customer_id",), timedelta(days=7)),
    ViewSpec("trip_stats", ("driver_id", "customer_id"), timedelta(days=2)),
)


def feature_names(view: str) -> tuple[str, ...]:
    """Feature column names of a generated view: distinct per view, so names never clash."""
    return tuple(f"{view[:4]}_f{i}" for i in range(N_FEATURES))


def _key_columns(spec: ViewSpec, keys: np.ndarray, entities: int) -> dict[str, np.ndarray]:
    """Join-key columns of a view; customer = f(driver), so the composite key has `entities`
    distinct values that the entity table actually uses."""
    customers = (keys * 7919) % entities
    if spec.join_keys == ("driver_id",):
        return {"driver_id": keys}
    if spec.join_keys == ("customer_id",):
        return {"customer_id": customers}
    return {"driver_id": keys, "customer_id": customers}


def _feature_table(spec: ViewSpec, scale: Scale, rng: np.random.Generator) -> pa.Table:
    """One view's rows, sorted by event time as an append-only materialization writes them."""
    n = scale.rows
    event = np.sort(START_US + rng.integers(0, SPAN_US, n))
    created = event + rng.integers(0, MAX_DELAY_US, n)
    keys = rng.integers(0, scale.entities, n)
    columns = {k: pa.array(v) for k, v in _key_columns(spec, keys, scale.entities).items()}
    columns["event_timestamp"] = pa.array(event).cast(TS_TYPE)
    columns["created_timestamp"] = pa.array(created).cast(TS_TYPE)
    for i, name in enumerate(feature_names(spec.name)):
        values = rng.standard_normal(n) if i % 2 == 0 else rng.integers(0, 1_000, n)
        columns[name] = pa.array(values)
    return pa.table(columns)


def _entity_table(scale: Scale, rng: np.random.Generator) -> pa.Table:
    """The entity (label) table: random drivers at random times, with a label column."""
    n = scale.entity_rows
    drivers = rng.integers(0, scale.entities, n)
    return pa.table(
        {
            "driver_id": pa.array(drivers),
            "customer_id": pa.array((drivers * 7919) % scale.entities),
            "event_timestamp": pa.array(START_US + rng.integers(0, SPAN_US, n)).cast(TS_TYPE),
            "label": pa.array(rng.integers(0, 2, n).astype(np.int8)),
        }
    )


def generate(scale: Scale) -> None:
    """Write every view as FILES_PER_VIEW parquet files plus the entity table, once."""
    done = scale.directory / ".complete"
    if done.exists():
        return
    scale.directory.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(scale.seed)
    for spec in VIEWS:
        table = _feature_table(spec, scale, rng)
        view_dir = scale.directory / spec.name
        view_dir.mkdir(exist_ok=True)
        step = -(-table.num_rows // FILES_PER_VIEW)
        for i in range(FILES_PER_VIEW):
            pq.write_table(table.slice(i * step, step), view_dir / f"part-{i:03d}.parquet")
        del table
    pq.write_table(_entity_table(scale, rng), scale.directory / "entity.parquet")
    done.touch()


TTL_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}


def parse_ttl(text: str) -> timedelta | None:
    """`none` or a number with a unit (s, m, h, d): `1d`, `36h`."""
    if text.strip().lower() == "none":
        return None
    number, unit = text.strip()[:-1], text.strip()[-1:].lower()
    try:
        ttl = timedelta(**{TTL_UNITS[unit]: float(number)})
    except (KeyError, ValueError):
        raise argparse.ArgumentTypeError(
            f"TTL {text!r} is not `none` or a number with s, m, h or d (e.g. 1d, 36h)"
        ) from None
    if ttl <= timedelta(0):
        raise argparse.ArgumentTypeError(f"TTL {text!r} must be positive, or `none`")
    return ttl


def ttl_label(ttl: timedelta | None) -> str:
    """A TTL as the table shows it: `none`, `1d`, `36h`."""
    if ttl is None:
        return "none"
    if ttl % timedelta(days=1) == timedelta(0):
        return f"{ttl.days}d"
    if ttl % timedelta(hours=1) == timedelta(0):
        return f"{ttl // timedelta(hours=1)}h"
    return f"{ttl.total_seconds():g}s"


def view_specs(driver_ttl: timedelta | None) -> tuple[ViewSpec, ...]:
    """The generated views with the driver view's TTL set to `driver_ttl`."""
    first, *others = VIEWS
    return (ViewSpec(first.name, first.join_keys, driver_ttl), *others)


def view_queries(directory: Path, count: int, driver_ttl: timedelta | None) -> list[ViewQuery]:
    """ViewQuery objects reading the parquet files of the first `count` generated views."""
    queries = []
    for spec in view_specs(driver_ttl)[:count]:
        files = sorted(str(p) for p in (directory / spec.name).glob("*.parquet"))
        relation = f"read_parquet({files!r})"
        queries.append(
            ViewQuery(spec.name, spec.join_keys, feature_names(spec.name), relation, spec.ttl)
        )
    return queries


def peak_rss_mib() -> float:
    """This process's own peak resident set size: the kernel's high-water mark of its memory
    (VmHWM), which starts afresh at exec. getrusage's ru_maxrss does not: on Linux it starts
    at the parent's peak."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024  # kB
    raise RuntimeError("no VmHWM in /proc/self/status: bench_pit.py measures memory on Linux")


def child_main(
    directory: Path, views: int, created_cutoff: bool, driver_ttl: timedelta | None
) -> None:
    """One measured join in this fresh process; prints its wall and CPU time, its peak RSS
    and each view's non-null count of its first feature as JSON.

    CPU time (all threads) is less disturbed than wall time when other work shares the CPUs.
    """
    entity = pq.read_table(directory / "entity.parquet")
    queries = view_queries(directory, views, driver_ttl)
    con = duckdb.connect()
    start, start_cpu = time.perf_counter(), time.process_time()
    result = point_in_time_join(con, entity, queries, created_cutoff=created_cutoff)
    seconds, cpu = time.perf_counter() - start, time.process_time() - start_cpu
    found = {q.name: result.num_rows - result[q.features[0]].null_count for q in queries}
    report = {"seconds": seconds, "cpu": cpu, "rows": result.num_rows, "non_null": found}
    print(json.dumps({**report, "peak_mib": peak_rss_mib()}))


@dataclass(frozen=True)
class Run:
    """One measured join: wall seconds, CPU seconds (all threads), peak RSS of the process,
    non-null first features per view."""

    seconds: float
    cpu: float
    peak_mib: float
    non_null: dict[str, int]


def run_child(
    directory: Path, views: int, created_cutoff: bool, driver_ttl: timedelta | None = None
) -> Run:
    """Run one join in a fresh child process and measure it."""
    cmd = [sys.executable, __file__, "--child", str(directory), "--views", str(views)]
    cmd += ["--ttl", ttl_label(driver_ttl)]
    if not created_cutoff:
        cmd.append("--no-created-cutoff")
    done = subprocess.run(cmd, stdout=subprocess.PIPE, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"benchmark child failed with exit code {done.returncode}")
    report = json.loads(done.stdout.strip().splitlines()[-1])
    return Run(report["seconds"], report["cpu"], report["peak_mib"], report["non_null"])


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line flags; --child is internal (one measured run in a fresh process)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000_000, help="rows per feature view")
    parser.add_argument("--entities", type=int, default=100_000, help="distinct entities")
    parser.add_argument("--entity-rows", type=int, default=1_000_000, help="entity table rows")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--repeat", type=int, default=3, help="runs per scenario")
    parser.add_argument(
        "--ttl",
        type=parse_ttl,
        action="append",
        help="the driver view's TTL: none (default) or e.g. 1d, 36h; repeat to measure several",
    )
    parser.add_argument(
        "--no-created-cutoff", dest="created_cutoff", action="store_false", help="Feast rules"
    )
    parser.add_argument(
        "--feast", action="store_true", help="also run Feast (bench/feast_peer.py, Feast venv)"
    )
    add_arguments(parser)
    parser.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--views", type=int, default=1, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    args.ttl = list(dict.fromkeys(args.ttl or [None]))
    return args


def measure(scale: Scale, views: int, ttl: timedelta | None, args: argparse.Namespace) -> str:
    """Run one scenario (--repeat children, and Feast with --feast); print it as it ends and
    return its table row."""
    runs = [run_child(scale.directory, views, args.created_cutoff, ttl) for _ in range(args.repeat)]
    median = statistics.median(run.seconds for run in runs)
    cpu = statistics.median(run.cpu for run in runs)
    peak = max(run.peak_mib for run in runs)
    each = ", ".join(f"{run.seconds:.2f}" for run in runs)
    found = runs[0].non_null[VIEWS[0].name]
    label = ttl_label(ttl)
    line = f"| {views} | {label} | {median:.2f} | {cpu:.2f} | {peak:.0f} | {each} | {found:,} |"
    print(
        f"{views} view(s), driver TTL {label}: median {median:.2f} s (CPU {cpu:.2f} s), "
        f"peak RSS {peak:.0f} MiB, non-null {runs[0].non_null}"
    )
    if args.feast:
        ttl_seconds = "none" if ttl is None else str(int(ttl.total_seconds()))
        peer = run_peer(
            "pit", "--data", str(scale.directory), "--views", str(views),
            "--repeat", str(args.repeat), "--driver-ttl-seconds", ttl_seconds,
        )  # fmt: skip
        feast_s, feast_found = peer["median_seconds"], peer["non_null"][VIEWS[0].name]
        line += (
            f" {feast_s:.2f} | {peer['peak_mib']:.0f} | {feast_found:,} | {median / feast_s:.2f} |"
        )
        print(
            f"{views} view(s), driver TTL {label}: Feast {peer['feast']} median {feast_s:.2f} s "
            f"(CPU {peer['median_cpu']:.2f} s), peak RSS {peer['peak_mib']:.0f} MiB, "
            f"runs {peer['runs']}, non-null {peer['non_null']}"
        )
    return line


def main(argv: list[str] | None = None) -> None:
    """Generate data if needed, run each scenario --repeat times, print a markdown table."""
    args = parse_args(argv)
    if args.child:
        child_main(args.child, args.views, args.created_cutoff, args.ttl[0])
        return
    if args.feast:
        check_venv()
    scale = Scale(args.rows, args.entities, args.entity_rows, args.seed)
    started = time.perf_counter()
    generate(scale)
    print(f"data: {scale.directory} (ready in {time.perf_counter() - started:.1f} s)")
    lines = [measure(scale, views, ttl, args) for ttl in args.ttl for views in (1, 3)]
    print()
    out = Transcript()
    out(
        f"{args.rows:,} feature rows per view over {args.entities:,} entities, "
        f"{args.entity_rows:,} entity rows, created_cutoff={args.created_cutoff}, "
        f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f}, duckdb {duckdb.__version__}"
    )
    out()
    header = "| views | driver TTL | median s | median CPU s | peak RSS MiB | runs (s) | non-null |"
    rule = "|---:|---|---:|---:|---:|---|---:|"
    if args.feast:
        header += (
            " Feast median s | Feast peak RSS MiB | Feast non-null | featurehub / Feast time |"
        )
        rule += "---:|---:|---:|---:|"
    out(header)
    out(rule)
    out("\n".join(lines))
    finish(args.record, "bench_pit", SECTION, out.lines, argv)


if __name__ == "__main__":
    main()
