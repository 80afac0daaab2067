"""The migration path: logs written in format 1 (JSON text, before issue 10) read as format 2
ones do, alone or mixed with them in one window, by the replay's and the distribution
check's readers."""

from __future__ import annotations

import base64
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import duckdb
import orjson
import pyarrow as pa
import pytest
from typer.testing import CliRunner

from featurehub import types
from featurehub.cli import app
from featurehub.monitoring import LogWriter, ServedAnswer
from featurehub.skew.served_rows import (
    SERVED_AT,
    LogFiles,
    ModelAnswers,
    ServedFeature,
    log_files,
    read_served_rows,
    read_served_values,
)
from tests.monitoring.v1_log import write_v1
from tests.repos import make_repo

NOW = time.time()
FEATURES = [
    ServedFeature("stats", "rate", types.Float64),
    ServedFeature("stats", "count", types.Int64),
    ServedFeature("profile", "zone", types.String),
    ServedFeature("profile", "flag", types.Bool),
    ServedFeature("profile", "blob", types.Bytes),
]
STAMP = "2026-01-01T00:00:00Z"


def answer(number: int, full_names: bool) -> ServedAnswer:
    """A request of three drivers: found, expired and not found; with full feature names or
    not."""
    statuses = {
        "stats": ["present", "expired", "not_found"],
        "profile": ["present", "present", "not_found"],
    }
    stamps = {view: [STAMP, STAMP, None] for view in statuses}
    values: dict[str, list[Any]] = {
        "rate": [0.25 * number, None, None],
        "count": [number, None, None],
        "zone": ['a,"b"', "é", None],
        "flag": [True, False, None],
        "blob": [base64.b64encode(b"\x00\xff").decode(), None, None],
    }
    features = {}
    for feature in FEATURES:
        name = f"{feature.view}__{feature.feature}" if full_names else feature.feature
        features[name] = {
            "values": values[feature.feature],
            "statuses": statuses[feature.view],
            "event_timestamps": stamps[feature.view],
        }
    body = orjson.dumps({"keys": {"driver_id": [1, 2, 3], "zone_id": ["x", "y", "z"]},
                         "features": features})  # fmt: skip
    return ServedAnswer(f"r{number:03d}", NOW - number, "svc", 3, body)


ANSWERS = [answer(number, full_names=number % 3 == 0) for number in range(12)]


def write(root: Path, formats: str) -> list[Path]:
    """ANSWERS under `root`: "1" all in format 1, "2" all in format 2, "12" half each."""
    old, new = (ANSWERS, []) if formats == "1" else ([], ANSWERS)
    if formats == "12":
        old, new = ANSWERS[::2], ANSWERS[1::2]
    if old:
        write_v1(root, old)
    if new:
        LogWriter(root).commit(new)
    start, end = window()
    return log_files(root, "svc", start, end)


def window() -> tuple[datetime, datetime]:
    now = datetime.fromtimestamp(NOW, timezone.utc)
    return now - timedelta(hours=1), now + timedelta(seconds=1)


def served_rows(files: list[Path], sample: float | None = None) -> list[dict[str, Any]]:
    keys = {"driver_id": types.Int64, "zone_id": types.String}
    con = duckdb.connect()
    table = read_served_rows(con, files, keys, FEATURES, *window(), sample)
    return sorted(table.to_pylist(), key=lambda row: (row[SERVED_AT], row["driver_id"]))


@pytest.mark.parametrize("formats", ["1", "12"])
def test_old_logs_read_as_new_ones(tmp_path: Path, formats: str) -> None:
    new = write(tmp_path / "new", "2")
    files = write(tmp_path / formats, formats)
    split = LogFiles.of(files)
    assert (bool(split.json), bool(split.typed)) == (True, formats == "12")
    expected = served_rows(new)
    assert len(expected) == 36 and served_rows(files) == expected
    first = expected[-3]  # answer 0 (served last): full feature names, driver 1
    assert first["__replay_status_0"] == "present" and first["__replay_value_0"] == 0.0
    assert first["__replay_value_4"] == base64.b64encode(b"\x00\xff").decode()
    assert [row["__replay_status_0"] for row in expected[:3]] == [
        "present",
        "expired",
        "not_found",
    ]
    assert served_rows(files, sample=0.5) == served_rows(new, sample=0.5)
    kinds = {"rate": "number", "count": "number", "zone": "string", "flag": "bool"}
    con = duckdb.connect()

    def values(paths: list[Path]) -> pa.Table:
        table = read_served_values(con, paths, kinds, *window())
        return table.sort_by([(name, "ascending") for name in kinds])

    assert values(files).equals(values(new))
    assert values(new).num_rows == 36


@pytest.mark.parametrize("formats", ["1", "2", "12"])
def test_a_model_versions_rows_are_only_its_own(tmp_path: Path, formats: str) -> None:
    """No answer here is a model's: a model version's check reads none of them, in either
    format (format 1 was written before models) and by both readers."""
    files = write(tmp_path / formats, formats)
    keys = {"driver_id": types.Int64, "zone_id": types.String}
    con = duckdb.connect()
    answers = ModelAnswers("driver_model", 1)
    rows = read_served_rows(con, files, keys, FEATURES, *window(), answered_by=answers)
    values = read_served_values(con, files, {"rate": "number"}, *window(), answered_by=answers)
    assert (rows.num_rows, values.num_rows) == (0, 0)
    assert read_served_values(con, files, {"rate": "number"}, *window()).num_rows == 36


def test_upgrade_rewrites_old_files_in_place_as_the_writer_would(tmp_path: Path) -> None:
    """`featurehub serving-log upgrade`: format 1 files become format 2, read as before and
    as the files the writer writes; format 2 files are left alone; a second run has nothing
    to do."""
    repo = make_repo(tmp_path / "repo")
    with (repo / "featurehub.yaml").open("a") as config:
        config.write("serving_log:\n  root: logs\n")
    mixed = write(repo / "logs", "12")
    before = served_rows(mixed)
    typed_files = set(LogFiles.of(mixed).typed)
    stamps = {path: path.stat().st_mtime_ns for path in typed_files}
    upgraded = CliRunner().invoke(app, ["-r", str(repo), "serving-log", "upgrade"])
    assert upgraded.exit_code == 0, upgraded.output
    assert "Upgraded 1 files (18 rows)" in upgraded.output
    files = log_files(repo / "logs", "svc", *window())
    assert set(files) == set(mixed) and not LogFiles.of(files).json
    assert {path: path.stat().st_mtime_ns for path in typed_files} == stamps
    assert served_rows(files) == before == served_rows(write(tmp_path / "new", "2"))
    assert not list((repo / "logs").rglob("*.tmp"))
    again = CliRunner().invoke(app, ["-r", str(repo), "serving-log", "upgrade"])
    assert "Upgraded 0 files" in again.output
