"""A source that changed after `apply` stops its view's materialization, with apply's message.

Each case applies the driver repo, materializes part of it, then changes the source file the
way a pipeline upstream might (a column's type, a dropped column) and materializes again:
the run must fail with the message `plan` would give, be recorded failed, and leave both
stores as they were.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from featurehub import FeatureStore
from featurehub.engines.runner import MaterializationError
from featurehub.errors import ValidationError
from featurehub.online.base import OnlineRow
from featurehub.repo.loader import load_repo
from featurehub.repo.validate import validate_repo
from tests.repos import BASE, DRIVER_DEFS, driver_table, make_repo

DECLARED_KEY_DEFS = DRIVER_DEFS.replace(
    'join_keys=["driver_id"])', 'join_keys=["driver_id"], value_type=Int64)'
)
OTHER_VIEW = """
other = FeatureView(
    name="other_stats",
    entities=[driver],
    source=ParquetSource(path="data/other.parquet"),
    schema=[Field("conv_rate", Float64)],
)
"""
FEATURES = ["conv_rate", "trips_today"]
# Keys as applied (int) and as a drifted source would spell them (str): a write of either shows.
KEYS = [(1000 + i,) for i in range(3)] + [(str(1000 + i),) for i in range(3)]
FIRST_END = BASE + timedelta(hours=4)
SECOND_END = BASE + timedelta(hours=10)


def _as_strings(table: pa.Table, column: str) -> pa.Table:
    index = table.schema.get_field_index(column)
    return table.set_column(index, column, table.column(column).cast(pa.string()))


DRIFTS: dict[str, Callable[[pa.Table], pa.Table]] = {
    "string column declared Float64": lambda t: _as_strings(t, "conv_rate"),
    "string join key declared Int64": lambda t: _as_strings(t, "driver_id"),
    "string timestamp": lambda t: _as_strings(t, "event_timestamp"),
    "dropped feature column": lambda t: t.drop(["trips_today"]),
    "dropped join key": lambda t: t.drop(["driver_id"]),
    "dropped timestamp column": lambda t: t.drop(["event_timestamp"]),
}


def offline_rows(store: FeatureStore, view: str = "driver_stats") -> pa.Table | None:
    relation = store.offline_store.relation(store.get_feature_view(view))
    if relation is None:
        return None
    query = f"SELECT * FROM {relation} ORDER BY driver_id, event_timestamp"
    rows = duckdb.sql(query)
    assert rows is not None
    return rows.to_arrow_table()


def online_rows(store: FeatureStore, view: str = "driver_stats") -> list[OnlineRow | None]:
    feature_view = store.get_feature_view(view)
    return store.online_store.read(feature_view, KEYS, FEATURES[: len(feature_view.schema)])


def apply_problems(repo: Path) -> list[str]:
    """What `plan`/`apply` say about the repo as it is now."""
    with pytest.raises(ValidationError) as caught:
        validate_repo(load_repo(repo), repo)
    return caught.value.problems


def drift_source(repo: Path, drift: Callable[[pa.Table], pa.Table]) -> None:
    pq.write_table(drift(driver_table()), repo / "data" / "drivers.parquet")


def assert_refused(store: FeatureStore, caught: MaterializationError, problems: list[str]) -> None:
    """The view failed with every apply problem and a fix; its run says the same."""
    error = caught.failures["driver_stats"]
    assert problems and all(problem in error for problem in problems), (error, problems)
    assert "fix the source, or change the definition and run `featurehub apply`" in error
    assert "nothing was materialized" in error
    latest = store.runs("driver_stats")[0]
    assert latest.status == "failed" and (latest.error or "").startswith(error)
    assert latest.rows_written is None


@pytest.mark.parametrize("drift", list(DRIFTS), ids=list(DRIFTS))
def test_materialize_refuses_a_source_that_drifted_after_apply(tmp_path: Path, drift: str) -> None:
    repo = make_repo(tmp_path / "repo", files={"defs.py": DECLARED_KEY_DEFS})
    with FeatureStore(repo) as store:
        store.apply()
        store.materialize_incremental(FIRST_END)
        offline_before, online_before = offline_rows(store), online_rows(store)
        assert offline_before is not None and offline_before.num_rows == 4
        drift_source(repo, DRIFTS[drift])
        problems = apply_problems(repo)

        with pytest.raises(MaterializationError) as caught:
            store.materialize_incremental(SECOND_END)

        assert caught.value.results == []
        assert_refused(store, caught.value, problems)
        assert store.registry.runs(store.project).watermark("driver_stats") == FIRST_END
        assert offline_rows(store) == offline_before
        assert online_rows(store) == online_before


def test_a_key_type_recorded_by_apply_is_checked(tmp_path: Path) -> None:
    """Without value_type, apply reads the key type from the source; a later string key is
    refused against that recorded type (apply itself would now record String)."""
    repo = make_repo(tmp_path / "repo")
    with FeatureStore(repo) as store:
        store.apply()
        drift_source(repo, DRIFTS["string join key declared Int64"])
        with pytest.raises(MaterializationError) as caught:
            store.materialize_incremental(SECOND_END)
        error = caught.value.failures["driver_stats"]
        assert (
            "join key 'driver_id' is string in source 'drivers' but entity 'driver' has key "
            "type Int64 (recorded by apply)" in error
        )
        assert offline_rows(store) is None
        assert online_rows(store) == [None] * len(KEYS)
        assert store.runs()[0].status == "failed"


def test_a_drifted_view_fails_alone(tmp_path: Path) -> None:
    """The others views of the run are materialized; the drifted one publishes nothing."""
    repo = make_repo(
        tmp_path / "repo",
        files={"defs.py": DRIVER_DEFS + OTHER_VIEW},
        data={"drivers": driver_table(), "other": driver_table()},
    )
    with FeatureStore(repo) as store:
        store.apply()
        drift_source(repo, DRIFTS["dropped feature column"])
        problems = apply_problems(repo)
        with pytest.raises(MaterializationError) as caught:
            store.materialize(BASE, SECOND_END)
        assert list(caught.value.failures) == ["driver_stats"]
        assert [r.view for r in caught.value.results] == ["other_stats"]
        assert_refused(store, caught.value, problems)
        assert offline_rows(store) is None and online_rows(store) == [None] * len(KEYS)
        other = offline_rows(store, "other_stats")
        assert other is not None and other.num_rows == 10
        assert {r.view: r.status for r in store.runs()} == {
            "driver_stats": "failed",
            "other_stats": "success",
        }


def test_a_transformation_that_no_longer_runs_is_refused(tmp_path: Path) -> None:
    defs = DRIVER_DEFS.replace(
        'schema=[Field("conv_rate", Float64), Field("trips_today", Int64)],',
        """transformation="SELECT driver_id, event_timestamp, created, "
        "CAST(trips_today AS DOUBLE) AS conv_rate FROM source",
    schema=[Field("conv_rate", Float64)],""",
    )
    repo = make_repo(tmp_path / "repo", files={"defs.py": defs})
    with FeatureStore(repo) as store:
        store.apply()
        drift_source(repo, DRIFTS["dropped feature column"])
        problems = apply_problems(repo)
        assert "its transformation cannot run" in problems[0]
        with pytest.raises(MaterializationError) as caught:
            store.materialize(BASE, SECOND_END)
        assert_refused(store, caught.value, problems)
        assert offline_rows(store) is None


@pytest.mark.spark
def test_the_spark_engine_refuses_a_drifted_source(tmp_path: Path, spark_session: object) -> None:
    repo = make_repo(tmp_path / "repo")
    with FeatureStore(repo) as store:
        store.apply()
        store.materialize_incremental(FIRST_END, engine="spark")
        offline_before, online_before = offline_rows(store), online_rows(store)
        assert offline_before is not None and offline_before.num_rows == 4
        drift_source(repo, DRIFTS["string column declared Float64"])
        problems = apply_problems(repo)

        with pytest.raises(MaterializationError) as caught:
            store.materialize(BASE, SECOND_END, engine="spark")

        assert_refused(store, caught.value, problems)
        assert store.runs()[0].engine == "spark"
        assert offline_rows(store) == offline_before
        assert online_rows(store) == online_before
