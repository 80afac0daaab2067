"""The Spark engine gives the local engine's results, in local mode and on a real cluster."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import duckdb
import pyarrow as pa
import pytest

from featurehub import FeatureStore
from featurehub.config import load_config
from tests.example_repo import END, copy_example_repo
from tests.spark_cluster import standalone_cluster

pytestmark = pytest.mark.spark
START = END - timedelta(days=40)


def store_at(repo: Path, name: str, **env: str) -> FeatureStore:
    """A store on the shared repo whose registry and offline root are its own."""
    overrides = {
        "FEATUREHUB_REGISTRY_URL": f"sqlite:///{repo / name / 'registry.db'}",
        "FEATUREHUB_OFFLINE_ROOT": str(repo / name / "offline"),
        **env,
    }
    store = FeatureStore(config=load_config(repo, env=overrides))
    store.apply()
    return store


def offline_rows(store: FeatureStore, view: str) -> pa.Table:
    feature_view = store.get_feature_view(view)
    relation = store.offline_store.relation(feature_view)
    assert relation is not None
    keys = ", ".join(feature_view.join_keys)
    query = f"SELECT * FROM {relation} ORDER BY {keys}, event_timestamp, created_timestamp"
    return duckdb.sql(query).to_arrow_table()


@pytest.fixture(scope="module")
def example(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return copy_example_repo(tmp_path_factory.mktemp("spark") / "repo")


@pytest.fixture(scope="module")
def local_store(example: Path) -> Iterator[FeatureStore]:
    store = store_at(example, "local")
    store.materialize(START, END + timedelta(hours=1), engine="local")
    yield store
    store.close()


VIEWS = ["driver_stats", "customer_profile", "route_stats", "driver_daily_activity"]


def test_spark_local_mode_writes_what_the_local_engine_writes(
    example: Path, local_store: FeatureStore, spark_session: object
) -> None:
    store = store_at(example, "spark_local")
    results = store.materialize(START, END + timedelta(hours=1), engine="spark")
    assert {r.view for r in results} == set(VIEWS)
    for view in VIEWS:
        expected = offline_rows(local_store, view)
        assert expected.num_rows > 0
        assert offline_rows(store, view).equals(expected), view
    assert {p.name for p in store.config.offline_root.rglob("*") if p.is_file()} <= {
        p.name for p in store.config.offline_root.rglob("*.parquet")
    }


def test_spark_standalone_cluster_writes_what_the_local_engine_writes(
    example: Path, local_store: FeatureStore
) -> None:
    """A master and a worker from the pyspark package; the CLI runs in its own process
    (one JVM holds one Spark context) and picks the cluster from FEATUREHUB_SPARK_MASTER."""
    with standalone_cluster() as master:
        env = {
            **os.environ,
            "FEATUREHUB_REGISTRY_URL": f"sqlite:///{example / 'cluster' / 'registry.db'}",
            "FEATUREHUB_OFFLINE_ROOT": str(example / "cluster" / "offline"),
            "FEATUREHUB_SPARK_MASTER": master,
            "FEATUREHUB_ENGINE": "spark",
        }
        cli = [sys.executable, "-m", "featurehub", "-r", str(example)]
        subprocess.run([*cli, "apply"], env=env, check=True, capture_output=True)
        done = subprocess.run(
            [
                *cli,
                "materialize",
                START.isoformat(),
                (END + timedelta(hours=1)).isoformat(),
                "--json",
            ],
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert done.returncode == 0, done.stderr[-3000:]
    store = FeatureStore(
        config=load_config(
            example,
            env={k: v for k, v in env.items() if k.startswith("FEATUREHUB_")},
        )
    )
    for view in VIEWS:
        assert offline_rows(store, view).equals(offline_rows(local_store, view)), view
    assert {r.engine for r in store.runs()} == {"spark"}
