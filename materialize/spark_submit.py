"""The incremental materialization as a spark-submit application, for a Spark cluster:

    spark-submit --master spark://HOST:7077 --conf spark.executor.memory=4g \\
        materialize/spark_submit.py [--view NAME ...]

The repo is FEATUREHUB_REPO (default /repo). Whatever spark-submit was given (--master,
--conf, --packages, a YARN or Kubernetes master) is what the run uses: the Spark engine's
session is made in this process, so the master spark-submit set is passed to featurehub
(FEATUREHUB_SPARK_MASTER) in place of featurehub.yaml's `spark.master`, and the engine is
Spark whatever the file says. Executors import featurehub (they write online rows): it must
be installed on them, as in materialize/Dockerfile's image. Client deploy mode (standalone
clusters run Python applications only so).

Prints the JSON summary of materialize/run.py, with the master used; exits 1 when a view
failed.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # run.py beside this file

from run import incremental_run


def submitted_master() -> str:
    """The master spark-submit was given: its session's, made here from spark-submit's
    settings (featurehub's engine then takes this session over, setting its own SQL
    options on it)."""
    from pyspark.sql import SparkSession

    return str(SparkSession.builder.getOrCreate().sparkContext.master)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--view", action="append", default=[], help="Only this view.")
    args = parser.parse_args(argv)
    master = submitted_master()
    os.environ["FEATUREHUB_ENGINE"] = "spark"
    os.environ["FEATUREHUB_SPARK_MASTER"] = master
    summary = incremental_run(os.environ.get("FEATUREHUB_REPO", "/repo"), args.view)
    print(json.dumps({"spark_master": master, **summary}, indent=2))
    return 1 if summary["failures"] else 0


if __name__ == "__main__":
    sys.exit(main())
