"""`featurehub models ...` through typer's runner: the whole lifecycle, and clear errors."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq
import skops.io
from typer.testing import CliRunner

from featurehub import FeatureStore
from featurehub.cli import app
from tests.models.conftest import train

runner = CliRunner()


def run(repo: Path, *args: str) -> tuple[int, str]:
    result = runner.invoke(app, ["--repo", str(repo), "models", *args])
    return result.exit_code, result.output


def _artifact(repo: Path, c: float = 1.0) -> str:
    with FeatureStore(repo) as store:
        path = repo / f"model_{c}.skops"
        skops.io.dump(train(store, c=c), path)
    return str(path)


def _register(repo: Path, *extra: str, c: float = 1.0) -> tuple[int, str]:
    return run(
        repo, "register", "driver_model", _artifact(repo, c), "--feature-service",
        "driver_service", "--training-dataset", "train", *extra,
    )  # fmt: skip


def test_lifecycle_from_the_command_line(model_repo: Path) -> None:
    code, out = _register(
        model_repo, "--metric", "accuracy=0.91", "--param", "C=1", "--description", "first"
    )
    assert code == 0, out
    assert "Registered driver_model version 1 (sklearn" in out
    assert "models:/driver_model/1" in out
    assert _register(model_repo, c=0.1)[0] == 0

    code, out = run(model_repo, "gate", "driver_model:1", "--json")
    assert code == 0, out
    gate = json.loads(out)
    assert gate["passed"] is True
    assert [c["name"] for c in gate["checks"]] == [
        "feature service driver_service", "view driver_stats",
    ]  # fmt: skip
    code, out = run(model_repo, "gate", "driver_model:1")
    assert code == 0 and "materialized up to" in out, out
    code, out = run(model_repo, "promote", "driver_model", "1", "--stage", "production")
    assert code == 0 and "driver_model@production -> version 1" in out, out
    code, out = run(model_repo, "promote", "driver_model", "2", "--stage", "production")
    assert code == 0, out
    assert "driver_model@production -> version 2 (was 1)" in out
    assert "driver_model version 1: archived" in out
    code, out = run(model_repo, "alias", "driver_model", "champion", "1")
    assert code == 0 and "driver_model@champion -> version 1" in out, out

    code, out = run(model_repo, "list", "--json")
    assert code == 0, out
    [listed] = json.loads(out)
    assert listed["version"] == 2
    assert listed["aliases"] == {"production": 2, "champion": 1}
    code, out = run(model_repo, "list")
    assert code == 0 and "driver_model" in out

    code, out = run(model_repo, "describe", "driver_model:1")
    assert code == 0, out
    assert "driver_model version 1 (models:/driver_model/1): Archived" in out
    assert "aliases: champion" in out
    assert "metrics: accuracy=0.91" in out and "params: C=1" in out
    assert "signature: (conv_rate Float64, trips_today Int64) -> int64" in out
    assert "feature service driver_service (version 1)" in out
    assert "view driver_stats: conv_rate, trips_today" in out
    assert "source parquet data/drivers.parquet" in out
    assert "training dataset train, 58 rows, sha256" in out
    code, out = run(model_repo, "describe", "models:/driver_model@production", "--json")
    assert code == 0 and json.loads(out)["version"] == 2, out

    code, out = run(model_repo, "rollback", "driver_model", "--reason", "errors up")
    assert code == 0 and "driver_model@production -> version 1 (was 2)" in out, out
    code, out = run(model_repo, "archive", "driver_model", "2")
    assert code == 1 and "already archived" in out, out

    code, out = run(model_repo, "history", "driver_model", "--json")
    assert code == 0, out
    events = json.loads(out)
    assert [e["action"] for e in events] == [
        "promote", "promote", "archive", "alias", "unarchive", "rollback", "archive",
    ]  # fmt: skip
    assert events[5]["reason"] == "errors up"
    code, out = run(model_repo, "history", "driver_model")
    assert code == 0 and "rollback" in out and "errors up" in out

    entities = str(model_repo / "data" / "entities.parquet")
    out_file = model_repo / "scores.parquet"
    code, out = run(model_repo, "score", "driver_model", "--entities", entities, "--out",
                    str(out_file))  # fmt: skip
    assert code == 0 and "Scored 58 rows with driver_model version 1" in out, out
    assert set(pq.read_table(out_file).column("model_version").to_pylist()) == {1}
    code, out = run(model_repo, "score", "driver_model", "--version", "2", "--entities",
                    entities, "--out", str(out_file))  # fmt: skip
    assert code == 0 and "version 2" in out, out


def test_errors_say_what_to_fix(local_repo: Path) -> None:
    code, out = _register(local_repo, "--metric", "accuracy")
    assert code == 1 and "--metric 'accuracy' is not KEY=VALUE" in out
    code, out = run(
        local_repo, "register", "../evil", _artifact(local_repo), "--feature-service",
        "driver_service", "--training-dataset", "train",
    )  # fmt: skip
    assert code == 1 and "error: model name '../evil' is invalid" in out
    code, out = run(local_repo, "describe", "nope")
    assert code == 1 and "no model named 'nope'" in out
    assert _register(local_repo)[0] == 0
    code, out = run(local_repo, "promote", "driver_model", "1", "--stage", "prod")
    assert code == 1 and "unknown stage 'prod'" in out
    code, out = run(local_repo, "promote", "driver_model", "1", "--stage", "production",
                    "--force")  # fmt: skip
    assert code == 1 and "--force needs --reason" in out
    code, out = run(local_repo, "score", "driver_model", "--entities", "x.parquet", "--out",
                    "o.parquet")  # fmt: skip
    assert code == 1 and "has no alias 'production'" in out
    code, out = run(local_repo, "score", "driver_model:1", "--stage", "staging", "--entities",
                    "x.parquet", "--out", "o.parquet")  # fmt: skip
    assert code == 1 and "names a version already" in out
    code, out = run(local_repo, "history", "driver_model")
    assert code == 0
