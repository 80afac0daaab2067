"""bench/recording.py: a bench's run replaces its own block in BENCHMARKS.md and nothing else,
and every bench in bench/ takes --record PATH and --no-record."""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).parents[1] / "bench"
sys.path.insert(0, str(BENCH))

import recording  # noqa: E402

SECTION = "## Thing (`bench/bench_thing.py`)"
BEGIN, END = recording.markers("bench_thing")
HEAD = "# Benchmarks\n\nintro\n\n"
TAIL = "\n## Other (`bench/bench_other.py`)\n\nother text\n"


def recorded(path: Path, lines: list[str], argv: list[str] | None = None) -> str:
    recording.record(path, "bench_thing", SECTION, lines, argv or ["--quick"])
    return path.read_text()


def block_of(text: str) -> str:
    return BEGIN + text.split(BEGIN, 1)[1].split(END, 1)[0] + END


def test_the_block_has_the_command_time_machine_and_lines(tmp_path: Path) -> None:
    text = recorded(tmp_path / "B.md", ["| a | b |", "|---|---|", "| 1 | 2 |"], ["--rows", "9"])
    block = block_of(text).splitlines()
    assert block[0] == BEGIN and block[-1] == END
    assert block[2].startswith("`.venv/bin/python bench/bench_thing.py --rows 9`, ")
    assert re.search(r", \d{4}-\d\d-\d\d \d\d:\d\d UTC, Python \d", block[2])
    assert "CPUs, load average " in block[2] and block[2].endswith(":")
    assert block[4:-1] == ["| a | b |", "|---|---|", "| 1 | 2 |", ""]


def test_between_the_markers_only(tmp_path: Path) -> None:
    path = tmp_path / "B.md"
    reading = "\nthe hand-written reading\n"
    path.write_text(f"{HEAD}{SECTION}\n\nbefore\n\n{BEGIN}\nold figures\n{END}\n{reading}{TAIL}")
    text = recorded(path, ["new figures"])
    assert "old figures" not in text and text.count("new figures") == 1
    before, after = text.split(block_of(text))
    assert before == f"{HEAD}{SECTION}\n\nbefore\n\n"
    assert after == f"\n{reading}{TAIL}"


def test_missing_markers_go_to_the_top_of_the_section(tmp_path: Path) -> None:
    path = tmp_path / "B.md"
    path.write_text(f"{HEAD}{SECTION}\nprevious figures, by hand\n{TAIL}")
    text = recorded(path, ["new figures"])
    before, after = text.split(block_of(text))
    assert before == f"{HEAD}{SECTION}\n\n"
    assert after == f"\n\nprevious figures, by hand\n{TAIL}"


def test_a_missing_section_is_appended(tmp_path: Path) -> None:
    path = tmp_path / "B.md"
    path.write_text(f"{HEAD}{TAIL}")
    text = recorded(path, ["new figures"])
    assert text.startswith(f"{HEAD}{TAIL}\n{SECTION}\n\n{BEGIN}\n")
    assert text.endswith(f"{END}\n")
    assert recorded(tmp_path / "new.md", ["x"]).startswith(f"# Benchmarks\n\n{SECTION}\n\n")
    plain = tmp_path / "plain.md"  # a title without its hashes is a second-level heading
    recording.record(plain, "bench_thing", "Thing", ["x"], [])
    assert plain.read_text().startswith(f"# Benchmarks\n\n## Thing\n\n{BEGIN}\n")


@pytest.mark.parametrize(
    "start",
    [f"{HEAD}{TAIL}", f"{HEAD}{SECTION}\nprevious\n{TAIL}", f"{HEAD}{SECTION}\n\n{BEGIN}\n{END}\n"],
)
def test_twice_is_one_block(tmp_path: Path, start: str) -> None:
    path = tmp_path / "B.md"
    path.write_text(start)
    first = recorded(path, ["first"])
    second = recorded(path, ["second"])
    assert second.count(BEGIN) == 1 and second.count(END) == 1 and second.count(SECTION) == 1
    assert "first" not in second and "second" in second
    assert second.replace(block_of(second), "") == first.replace(block_of(first), "")


def test_a_lone_marker_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "B.md"
    for broken in (f"{SECTION}\n{BEGIN}\nkept\n", f"{SECTION}\n{END}\n{BEGIN}\n"):
        path.write_text(broken)
        with pytest.raises(ValueError, match="not both"):
            recording.record(path, "bench_thing", SECTION, ["x"], [])
        assert path.read_text() == broken


def test_record_flags(tmp_path: Path) -> None:
    parser = argparse.ArgumentParser()
    recording.add_arguments(parser)
    assert parser.parse_args([]).record == recording.ROOT / "BENCHMARKS.md"
    assert parser.parse_args(["--record", str(tmp_path / "x.md")]).record == tmp_path / "x.md"
    assert parser.parse_args(["--no-record"]).record is None
    recording.finish(None, "bench_thing", SECTION, ["x"], [])  # --no-record writes nothing
    assert list(tmp_path.iterdir()) == []


def test_a_transcript_prints_and_keeps(capsys: pytest.CaptureFixture[str]) -> None:
    out = recording.Transcript()
    out("a table\n| x |")
    out.gap()
    out()
    assert capsys.readouterr().out == "a table\n| x |\n\n"
    assert out.lines == ["a table", "| x |", "", ""]


BENCHES = sorted(p.name for p in BENCH.glob("bench_*.py"))


def test_every_bench_is_covered() -> None:
    """A new bench_*.py joins the --help check below (and so gets --record)."""
    assert "bench_skew.py" in BENCHES and len(BENCHES) >= 8


@pytest.mark.parametrize("bench", BENCHES)
def test_every_bench_takes_record_and_no_record(bench: str) -> None:
    """--help only: the benches are not run here (they measure; see tests/test_bench_*.py)."""
    done = subprocess.run(
        [sys.executable, str(BENCH / bench), "--help"], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "--record RECORD" in done.stdout and "--no-record" in done.stdout
