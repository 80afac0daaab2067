"""Reading sources: paths outside the repo are read only on purpose, and the read-only
connection entity queries run on."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pyarrow.parquet as pq
import pytest

from featurehub import FeatureStore
from featurehub.definitions import CsvSource, DataSource, ParquetSource
from featurehub.errors import ValidationError
from featurehub.offline.source_reader import (
    SourceError,
    read_only_connection,
    relation_sql,
    source_schema,
)
from tests.repos import DRIVER_DEFS, driver_table, make_repo


@pytest.fixture
def layout(tmp_path: Path) -> tuple[Path, Path]:
    """A repo, and a folder beside it holding the same Parquet file and a CSV."""
    repo = make_repo(tmp_path / "repo")
    lake = tmp_path / "lake"
    lake.mkdir()
    pq.write_table(driver_table(), lake / "drivers.parquet")
    (lake / "drivers.csv").write_text("driver_id,event_timestamp\n1,2026-01-01 00:00:00\n")
    return repo, lake


def test_paths_inside_the_repo_are_read(layout: tuple[Path, Path]) -> None:
    repo, _ = layout
    for path in ("data/drivers.parquet", "data", str(repo / "data" / "drivers.parquet")):
        assert "driver_id" in source_schema(ParquetSource(path=path), repo).names


@pytest.mark.parametrize(
    "path", ["{lake}/drivers.parquet", "../lake/drivers.parquet", "data/../../lake/drivers.parquet"]
)
def test_paths_outside_the_repo_need_allow_outside_repo(
    layout: tuple[Path, Path], path: str
) -> None:
    repo, lake = layout
    path = path.format(lake=lake)
    with pytest.raises(SourceError, match="outside the feature repo.*allow_outside_repo=True"):
        relation_sql(ParquetSource(path=path), repo)
    allowed = ParquetSource(path=path, allow_outside_repo=True)
    assert "conv_rate" in source_schema(allowed, repo).names


def test_csv_sources_follow_the_same_rule(layout: tuple[Path, Path]) -> None:
    repo, lake = layout
    with pytest.raises(SourceError, match="CsvSource to read it from there on purpose"):
        relation_sql(CsvSource(path=str(lake / "drivers.csv")), repo)
    allowed = CsvSource(path=str(lake / "drivers.csv"), allow_outside_repo=True)
    assert source_schema(allowed, repo).names == ["driver_id", "event_timestamp"]


def test_urls_are_read_as_given(layout: tuple[Path, Path]) -> None:
    repo, _ = layout
    assert "s3://bucket/drivers" in relation_sql(ParquetSource(path="s3://bucket/drivers"), repo)


def test_the_option_is_in_the_spec_only_when_set() -> None:
    plain = ParquetSource(path="data/x.parquet")
    assert "allow_outside_repo" not in plain.to_spec()  # registered specs stay equal
    allowed = ParquetSource(path="/lake/x.parquet", allow_outside_repo=True)
    assert allowed.to_spec()["allow_outside_repo"] is True
    assert DataSource.from_spec(allowed.to_spec()) == allowed
    assert DataSource.from_spec(plain.to_spec()) == plain


def test_apply_refuses_a_source_outside_the_repo(layout: tuple[Path, Path]) -> None:
    repo, lake = layout
    outside = DRIVER_DEFS.replace('path="data/drivers.parquet"', f'path="{lake}/drivers.parquet"')
    (repo / "defs.py").write_text(outside)
    with FeatureStore(repo) as store:
        with pytest.raises(ValidationError, match="outside the feature repo"):
            store.apply()
        (repo / "defs.py").write_text(outside.replace('path="', 'allow_outside_repo=True, path="'))
        store.apply()
        assert store.get_feature_view("driver_stats").source.allow_outside_repo  # type: ignore[attr-defined]


def test_the_read_only_connection(layout: tuple[Path, Path]) -> None:
    repo, lake = layout
    con = read_only_connection(repo)
    try:
        assert con.sql(f"SELECT count(*) FROM '{repo}/data/drivers.parquet'").fetchall() == [(10,)]
        for query in (
            f"SELECT * FROM '{lake}/drivers.parquet'",
            f"COPY (SELECT 1) TO '{lake}/out.csv'",
            "LOAD httpfs",
        ):
            with pytest.raises(duckdb.PermissionException):
                con.sql(query)
        with pytest.raises(duckdb.InvalidInputException, match="locked"):
            con.sql("SET enable_external_access = true")
    finally:
        con.close()
    assert not (lake / "out.csv").exists()
