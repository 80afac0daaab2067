"""The distribution check on the real path: materialize, serve with the SDK's serving log,
save the training set, check; then shift the source and see the check fail."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from featurehub import FeatureStore
from featurehub.cli import app
from featurehub.skew.distribution import DriftThresholds
from featurehub.skew.distribution_check import SkewCheckError, check_distribution
from tests.repos import make_repo

DRIVERS = 600
DEFS = """
from featurehub import Entity, FeatureService, FeatureView, Field, ParquetSource
from featurehub.types import Bool, Float64, String

driver = Entity(name="driver", join_keys=["driver_id"])
stats = FeatureView(
    name="driver_stats",
    entities=[driver],
    source=ParquetSource(path="data/drivers.parquet"),
    schema=[Field("conv_rate", Float64), Field("city", String), Field("active", Bool)],
)
service = FeatureService(name="dispatch", features=[stats])
"""
THRESHOLDS = DriftThresholds(min_rows=200)


def source(at: datetime, shift: float, seed: int) -> pa.Table:
    rng = np.random.default_rng(seed)
    cities = ["north", "south", "east"] if not shift else ["west", "south", "west"]
    return pa.table(
        {
            "driver_id": pa.array(range(DRIVERS), pa.int64()),
            "event_timestamp": pa.array([at] * DRIVERS, pa.timestamp("us", tz="UTC")),
            "conv_rate": rng.normal(0.5 + shift, 0.1, DRIVERS),
            "city": [cities[i % 3] for i in range(DRIVERS)],
            "active": [bool(i % 4) for i in range(DRIVERS)],
        }
    )


def serve(store: FeatureStore) -> None:
    rows = pd.DataFrame({"driver_id": range(DRIVERS)})
    for start in range(0, DRIVERS, 100):  # requests of 100 entity rows, as a service sends
        store.get_online_features("dispatch", rows.iloc[start : start + 100], log=True)


def test_a_healthy_service_passes_and_a_shifted_source_fails(tmp_path: Path) -> None:
    now = datetime.now(timezone.utc)
    repo = make_repo(
        tmp_path / "repo",
        files={"defs.py": DEFS},
        data={"drivers": source(now - timedelta(hours=2), 0.0, seed=1)},
    )
    with (repo / "featurehub.yaml").open("a") as config:
        config.write("monitoring:\n  min_rows: 200\n")
    with FeatureStore(repo) as store:
        store.apply()
        store.materialize_incremental()
        entities = pd.DataFrame({"driver_id": range(DRIVERS), "event_timestamp": now})
        dataset = store.get_historical_features(entities, "dispatch").save("dispatch_training")
        log_root = store.config.serving_log_root
        first = datetime.now(timezone.utc)
        serve(store)
    with FeatureStore(repo) as store:  # the log of the first store is committed (closed)
        second = datetime.now(timezone.utc)
        result = check_distribution(log_root, "dispatch", dataset, first, second, THRESHOLDS)
        assert result.served_rows == DRIVERS and result.passed, result.to_pandas()
        by_name = {drift.feature: drift for drift in result.features}
        assert set(by_name) == {"conv_rate", "city", "active"}
        assert by_name["conv_rate"].psi == pytest.approx(0.0, abs=1e-9)  # the same values
        assert by_name["city"].js_distance == pytest.approx(0.0, abs=1e-9)
        assert by_name["active"].js_distance == pytest.approx(0.0, abs=1e-9)
    runner = CliRunner()
    base = ["-r", str(repo), "skew", "dispatch", "--against", "dispatch_training"]
    healthy = runner.invoke(app, [*base, "--start", first.isoformat(), "--end", second.isoformat()])
    assert healthy.exit_code == 0, healthy.output
    assert "skew check passed" in healthy.output
    with FeatureStore(repo) as store:
        # Upstream changes after training: conversion up, cities renamed.
        shifted = source(now - timedelta(hours=1), 0.3, seed=2)
        table = pa.concat_tables([pq.read_table(repo / "data" / "drivers.parquet"), shifted])
        pq.write_table(table, repo / "data" / "drivers.parquet")
        store.materialize(now - timedelta(days=1), datetime.now(timezone.utc))
        serve(store)
    third = datetime.now(timezone.utc)
    with FeatureStore(repo) as store:
        result = check_distribution(log_root, "dispatch", dataset, second, third, THRESHOLDS)
        assert not result.passed
        frame = result.to_pandas()
        assert list(frame["feature"][:2]) == ["city", "conv_rate"]  # failing first
        by_name = {drift.feature: drift for drift in result.features}
        assert by_name["conv_rate"].status == "fail" and (by_name["conv_rate"].psi or 0) > 0.25
        assert by_name["city"].status == "fail" and by_name["city"].unseen_share == pytest.approx(
            2 / 3, abs=0.01
        )
        assert by_name["active"].status == "pass"
        json_ready = result.to_dict()
        assert json_ready["passed"] is False and len(json_ready["features"]) == 3
        with pytest.raises(SkewCheckError, match="no logged rows of feature service 'dispatch'"):
            check_distribution(log_root, "dispatch", dataset, third, third + timedelta(1))

    # The command: exit 1 failed, 2 could not run (exit 0 above); thresholds from featurehub.yaml.
    shifted = runner.invoke(
        app, [*base, "--start", second.isoformat(), "--end", third.isoformat(), "--json"]
    )
    assert shifted.exit_code == 1, shifted.output
    report = json.loads(shifted.output)
    assert report["distribution"]["passed"] is False
    assert report["replay"]["passed"] is True  # served what the offline join gives: no skew
    replay_only = runner.invoke(
        app, [*base[:4], "--start", second.isoformat(), "--end", third.isoformat()]
    )
    assert replay_only.exit_code == 0, replay_only.output
    assert "distributions not compared: name a training set with --against" in replay_only.output
    for args, message in (
        ([*base[:3], "nope", "--against", "dispatch_training", "--since", "1h"], "nope"),
        ([*base[:4], "--against", "nope", "--since", "1h"], "nope"),
        (
            [*base, "--start", third.isoformat(), "--end", (third + timedelta(1)).isoformat()],
            "nothing to replay",
        ),
        ([*base], "give the window"),
    ):
        result = runner.invoke(app, args)
        assert result.exit_code == 2, (args, result.output)
        assert message in " ".join(result.output.split()), (args, result.output)
