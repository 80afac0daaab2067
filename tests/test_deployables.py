"""The deployables' entry points run against a real repo."""

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).parents[1]


def test_materialize_entry_point_runs_every_view(repo: Path) -> None:
    env = {**os.environ, "FEATUREHUB_REPO": str(repo)}
    subprocess.run([sys.executable, "-m", "featurehub", "apply"], env=env, check=True)
    done = subprocess.run(
        [sys.executable, str(ROOT / "materialize" / "run.py")],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    assert summary["failures"] == {}
    assert [r["view"] for r in summary["results"]] == ["driver_stats"]
    assert summary["results"][0]["rows_written"] == 10
