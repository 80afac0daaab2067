import dataclasses
from pathlib import Path

import pyarrow as pa
import pytest

from featurehub.errors import ValidationError
from featurehub.repo.loader import load_repo
from featurehub.repo.validate import SourceCheck, check_view_source, drifted_views, validate_repo
from featurehub.types import Int64, String
from tests.repos import DRIVER_DEFS, driver_table, make_repo


def problems_of(tmp_path: Path, defs: str = DRIVER_DEFS, table: pa.Table | None = None) -> str:
    repo = make_repo(tmp_path, files={"defs.py": defs}, data={"drivers": table or driver_table()})
    with pytest.raises(ValidationError) as caught:
        validate_repo(load_repo(repo), repo)
    assert "nothing was applied" in str(caught.value)
    return "\n".join(caught.value.problems)


def test_valid_repo_gets_join_key_types(repo: Path) -> None:
    catalog = validate_repo(load_repo(repo), repo)
    assert catalog.entity("driver").key_types == {"driver_id": Int64}


def test_missing_source_file(tmp_path: Path) -> None:
    found = problems_of(tmp_path, DRIVER_DEFS.replace("data/drivers.parquet", "data/nope.parquet"))
    assert "source 'nope': no Parquet file at 'data/nope.parquet'" in found
    assert "fix path=" in found


def test_missing_timestamp_column(tmp_path: Path) -> None:
    found = problems_of(tmp_path, table=driver_table().drop(["event_timestamp"]))
    assert "timestamp_field 'event_timestamp' is not a column of the source" in found
    assert "set timestamp_field=" in found


def test_timestamp_column_of_wrong_type(tmp_path: Path) -> None:
    table = driver_table()
    table = table.set_column(2, "created", pa.array(["x"] * table.num_rows))
    found = problems_of(tmp_path, table=table)
    assert "created_timestamp_field 'created' has type string, not a timestamp" in found


def test_missing_join_key(tmp_path: Path) -> None:
    found = problems_of(tmp_path, table=driver_table().drop(["driver_id"]))
    assert "join key 'driver_id' of entity 'driver' is not a column of source 'drivers'" in found


def test_missing_feature_column_lists_the_columns(tmp_path: Path) -> None:
    found = problems_of(tmp_path, table=driver_table().drop(["trips_today"]))
    assert "feature 'trips_today' is not a column of source 'drivers'" in found
    assert "columns: driver_id, event_timestamp, created, conv_rate, city" in found


def test_incompatible_feature_type(tmp_path: Path) -> None:
    table = driver_table()
    table = table.set_column(4, "trips_today", pa.array([1.5] * table.num_rows))
    found = problems_of(tmp_path, table=table)
    assert "feature 'trips_today' is declared Int64 but the source column has type double" in found
    assert "(e.g. Float64)" in found


def test_every_problem_is_reported_at_once(tmp_path: Path) -> None:
    found = problems_of(tmp_path, table=driver_table().drop(["trips_today", "conv_rate"]))
    assert "'trips_today'" in found and "'conv_rate'" in found


def test_entity_value_type_must_match_the_source(tmp_path: Path) -> None:
    defs = DRIVER_DEFS.replace(
        'join_keys=["driver_id"])', 'join_keys=["driver_id"], value_type=String)'
    ).replace("Float64, Int64", "Float64, Int64, String")
    found = problems_of(tmp_path, defs)
    assert "join key 'driver_id' is int64 in source 'drivers' but entity 'driver' declares" in found


def test_join_key_types_must_agree_across_sources(tmp_path: Path) -> None:
    other = driver_table().set_column(0, "driver_id", pa.array(["a"] * 10))
    defs = (
        DRIVER_DEFS
        + """
other = FeatureView(
    name="other_stats",
    entities=[driver],
    source=ParquetSource(path="data/other.parquet"),
    schema=[Field("conv_rate", Float64)],
)
"""
    )
    repo = make_repo(
        tmp_path, files={"defs.py": defs}, data={"drivers": driver_table(), "other": other}
    )
    with pytest.raises(ValidationError, match="join key 'driver_id' has different types"):
        validate_repo(load_repo(repo), repo)


def test_view_without_entities(tmp_path: Path) -> None:
    found = problems_of(tmp_path, DRIVER_DEFS.replace("entities=[driver],", ""))
    assert "feature view 'driver_stats': entities is empty" in found


def test_csv_and_sql_sources(tmp_path: Path) -> None:
    defs = """
from featurehub import CsvSource, Entity, FeatureView, Field, SqlSource
from featurehub.types import Float64, Int64
driver = Entity(name="driver", join_keys=["driver_id"])
csv = FeatureView(name="from_csv", entities=[driver], source=CsvSource(path="data/d.csv"),
                  schema=[Field("conv_rate", Float64)])
sql = FeatureView(
    name="from_sql", entities=[driver],
    source=SqlSource(name="q", query="SELECT driver_id, event_timestamp, "
                     "conv_rate * 2 AS double_rate FROM 'data/drivers.parquet'"),
    schema=[Field("double_rate", Float64)])
"""
    repo = make_repo(tmp_path, files={"defs.py": defs})
    (repo / "data" / "d.csv").write_text(
        "driver_id,event_timestamp,conv_rate\n1,2026-01-01 00:00:00,0.5\n"
    )
    catalog = validate_repo(load_repo(repo), repo)
    assert set(catalog.feature_views) == {"from_csv", "from_sql"}


def test_broken_sql_source(tmp_path: Path) -> None:
    defs = DRIVER_DEFS.replace(
        'ParquetSource(path="data/drivers.parquet", created_timestamp_field="created")',
        'SqlSource(name="q", query="SELECT * FROM no_such_table")',
    ).replace("ParquetSource", "ParquetSource, SqlSource")
    found = problems_of(tmp_path, defs)
    assert "source 'q' cannot be read" in found and "no_such_table" in found


TRANSFORMED = DRIVER_DEFS.replace(
    'schema=[Field("conv_rate", Float64), Field("trips_today", Int64)],',
    '''transformation="""SELECT driver_id, event_timestamp, created,
        conv_rate * 100 AS conv_pct FROM source WHERE trips_today > 2""",
    schema=[Field("conv_pct", Float64)],''',
)


def test_transformation_output_is_validated(tmp_path: Path) -> None:
    repo = make_repo(tmp_path, files={"defs.py": TRANSFORMED})
    catalog = validate_repo(load_repo(repo), repo)
    assert catalog.feature_view("driver_stats").transformation is not None


def test_transformation_missing_feature(tmp_path: Path) -> None:
    defs = TRANSFORMED.replace('Field("conv_pct", Float64)', 'Field("conv_pct2", Float64)')
    found = problems_of(tmp_path, defs)
    assert "feature 'conv_pct2' is not a column of its transformation's output" in found
    assert "conv_pct" in found


def test_broken_transformation_names_the_view(tmp_path: Path) -> None:
    found = problems_of(tmp_path, TRANSFORMED.replace("trips_today > 2", "no_column > 2"))
    assert "feature view 'driver_stats': its transformation cannot run" in found
    assert "no_column" in found


def test_a_shared_source_problem_is_reported_once(tmp_path: Path) -> None:
    defs = DRIVER_DEFS.replace("data/drivers.parquet", "data/nope.parquet") + (
        '\nagain = FeatureView(name="again", entities=[driver], source=stats.source,'
        ' schema=[Field("conv_rate", Float64)])\n'
    )
    found = problems_of(tmp_path, defs)
    assert found.count("no Parquet file") == 1


def test_a_source_no_view_uses_must_be_readable(tmp_path: Path) -> None:
    defs = DRIVER_DEFS + '\nspare = ParquetSource(name="spare", path="data/spare.parquet")\n'
    found = problems_of(tmp_path, defs)
    assert "source 'spare': no Parquet file at 'data/spare.parquet'" in found


def test_check_view_source_uses_the_key_types_apply_recorded(repo: Path) -> None:
    """A registered entity carries the key types apply read from the source; a source whose
    key type changed since is a problem, worded apart from a declared value_type."""
    view = validate_repo(load_repo(repo), repo).feature_view("driver_stats")
    assert check_view_source(view, repo) == SourceCheck([], {"driver_id": Int64})
    entity = view.entities[0].with_key_types({"driver_id": String})
    drifted = dataclasses.replace(view, entities=[entity])
    [problem] = check_view_source(drifted, repo).problems
    assert problem == (
        "feature view 'driver_stats': join key 'driver_id' is int64 in source 'drivers' but "
        "entity 'driver' has key type String (recorded by apply); fix one of them"
    )


def test_drifted_views_name_each_problem_and_the_fix(tmp_path: Path) -> None:
    repo = make_repo(tmp_path)
    catalog = validate_repo(load_repo(repo), repo)
    assert drifted_views(catalog.feature_views.values(), repo) == {}
    make_repo(tmp_path, data={"drivers": driver_table().drop(["conv_rate", "trips_today"])})
    error = drifted_views(catalog.feature_views.values(), repo)["driver_stats"]
    assert len(error.problems) == 2
    text = str(error)
    assert text.startswith(
        "feature view 'driver_stats' no longer matches its source, nothing was materialized: "
        "(1) feature view 'driver_stats': feature 'conv_rate' is not a column of source"
    )
    assert " (2) feature view 'driver_stats': feature 'trips_today' is not a column" in text
    assert text.endswith("fix the source, or change the definition and run `featurehub apply`")
