"""bench/bench_skew.py runs end to end on a tiny data set: a healthy log (written through the
real writer, in both formats) replays without mismatch, and the figures are recorded."""

from __future__ import annotations

import sys
from pathlib import Path

BENCH = Path(__file__).parents[1] / "bench"
sys.path.insert(0, str(BENCH))

import bench_skew  # noqa: E402


def test_the_bench_runs_and_records_its_figures(tmp_path: Path) -> None:
    record = tmp_path / "BENCHMARKS.md"
    record.write_text("# Benchmarks\n\nkept\n")
    argv = ["--rows", "20000", "--entities", "500", "--log-rows", "3000", "--repeat", "1"]
    argv += ["--log-format", "1", "--root", str(tmp_path / "data"), "--record", str(record)]
    lines = bench_skew.main(argv)
    text = "\n".join(lines)
    for measure in ("get_historical_features", "replay (log format 2)", "replay (log format 1)"):
        assert f"| {measure} |" in text
    assert "| 2 |" in text and "| 1 |" in text and text.count("| 3,000 | 0 |") == 2
    recorded = record.read_text()
    assert recorded.startswith("# Benchmarks\n\nkept\n") and bench_skew.SECTION in recorded
    bench_skew.main(argv)  # again, on the cached data: the section is replaced, not added
    again = record.read_text()
    assert again.count(bench_skew.SECTION) == 1 and again.count(bench_skew.BEGIN) == 1
