"""A save killed at any step (SIGKILL, no cleanup) leaves nothing or everything visible, and
the name stays free until the dataset is whole; the next save of it succeeds."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from featurehub import FeatureStore

ROOT = Path(__file__).parents[2]


def save_in_child(repo: Path, name: str, kill_at: str | None) -> subprocess.CompletedProcess:
    env = {key: value for key, value in os.environ.items() if key != "FEATUREHUB_KILL_AT"}
    if kill_at:
        env["FEATUREHUB_KILL_AT"] = kill_at
    entities = str(repo / "data" / "entities.parquet")
    return subprocess.run(
        [sys.executable, "-m", "featurehub", "-r", str(repo), "datasets", "save", name,
         "--entities", entities, "--service", "driver_service"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip


@pytest.mark.parametrize("kill_at", ["dataset_staged", "dataset_sealed", "dataset_published"])
def test_a_kill_at_any_step_leaves_nothing_or_everything(dataset_repo: Path, kill_at: str) -> None:
    killed = save_in_child(dataset_repo, "killed", kill_at)
    assert killed.returncode == -9, killed.stderr
    with FeatureStore(dataset_repo) as store:
        if kill_at == "dataset_published":
            [dataset] = store.datasets.list()
            assert dataset.to_arrow().num_rows == 5  # whole: every file matches its sha256
            again = save_in_child(dataset_repo, "killed", None)
            assert again.returncode == 1 and "already saved" in again.stderr
            return
        assert store.datasets.list() == []
        with pytest.raises(KeyError):
            store.get_dataset("killed")
    done = save_in_child(dataset_repo, "killed", None)
    assert done.returncode == 0, done.stderr
    with FeatureStore(dataset_repo) as store:
        [dataset] = store.datasets.list()
        assert dataset.to_arrow().num_rows == 5
