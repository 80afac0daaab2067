"""`featurehub datasets save|list|describe` through typer's runner, on both registries."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from featurehub import FeatureStore
from featurehub.cli import app

runner = CliRunner()


def run(repo: Path, *args: str) -> tuple[int, str]:
    result = runner.invoke(app, ["--repo", str(repo), "datasets", *args])
    return result.exit_code, result.output


def test_save_list_and_describe(dataset_repo: Path) -> None:
    entities = str(dataset_repo / "data" / "entities.parquet")
    code, out = run(
        dataset_repo, "save", "by_features", "--entities", entities,
        "--features", "driver_stats:conv_rate", "-f", "driver_stats:trips_today",
        "--description", "two features",
    )  # fmt: skip
    assert code == 0, out
    assert "Saved dataset by_features: 5 rows, 2 features" in out
    query = f"SELECT * FROM '{entities}' WHERE driver_id <> 1003"
    code, out = run(
        dataset_repo, "save", "by_service", "--entities", query, "--service", "driver_service",
        "--no-created-cutoff",
    )  # fmt: skip
    assert code == 0, out

    code, out = run(dataset_repo, "list", "--json")
    assert code == 0, out
    listed = json.loads(out)
    assert [d["name"] for d in listed] == ["by_service", "by_features"]
    assert [d["row_count"] for d in listed] == [4, 5]
    assert [d["created_cutoff"] for d in listed] == [False, True]
    assert listed[0]["feature_service"] == "driver_service"
    assert "profile" not in listed[0]
    code, out = run(dataset_repo, "list")
    assert code == 0 and "by_service" in out and "by_features" in out

    code, out = run(dataset_repo, "describe", "by_features", "--json")
    assert code == 0, out
    described = json.loads(out)
    assert described["description"] == "two features"
    assert described["features"] == ["driver_stats:conv_rate", "driver_stats:trips_today"]
    conv = described["profile"]["conv_rate"]
    assert conv["kind"] == "number" and conv["null_rate"] == 0.2
    assert sum(conv["bin_counts"]) == 4 and len(conv["bin_counts"]) == len(conv["bin_edges"]) + 1
    with FeatureStore(dataset_repo) as store:
        assert described["fingerprint"] == store.get_dataset("by_features").fingerprint
    code, out = run(dataset_repo, "describe", "by_features")
    assert code == 0 and "conv_rate" in out and "fingerprint" in out


def test_errors_are_one_line(dataset_repo: Path) -> None:
    entities = str(dataset_repo / "data" / "entities.parquet")
    save = ("save", "once", "--entities", entities, "--service", "driver_service")
    assert run(dataset_repo, *save)[0] == 0
    cases = [
        (save, "already saved"),
        (("describe", "onse"), "Did you mean 'once'"),
        (("save", "bad-name", "--entities", entities, "-s", "driver_service"), "is invalid"),
        (("save", "x", "--entities", entities), "either --features"),
        (("save", "x", "--entities", entities, "-s", "driver_service", "-f", "a:b"), "either"),
        (("save", "x", "--entities", "missing.parquet", "-s", "driver_service"), "does not exist"),
        (("save", "x", "--entities", f"SELECT * FROM '{entities}' LIMIT 0", "-s",
          "driver_service"), "nothing to save"),
    ]  # fmt: skip
    for args, message in cases:
        code, out = run(dataset_repo, *args)
        assert code == 1, (args, out)
        assert out.startswith("error:") and message in out, (args, out)
        assert len(out.strip().splitlines()) == 1, out
