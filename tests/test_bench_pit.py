"""bench/bench_pit.py measures what it says: the child's own peak memory, and the driver
view's TTL set by --ttl (for featurehub and for the Feast peer alike)."""

from __future__ import annotations

import sys
from datetime import timedelta
from pathlib import Path

import pytest

BENCH = Path(__file__).parents[1] / "bench"
sys.path.insert(0, str(BENCH))

import bench_pit  # noqa: E402

PARENT_MIB = 800


@pytest.fixture(scope="module")
def scale(tmp_path_factory: pytest.TempPathFactory) -> bench_pit.Scale:
    """A tiny data set: 20k rows per view over 200 entities, 2,000 entity rows."""
    scale = bench_pit.Scale(20_000, 200, 2_000, seed=1, root=tmp_path_factory.mktemp("pit"))
    bench_pit.generate(scale)
    return scale


def test_a_childs_peak_memory_is_its_own(scale: bench_pit.Scale) -> None:
    """A parent that used much memory first (as data generation does) does not lend its peak
    to the child it then starts."""
    ballast = bytearray(PARENT_MIB * 2**20)
    ballast[::4096] = b"\1" * len(ballast[::4096])  # touch every page: resident
    run = bench_pit.run_child(scale.directory, 1, created_cutoff=True)
    del ballast
    assert 0 < run.peak_mib < PARENT_MIB / 2


def test_the_driver_ttl_is_the_flags(scale: bench_pit.Scale) -> None:
    unbounded = bench_pit.run_child(scale.directory, 1, True, driver_ttl=None)
    one_day = bench_pit.run_child(scale.directory, 1, True, driver_ttl=timedelta(days=1))
    assert 0 < one_day.non_null["driver_stats"] < unbounded.non_null["driver_stats"]


def test_ttl_flags_parse_and_bad_ones_say_what_to_write(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert bench_pit.parse_args([]).ttl == [None]
    args = bench_pit.parse_args(["--ttl", "none", "--ttl", "1d", "--ttl", "36h"])
    assert args.ttl == [None, timedelta(days=1), timedelta(hours=36)]
    assert [bench_pit.ttl_label(t) for t in args.ttl] == ["none", "1d", "36h"]
    assert bench_pit.parse_ttl(bench_pit.ttl_label(timedelta(seconds=90))) == timedelta(seconds=90)
    for bad, message in (("1x", "is not `none` or a number"), ("0d", "must be positive")):
        with pytest.raises(SystemExit):
            bench_pit.parse_args(["--ttl", bad])
        assert message in capsys.readouterr().err
