"""get_historical_features through the FeatureStore: inputs, outputs and bad input."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from featurehub import FeatureStore
from featurehub.errors import NotFoundError
from featurehub.offline.retrieval import RetrievalError
from tests.repos import BASE


@pytest.fixture
def materialized(store: FeatureStore) -> FeatureStore:
    results = store.materialize(BASE, BASE + timedelta(days=1))
    assert [(r.view, r.rows_written) for r in results] == [("driver_stats", 10)]
    return store


def entity_rows() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "driver_id": [1000, 1001, 1000, 9999, 1000],
            "event_timestamp": pd.to_datetime(
                [BASE + timedelta(hours=h) for h in (3.5, 4.5, 3.5, 5, -1)]
            ),
            "label": [1, 0, 1, 0, 1],
        }
    )


def test_point_in_time_values_and_row_order(materialized: FeatureStore) -> None:
    # driver 1000 has rows at hours 0, 3, 6, 9 (created 5 minutes later); 1001 at 1, 4, 7.
    frame = materialized.get_historical_features(
        entity_rows(), ["driver_stats:trips_today", "driver_stats:conv_rate"]
    ).to_pandas()
    assert list(frame.columns) == [
        "driver_id",
        "event_timestamp",
        "label",
        "trips_today",
        "conv_rate",
    ]
    assert frame["label"].tolist() == [1, 0, 1, 0, 1]
    assert frame["trips_today"].tolist()[:3] == [3, 4, 3]
    assert frame["trips_today"].isna().tolist() == [False, False, False, True, True]


def test_created_cutoff_hides_values_not_yet_known(materialized: FeatureStore) -> None:
    # At 3:02 the 3:00 row exists but was created at 3:05: the 0:00 row is what was known.
    rows = pd.DataFrame(
        {"driver_id": [1000], "event_timestamp": [BASE + timedelta(hours=3, minutes=2)]}
    )
    strict = materialized.get_historical_features(rows, ["driver_stats:trips_today"])
    assert strict.to_pandas()["trips_today"].tolist() == [0]
    leaky = materialized.get_historical_features(
        rows, ["driver_stats:trips_today"], created_cutoff=False
    )
    assert leaky.to_pandas()["trips_today"].tolist() == [3]


def test_inputs_service_full_names_and_outputs(materialized: FeatureStore, tmp_path: Path) -> None:
    rows = entity_rows()
    by_service = materialized.get_historical_features(
        pa.Table.from_pandas(rows), "driver_service", full_feature_names=True
    ).to_arrow()
    assert by_service.column_names[-2:] == ["driver_stats__conv_rate", "driver_stats__trips_today"]
    rows.to_parquet(tmp_path / "entities.parquet")
    from_path = materialized.get_historical_features(
        str(tmp_path / "entities.parquet"), ["driver_stats:trips_today"]
    )
    written = from_path.to_parquet(tmp_path / "out" / "train.parquet")
    assert pd.read_parquet(written)["trips_today"].tolist()[:3] == [3, 4, 3]


def test_an_entity_query_reads_the_repos_files(materialized: FeatureStore) -> None:
    entities = materialized.repo_path / "data" / "entities.parquet"
    entity_rows().to_parquet(entities)
    by_sql = materialized.get_historical_features(
        f"SELECT * FROM '{entities}' WHERE label = 1", ["driver_stats:trips_today"]
    )
    assert by_sql.to_pandas()["trips_today"].tolist()[:2] == [3, 3]
    with_cte = materialized.get_historical_features(
        f"WITH e AS (FROM read_parquet('{materialized.repo_path}/data/entit*.parquet') "
        "WHERE label IS NOT NULL) SELECT * FROM e;",
        ["driver_stats:trips_today"],
    )
    assert with_cte.to_pandas()["trips_today"].tolist()[:3] == [3, 4, 3]


def test_an_entity_query_cannot_write_or_leave_the_repo(
    materialized: FeatureStore, tmp_path: Path
) -> None:
    repo = materialized.repo_path
    entities = repo / "data" / "entities.parquet"
    entity_rows().to_parquet(entities)
    outside = tmp_path / "outside.parquet"
    entity_rows().to_parquet(outside)
    features = ["driver_stats:trips_today"]
    for target in (tmp_path / "stolen.csv", repo / "data" / "stolen.csv"):
        query = f"COPY (SELECT * FROM '{entities}') TO '{target}'"
        with pytest.raises(RetrievalError, match="must be one SELECT statement, not COPY"):
            materialized.get_historical_features(query, features)
        assert not target.exists()
    two = f"SELECT * FROM '{entities}'; ATTACH '{repo / 'x.db'}'"
    with pytest.raises(RetrievalError, match="one SELECT statement, not SELECT, ATTACH"):
        materialized.get_historical_features(two, features)
    refused = [
        f"SELECT * FROM '{outside}'",
        f"SELECT * FROM '{repo}/../outside.parquet'",
        "SELECT * FROM read_csv('/etc/passwd')",
        "SELECT * FROM 'https://example.com/entities.parquet'",
        f"SELECT * FROM read_parquet('{entities}') UNION ALL SELECT * FROM '{outside}'",
    ]
    for query in refused:
        with pytest.raises(RetrievalError, match=r"refused .* only files inside the repo"):
            materialized.get_historical_features(query, features)
    for query, kind in [("INSTALL httpfs", "LOAD"), ("SET enable_external_access = 1", "SET")]:
        with pytest.raises(RetrievalError, match=f"one SELECT statement, not {kind}"):
            materialized.get_historical_features(query, features)
    # What the message suggests for other files works: pass them as a path or a DataFrame.
    frame = materialized.get_historical_features(str(outside), features).to_pandas()
    assert frame["trips_today"].tolist()[:3] == [3, 4, 3]


def test_other_timestamp_column(materialized: FeatureStore) -> None:
    rows = entity_rows().rename(columns={"event_timestamp": "requested_at"})
    frame = materialized.get_historical_features(
        rows, ["driver_stats:trips_today"], timestamp_column="requested_at"
    ).to_pandas()
    assert frame["trips_today"].tolist()[:3] == [3, 4, 3]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda df: df.drop(columns=["driver_id"]), "no column 'driver_id', the join key"),
        (lambda df: df.drop(columns=["event_timestamp"]), "no timestamp column 'event_timestamp'"),
        (
            lambda df: df.assign(driver_id=df["driver_id"].astype(str)),
            "column 'driver_id' has type (large_)?string but entity 'driver' keys are Int64",
        ),
        (
            lambda df: df.assign(event_timestamp=df["event_timestamp"].astype(str)),
            "has type (large_)?string, not a timestamp.*pd.to_datetime",
        ),
    ],
)
def test_bad_entity_rows_fail_before_the_join(
    materialized: FeatureStore, change: object, message: str
) -> None:
    with pytest.raises(RetrievalError, match=message):
        materialized.get_historical_features(change(entity_rows()), ["driver_stats:conv_rate"])  # type: ignore[operator]


def test_missing_keys_say_drop_or_fill_and_the_fixes_work(materialized: FeatureStore) -> None:
    rows = entity_rows().assign(driver_id=[1000, float("nan"), 1000, 9999, 1000])
    with pytest.raises(RetrievalError, match=r"1 row\(s\) have no key \(NaN\).*dropna") as error:
        materialized.get_historical_features(rows, ["driver_stats:trips_today"])
    assert "astype('Int64')" in str(error.value)
    dropped = rows.dropna(subset=["driver_id"]).assign(
        driver_id=lambda df: df["driver_id"].astype("int64")
    )
    frame = materialized.get_historical_features(dropped, ["driver_stats:trips_today"]).to_pandas()
    assert frame["trips_today"].tolist()[:2] == [3, 3]
    kept = rows.assign(driver_id=rows["driver_id"].astype("Int64"))
    frame = materialized.get_historical_features(kept, ["driver_stats:trips_today"]).to_pandas()
    assert frame["trips_today"].isna().tolist() == [False, True, False, True, True]


def test_a_date_column_is_midnight_utc(materialized: FeatureStore) -> None:
    # BASE is midnight: driver 1000's 0:00 row counts at the day's first instant, the next
    # day sees the last row of each driver (9:00 for 1000, 7:00 for 1001).
    day = BASE.date()
    rows = pd.DataFrame(
        {"driver_id": [1000, 1001, 1000], "day": [day, day, day + timedelta(days=1)]}
    )
    frame = materialized.get_historical_features(
        rows, ["driver_stats:trips_today"], timestamp_column="day", created_cutoff=False
    ).to_arrow()
    assert frame.column("trips_today").to_pylist() == [0, None, 9]
    assert (
        frame.column("day").to_pylist() == rows["day"].tolist()
    )  # the column comes back as it went in


def test_duplicate_columns_name_the_fix(materialized: FeatureStore) -> None:
    rows = pd.concat([entity_rows(), entity_rows()[["label"]]], axis=1)
    with pytest.raises(RetrievalError, match=r"duplicate column\(s\) \['label'\].*duplicated"):
        materialized.get_historical_features(rows, ["driver_stats:trips_today"])
    table = pa.table([pa.array([1000]), pa.array([1000])], names=["driver_id", "driver_id"])
    with pytest.raises(RetrievalError, match=r"duplicate column\(s\) \['driver_id'\]"):
        materialized.get_historical_features(table, ["driver_stats:trips_today"])


def test_keys_beyond_int64_are_refused_as_the_server_refuses_them(
    materialized: FeatureStore,
) -> None:
    rows = entity_rows().assign(driver_id=np.array([1000, 2**64 - 1, 1000, 9, 1000], np.uint64))
    with pytest.raises(RetrievalError, match="holds 18446744073709551615, beyond the range"):
        materialized.get_historical_features(rows, ["driver_stats:trips_today"])
    small = entity_rows().assign(driver_id=entity_rows()["driver_id"].astype("uint64"))
    frame = materialized.get_historical_features(small, ["driver_stats:trips_today"]).to_pandas()
    assert frame["trips_today"].tolist()[:3] == [3, 4, 3]


@pytest.mark.parametrize(
    ("features", "message"),
    [
        (["driver_stats:conv_rat"], "no feature 'conv_rat'.*'conv_rate'"),
        (["driver_stat:conv_rate"], "unknown feature view 'driver_stat'.*'driver_stats'"),
        ("driver_servic", "unknown feature service 'driver_servic'.*'driver_service'"),
    ],
)
def test_unknown_features_suggest_names(
    materialized: FeatureStore, features: object, message: str
) -> None:
    with pytest.raises((NotFoundError, ValueError), match=message):
        materialized.get_historical_features(entity_rows(), features)  # type: ignore[arg-type]


def test_view_never_materialized_says_to_materialize(store: FeatureStore) -> None:
    with pytest.raises(RetrievalError, match="no offline data yet; materialize it first"):
        store.get_historical_features(entity_rows(), ["driver_stats:conv_rate"])


def test_materializing_again_does_not_duplicate(materialized: FeatureStore) -> None:
    materialized.materialize(BASE, BASE + timedelta(days=1))
    relation = materialized.offline_store.relation(materialized.get_feature_view("driver_stats"))
    import duckdb

    assert duckdb.sql(f"SELECT count(*) FROM {relation}").fetchall() == [(10,)]
