"""The production gate: metric bounds from featurehub.yaml, the service's signature, its
views' freshness, the newest skew check; a refusal lists every failure with its figures."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from featurehub import FeatureStore
from featurehub.models import GateRefusedError, ModelError
from featurehub.registry.skew_checks import FailedFeature
from tests.models.conftest import build_model_repo, train
from tests.repos import BASE

GATES = """
models:
  gates:
    accuracy: {min: 0.8, max_drop: 0.02}
    latency_p99_ms: {max: 50}
"""


def _register(store: FeatureStore, **metrics: float) -> int:
    version = store.models.register(
        "driver_model", train(store), feature_service="driver_service",
        training_dataset="train", metrics=metrics,
    )  # fmt: skip
    return version.version


@pytest.fixture
def gated(tmp_path: Path) -> Iterator[FeatureStore]:
    repo = build_model_repo(tmp_path / "repo", "sqlite:///data/registry.db", GATES)
    with FeatureStore(repo) as store:
        yield store


def test_metric_bounds_and_drop_against_production(gated: FeatureStore) -> None:
    models = gated.models
    first = _register(gated, accuracy=0.9, latency_p99_ms=20)
    models.promote("driver_model", first, "production")
    worse = _register(gated, accuracy=0.85, latency_p99_ms=70)
    with pytest.raises(GateRefusedError) as refused:
        models.promote("driver_model", worse, "production")
    message = str(refused.value)
    assert "2 of 5 checks failed" in message
    assert "metric accuracy: 0.85 against production version 1's 0.9: a drop of 0.05" in message
    assert "beyond max_drop 0.02" in message
    assert "metric latency_p99_ms: 70 > max 50" in message
    assert "--force --reason" in message
    assert models.get("driver_model@production").version == first
    unmeasured = _register(gated, accuracy=0.95)
    report = models.check_gate(f"driver_model:{unmeasured}")
    assert [c.detail for c in report.failures] == ["not recorded for this version (--metric)"]
    low = _register(gated, accuracy=0.5, latency_p99_ms=10)
    assert "0.5 < min 0.8" in str(models.check_gate(f"driver_model:{low}").failures[0].detail)


def test_force_needs_a_reason_and_is_recorded(gated: FeatureStore) -> None:
    models = gated.models
    version = _register(gated, accuracy=0.5, latency_p99_ms=10)
    with pytest.raises(ModelError, match="--force needs --reason"):
        models.promote("driver_model", version, "production", force=True)
    models.promote("driver_model", version, "production", force=True, reason="hotfix, PM ok")
    event = models.history("driver_model")[-1]
    assert (event.action, event.forced, event.reason) == ("promote", True, "hotfix, PM ok")
    assert event.gate is not None
    failed = [check for check in event.gate if not check["passed"]]
    assert [check["name"] for check in failed] == ["metric accuracy"]
    # Staging has no gate.
    other = _register(gated, accuracy=0.1)
    models.promote("driver_model", other, "staging")


def test_stale_views_fail_the_gate(tmp_path: Path) -> None:
    repo = build_model_repo(
        tmp_path / "repo", "sqlite:///data/registry.db", until=BASE + timedelta(hours=60)
    )
    with FeatureStore(repo) as store:
        version = _register(store)
        with pytest.raises(
            GateRefusedError,
            match=r"view driver_stats: is stale: materialized up "
            r"to 2026-01-03 12:00 UTC, [0-9,.]+ h ago, beyond its ttl of 48 h",
        ):
            store.models.promote("driver_model", version, "production")


def test_a_changed_service_fails_the_gate(local_store: FeatureStore, local_repo: Path) -> None:
    version = _register(local_store)
    defs = (
        (local_repo / "defs.py")
        .read_text()
        .replace(
            'FeatureService(name="driver_service", features=[stats])',
            'FeatureService(name="driver_service", features=[stats[["conv_rate"]]])',
        )
    )
    (local_repo / "defs.py").write_text(defs)
    local_store.apply()
    report = local_store.models.check_gate(f"driver_model:{version}")
    assert [(c.name, c.detail) for c in report.failures] == [
        (
            "feature service driver_service",
            "no longer serves the model's signature: trips_today is gone",
        )
    ]
    assert (
        local_store.models.describe("driver_model")["lineage"]["feature_service"]["current_version"]
        == 2
    )


def _record_skew_check(store: FeatureStore, passed: bool, version: int | None = None) -> None:
    """A check of the service's rows, or (`version`) of driver_model version `version`'s."""
    now = datetime.now(timezone.utc)
    failed = () if passed else (FailedFeature("driver_stats:conv_rate", "distribution", "PSI 0.4"),)
    store.skew_checks.record(
        feature_service="driver_service",
        window_start=now - timedelta(hours=1),
        window_end=now,
        dataset=None,
        sample=None,
        passed=passed,
        rows_served=100,
        failed_features=failed,
        result={},
        model=None if version is None else "driver_model",
        model_version=version,
    )


def test_the_newest_skew_check_must_have_passed(local_store: FeatureStore) -> None:
    version = _register(local_store)
    assert "skew check" not in [
        c.name for c in local_store.models.check_gate("driver_model").checks
    ]
    _record_skew_check(local_store, passed=False)
    with pytest.raises(
        GateRefusedError,
        match=r"skew check: the newest .* failed: driver_stats:conv_rate \(distribution\): "
        r"PSI 0.4; see featurehub skew history driver_service",
    ):
        local_store.models.promote("driver_model", version, "production")
    _record_skew_check(local_store, passed=True)
    local_store.models.promote("driver_model", version, "production")


def test_the_gate_reads_the_candidates_own_check_not_another_versions(
    local_store: FeatureStore,
) -> None:
    """A failed check of production's rows (its traffic drifting from its old training set)
    does not refuse a retrained candidate; a failed check of the candidate's rows (as a
    canary) does, and so does a failed check of every row of the service."""
    first = _register(local_store)
    local_store.models.promote("driver_model", first, "production")
    candidate = _register(local_store)
    _record_skew_check(local_store, passed=False, version=first)
    checks = local_store.models.check_gate(f"driver_model:{candidate}").checks
    assert "skew check" not in [c.name for c in checks]
    _record_skew_check(local_store, passed=False, version=candidate)
    failed = [c for c in local_store.models.check_gate(f"driver_model:{candidate}").failures]
    assert [c.name for c in failed] == ["skew check"]
    assert f"of the rows of driver_model version {candidate}) failed" in failed[0].detail
    _record_skew_check(local_store, passed=True, version=candidate)
    _record_skew_check(local_store, passed=False, version=first)  # newer, another version's
    local_store.models.promote("driver_model", candidate, "production")
    _record_skew_check(local_store, passed=False)  # the service's rows judge every version
    third = _register(local_store)
    report = local_store.models.check_gate(f"driver_model:{third}")
    assert "of the service's rows) failed" in report.failures[0].detail
