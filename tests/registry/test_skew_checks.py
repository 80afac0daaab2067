"""The skew check history in the registry, on SQLite and PostgreSQL: recorded as given, listed
newest first, the latest of a service, and an unknown service named as such."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from featurehub.errors import FeaturehubError, NotFoundError
from featurehub.registry.skew_checks import FailedFeature, SkewCheckLog, SkewHistoryError
from tests.registry.test_registry import store_for
from tests.repos import DRIVER_DEFS

START = datetime(2026, 12, 1, tzinfo=timezone.utc)


def record(log: SkewCheckLog, service: str, day: int, passed: bool) -> None:
    failed = () if passed else (FailedFeature("driver_stats:conv_rate", "replay", "stale 3"),)
    log.record(
        feature_service=service,
        window_start=START + timedelta(days=day),
        window_end=START + timedelta(days=day + 1),
        dataset=None if day % 2 else "training_v1",
        sample=None if day % 2 else 0.5,
        passed=passed,
        rows_served=100 + day,
        failed_features=failed,
        result={"passed": passed, "day": day},
        checked_at=START + timedelta(days=day + 1, minutes=5),
    )


def test_history_is_newest_first_with_a_limit(repo: Path, registry_url: str) -> None:
    store = store_for(repo, registry_url)
    store.apply()
    log = store.skew_checks
    assert log.history("driver_service") == []  # registered, never checked
    assert log.latest("driver_service") is None
    for day in range(5):
        record(log, "driver_service", day, passed=day != 3)
    record(log, "other_service", 9, passed=True)  # another service's checks stay apart
    checks = log.history("driver_service")
    assert [c.result["day"] for c in checks] == [4, 3, 2, 1, 0]
    assert [c.result["day"] for c in log.history("driver_service", limit=2)] == [4, 3]
    failing = checks[1]
    assert (failing.passed, failing.rows_served, failing.dataset, failing.sample) == (
        False,
        103,
        None,
        None,
    )
    assert failing.window_start == START + timedelta(days=3)
    assert failing.window_end == START + timedelta(days=4)
    assert failing.checked_at == START + timedelta(days=4, minutes=5)
    assert failing.failed_features == (
        FailedFeature("driver_stats:conv_rate", "replay", "stale 3"),
    )
    assert checks[0].dataset == "training_v1" and checks[0].sample == 0.5
    latest = log.latest("driver_service")
    assert latest is not None and latest.result == {"passed": True, "day": 4}
    assert latest.to_dict()["failed_features"] == []
    # A service deleted since (or never applied) still shows the checks it had.
    other = log.history("other_service")
    assert [c.result["day"] for c in other] == [9]
    with pytest.raises(SkewHistoryError, match="limit must be 1 or more"):
        log.history("driver_service", limit=0)


def test_an_unknown_service_is_named_with_the_known_ones(repo: Path, registry_url: str) -> None:
    store = store_for(repo, registry_url)
    store.apply()
    with pytest.raises(NotFoundError, match="no feature service named 'driver_servic'") as caught:
        store.skew_checks.history("driver_servic")
    assert "driver_service" in str(caught.value)  # did you mean
    with pytest.raises(NotFoundError, match="featurehub list services"):
        store.skew_checks.latest("nope")


def test_a_changed_threshold_is_a_change_in_the_plan(repo: Path, registry_url: str) -> None:
    store = store_for(repo, registry_url)
    store.apply()
    strict = 'Field("conv_rate", Float64, skew={"psi_fail": 0.1})'
    (repo / "defs.py").write_text(DRIVER_DEFS.replace('Field("conv_rate", Float64)', strict))
    [change] = store.plan().changes
    assert (change.name, change.action) == ("driver_stats", "update")
    assert [(f.path, f.old, f.new) for f in change.fields] == [
        ("schema.conv_rate.skew", None, {"psi_fail": 0.1})
    ]
    assert not store.apply().breaking
    assert store.get_feature_view("driver_stats").feature("conv_rate").skew == {"psi_fail": 0.1}
    looser = strict.replace("0.1", "0.2")
    (repo / "defs.py").write_text(DRIVER_DEFS.replace('Field("conv_rate", Float64)', looser))
    [change] = store.plan().changes
    assert [(f.path, f.old, f.new) for f in change.fields] == [
        ("schema.conv_rate.skew.psi_fail", 0.1, 0.2)
    ]
    (repo / "defs.py").write_text(
        DRIVER_DEFS.replace(
            'Field("conv_rate", Float64)', 'Field("conv_rate", Float64, skew={"psi": 1})'
        )
    )
    with pytest.raises(FeaturehubError, match="field 'conv_rate': skew threshold 'psi' is not a"):
        store.plan()
