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


def test_spark_submit_entry_point_runs_on_the_master_spark_submit_was_given(repo: Path) -> None:
    import pyspark

    spark_home = Path(pyspark.__file__).parent
    env = {
        **os.environ,
        "FEATUREHUB_REPO": str(repo),
        "SPARK_HOME": str(spark_home),
        "SPARK_LOCAL_IP": "127.0.0.1",
        "PYSPARK_PYTHON": sys.executable,
        "PYSPARK_DRIVER_PYTHON": sys.executable,
        "PYTHONPATH": str(ROOT),
    }
    subprocess.run([sys.executable, "-m", "featurehub", "apply"], env=env, check=True)
    done = subprocess.run(
        [
            str(spark_home / "bin" / "spark-submit"),
            "--master",
            "local[1]",
            str(ROOT / "materialize" / "spark_submit.py"),
            "--view",
            "driver_stats",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    summary = json.loads(done.stdout[done.stdout.index("{") :])
    assert summary["spark_master"] == "local[1]"
    assert summary["failures"] == {}
    [result] = summary["results"]
    assert result["view"] == "driver_stats" and result["rows_written"] == 10
    runs = subprocess.run(
        [sys.executable, "-m", "featurehub", "runs", "--json"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    assert [r["engine"] for r in json.loads(runs.stdout)] == ["spark"]
