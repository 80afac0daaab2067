"""`served_rows.count_by_arm` against a brute-force count: log files of format 2 with random
models, versions, arms (null ones too) and times, some without the `arm` column (written by
another writer), and a format 1 file beside them, which holds no model's rows."""

from __future__ import annotations

import tempfile
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
from hypothesis import given, settings
from hypothesis import strategies as st

from featurehub.monitoring.log_format import FORMAT, FORMAT_KEY
from featurehub.skew.served_rows import UNKNOWN_ARM, ModelAnswers, count_by_arm

START = datetime(2026, 12, 1, tzinfo=timezone.utc)
END = START + timedelta(hours=1)
ANSWERS = ModelAnswers("m", 2)

rows = st.lists(
    st.fixed_dictionaries(
        {
            "minute": st.integers(-10, 70),  # some outside [START, END)
            "model": st.sampled_from(["m", "other", None]),
            "model_version": st.sampled_from(["1", "2", None]),
            "arm": st.sampled_from(["production", "canary", "a", "b", "pinned", "shadow", None]),
        }
    ),
    max_size=40,
)
files = st.lists(st.tuples(rows, st.booleans()), min_size=1, max_size=4)
"""Files: their rows, and whether the file has an `arm` column."""


def write(path: Path, records: list[dict[str, Any]], with_arm: bool) -> None:
    columns: dict[str, pa.Array] = {
        "served_at": pa.array(
            [START + timedelta(minutes=r["minute"]) for r in records], pa.timestamp("us", "UTC")
        ),
        "model": pa.array([r["model"] for r in records], pa.string()),
        "model_version": pa.array([r["model_version"] for r in records], pa.string()),
    }
    if with_arm:
        columns["arm"] = pa.array([r["arm"] for r in records], pa.string())
    pq.write_table(pa.table(columns).replace_schema_metadata({FORMAT_KEY: FORMAT}), path)


def oracle(written: list[tuple[list[dict[str, Any]], bool]]) -> dict[str, int]:
    """Row by row: the version's rows in the window, not shadow, per arm (no column: unknown)."""
    counts: dict[str, int] = {}
    for records, with_arm in written:
        for r in records:
            arm = r["arm"] if with_arm else None
            mine = (r["model"], r["model_version"]) == (ANSWERS.model, str(ANSWERS.version))
            if mine and 0 <= r["minute"] < 60 and arm != "shadow":
                label = UNKNOWN_ARM if arm is None else arm
                counts[label] = counts.get(label, 0) + 1
    return counts


@settings(max_examples=60, deadline=None)
@given(written=files)
def test_the_counts_are_the_versions_rows_per_arm(
    written: list[tuple[list[dict[str, Any]], bool]],
) -> None:
    with tempfile.TemporaryDirectory() as folder:
        paths = []
        for i, (records, with_arm) in enumerate(written):
            paths.append(Path(folder) / f"{i}.parquet")
            write(paths[-1], records, with_arm)
        old = Path(folder) / "format1.parquet"  # no format key: JSON columns, no model
        pq.write_table(pa.table({"served_at": pa.array([START], pa.timestamp("us", "UTC"))}), old)
        con = duckdb.connect()
        try:
            counted = count_by_arm(con, [*paths, old], START, END, ANSWERS)
        finally:
            con.close()
    expected = oracle(written)
    assert counted == expected
    assert list(counted) == sorted(expected, key=lambda arm: (-expected[arm], arm))  # most first


def test_format_1_files_alone_hold_no_rows_of_a_model(tmp_path: Path) -> None:
    old = tmp_path / "format1.parquet"
    pq.write_table(pa.table({"served_at": pa.array([START], pa.timestamp("us", "UTC"))}), old)
    assert count_by_arm(duckdb.connect(), [old], START, END, ANSWERS) == {}
