"""How a benchmark in bench/ writes its latest figures into BENCHMARKS.md.

The project's rule: a bench prints its figures and writes the latest into BENCHMARKS.md with
the command and the machine. Each bench owns one block, between `<!-- {name}: begin -->` and
`<!-- {name}: end -->` in its section; a run replaces that block and nothing else, so the
hand-written reading of a section around it stays. Every bench takes `--record PATH`
(default: BENCHMARKS.md at the repo root) and `--no-record` (`add_arguments`), collects the
markdown it prints in a `Transcript`, and calls `finish` at the end of a successful run.
"""

from __future__ import annotations

import argparse
import os
import sys
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_RECORD = ROOT / "BENCHMARKS.md"


def markers(name: str) -> tuple[str, str]:
    """The begin and end lines of bench `name`'s block."""
    return f"<!-- {name}: begin -->", f"<!-- {name}: end -->"


def heading(section_title: str) -> str:
    """The section's heading line: `section_title` as written if it is a markdown heading,
    else a second-level one."""
    title = section_title.strip()
    return title if title.startswith("#") else f"## {title}"


def platform() -> str:
    """The machine a run measured on: Python, the OS, cores, the load average (1, 5, 15 min)
    at the end of the run, and pyarrow (its version moves most figures here)."""
    import platform as host

    import pyarrow

    load = " / ".join(f"{x:.2f}" for x in os.getloadavg())
    return (
        f"Python {host.python_version()}, {host.system()} {host.release()}, "
        f"{os.cpu_count()} CPUs, load average {load}, pyarrow {pyarrow.__version__}"
    )


def block(name: str, lines: list[str], argv: list[str]) -> str:
    """The recorded block of one run: markers, command, UTC time, machine, then `lines`."""
    begin, end = markers(name)
    command = " ".join([f".venv/bin/python bench/{name}.py", *argv])
    when = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    return "\n".join([begin, "", f"`{command}`, {when}, {platform()}:", "", *lines, "", end])


def record(path: Path, name: str, section_title: str, lines: list[str], argv: list[str]) -> None:
    """Put the block of this run of bench `name` into `path`, keeping the text around it.

    Between the bench's markers if `path` has them; else at the top of the section headed
    `section_title` (right after its heading line); else in a new section of that title at
    the end. A file
    with only one of the two markers is left alone (ValueError): replacing from there could
    swallow hand-written text."""
    begin, end = markers(name)
    new = block(name, lines, argv)
    text = path.read_text() if path.exists() else "# Benchmarks\n"
    if begin in text and end in text.split(begin, 1)[1]:
        before, rest = text.split(begin, 1)
        text = before + new + rest.split(end, 1)[1]
    elif begin in text or end in text:
        raise ValueError(f"{path} has one of {begin} / {end} but not both, in order: fix it")
    else:
        title = heading(section_title)
        rows = text.splitlines(keepends=True)
        at = next((i for i, row in enumerate(rows) if row.strip() == title), None)
        if at is None:
            text = text.rstrip("\n") + f"\n\n{title}\n\n{new}\n"
        else:
            head = "".join(rows[: at + 1])
            head += "" if head.endswith("\n") else "\n"
            rest = "".join(rows[at + 1 :]).lstrip("\n")
            text = head + "\n" + new + "\n" + ("\n" + rest if rest else "")
    path.write_text(text)


class Transcript:
    """Prints a bench's markdown as before and keeps it, line by line, for `record`."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def __call__(self, text: str = "", flush: bool = False) -> None:
        print(text, flush=flush)
        self.lines += text.split("\n")

    def gap(self) -> None:
        """A paragraph break in the record only: markdown runs consecutive lines together,
        and the terminal output stays as it was."""
        self.lines.append("")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """`--record PATH` (default: BENCHMARKS.md at the repo root) and `--no-record`: where the
    run's figures are written, `args.record` None for nowhere."""
    where = parser.add_mutually_exclusive_group()
    where.add_argument(
        "--record",
        type=Path,
        default=DEFAULT_RECORD,
        help="the file whose section of this bench gets the figures (default: BENCHMARKS.md)",
    )
    where.add_argument(
        "--no-record",
        dest="record",
        action="store_const",
        const=None,
        help="print the figures only",
    )


def finish(
    path: Path | None, name: str, section_title: str, lines: list[str], argv: list[str] | None
) -> None:
    """Record `lines` in `path` unless it is None (`--no-record`), and say where. `argv`:
    the run's arguments, None for the command line's."""
    if path is None:
        return
    record(path, name, section_title, lines, sys.argv[1:] if argv is None else argv)
    print(f"\nrecorded in {path}")
