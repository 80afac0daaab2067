"""The serving log writer's CPU per logged row, format 2 (typed columns) against format 1 (JSON
text, the writer before issue 10: tests/monitoring/v1_log.py), in one process.

    python bench/bench_log_writer.py [--record PATH | --no-record]

Answers of 1 and of 100 entity rows (2 keys, 10 features of two views: floats, integers, a
string), decoded, converted in batches of CONVERT_ROWS rows as the writer process does, and
written as one zstd Parquet file: median CPU of 3 runs, and the file's size.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import orjson
import pyarrow as pa
import pyarrow.parquet as pq

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from featurehub.monitoring.log_format import (  # noqa: E402
    ServedAnswer,
    ServedRequest,
    concat,
    decode,
    to_tables,
    with_format,
)
from featurehub.monitoring.log_writer import CONVERT_ROWS  # noqa: E402
from tests.monitoring import v1_log  # noqa: E402

sys.path.insert(0, str(ROOT / "bench"))
from recording import Transcript, add_arguments, finish  # noqa: E402

SECTION = "## Serving log writer (`bench/bench_log_writer.py`)"
Convert = Callable[[Sequence[ServedRequest]], dict[tuple[str, str], pa.Table]]


def answer(number: int, rows: int) -> ServedAnswer:
    """One answer as the server sends it: two views of five features each."""
    features = {}
    for view, stamp in (("d", "2026-11-30T10:00:00.123456Z"), ("c", "2026-11-29T00:00:00Z")):
        statuses, stamps = ["present"] * rows, [stamp] * rows
        for j in range(5):
            value: object = 0.1 * number + j if j % 2 == 0 else number + j
            value = f"zone_{j}" if view == "c" and j == 3 else value
            features[f"{view}{j}"] = {
                "values": [value] * rows,
                "statuses": statuses,
                "event_timestamps": stamps,
            }
    keys = {"driver_id": list(range(rows)), "customer_id": list(range(rows))}
    body = {"request_id": f"r{number}", "feature_service": "svc", "keys": keys}
    body["features"] = features
    return ServedAnswer(f"r{number}", time.time(), "svc", rows, orjson.dumps(body))


def run(
    answers: list[ServedAnswer], convert: Convert, per_batch: int, typed: bool
) -> tuple[float, int]:
    """CPU seconds to decode, convert and write `answers`; the file's bytes."""
    started = time.process_time()
    tables = []
    for start in range(0, len(answers), per_batch):
        converted = convert([decode(a) for a in answers[start : start + per_batch]])
        tables += list(converted.values())
    table = concat(tables) if typed else pa.concat_tables(tables)
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "part.parquet"
        pq.write_table(with_format(table) if typed else table, path, compression="zstd")
        return time.process_time() - started, path.stat().st_size


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_arguments(parser)
    args = parser.parse_args(argv)
    out = Transcript()
    out("| rows per answer | format | rows | CPU us per row | CPU us per answer | file KiB |")
    out("|---:|---:|---:|---:|---:|---:|")
    for rows in (1, 100):
        per_batch = max(CONVERT_ROWS // rows, 1)
        answers = [answer(number, rows) for number in range(per_batch * 12)]
        total = len(answers) * rows
        for name, convert, typed in (("2", to_tables, True), ("1", v1_log.to_tables, False)):
            runs = [run(answers, convert, per_batch, typed) for _ in range(3)]
            cpu = statistics.median(seconds for seconds, _ in runs)
            out(
                f"| {rows} | {name} | {total:,} | {cpu / total * 1e6:.2f} | "
                f"{cpu / len(answers) * 1e6:.1f} | {runs[0][1] / 1024:.0f} |"
            )
    finish(args.record, "bench_log_writer", SECTION, out.lines, argv)


if __name__ == "__main__":
    main()
