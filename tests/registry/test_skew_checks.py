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


def record_of_model(log: SkewCheckLog, version: int | None, day: int, passed: bool = True) -> int:
    """A check of `driver_model` version `version`'s rows (None: the service's rows)."""
    return log.record(
        feature_service="driver_service",
        window_start=START + timedelta(days=day),
        window_end=START + timedelta(days=day + 1),
        dataset=None if version is None else f"training_v{version}",
        sample=None,
        passed=passed,
        rows_served=10 + day,
        failed_features=(),
        result={"day": day},
        model=None if version is None else "driver_model",
        model_version=version,
    ).id


def test_checks_record_the_model_version_whose_rows_they_were(
    repo: Path, registry_url: str
) -> None:
    store = store_for(repo, registry_url)
    store.apply()
    log = store.skew_checks
    record_of_model(log, None, 0)
    record_of_model(log, 1, 1)
    record_of_model(log, 2, 2, passed=False)
    record_of_model(log, 1, 3)
    checks = log.history("driver_service")
    assert [(c.model, c.model_version) for c in checks] == [
        ("driver_model", 1),
        ("driver_model", 2),
        ("driver_model", 1),
        (None, None),
    ]
    assert checks[0].to_dict()["model"] == "driver_model"
    assert checks[0].to_dict()["model_version"] == 1
    of_one = log.history("driver_service", model="driver_model", model_version=1)
    assert [c.result["day"] for c in of_one] == [3, 1]
    assert [c.result["day"] for c in log.history("driver_service", model="driver_model")] == [
        3,
        2,
        1,
    ]
    # What the gate reads: the newest check of the candidate's rows or of the service's,
    # never one of another version's rows.
    judging_two = log.latest_judging("driver_service", "driver_model", 2)
    assert judging_two is not None and judging_two.result["day"] == 2
    assert not judging_two.passed
    judging_three = log.latest_judging("driver_service", "driver_model", 3)
    assert judging_three is not None and judging_three.result["day"] == 0  # the service's
    assert log.latest_judging("driver_service", "other_model", 1) == judging_three
    # A monitor's ticks are done by the checks of the rows it reads: its model's versions,
    # or (no model) the whole service's; one kind never stands in for the other.
    day_end = START + timedelta(days=4)
    assert log.checked_until("driver_service", model="driver_model") == day_end
    assert log.checked_until("driver_service") == START + timedelta(days=1)
    assert log.checked_until("driver_service", model="other_model") is None
    with pytest.raises(SkewHistoryError, match="both its model and version"):
        log.record(
            feature_service="driver_service",
            window_start=START,
            window_end=START + timedelta(days=1),
            dataset=None,
            sample=None,
            passed=True,
            rows_served=1,
            failed_features=(),
            result={},
            model="driver_model",
        )


def test_migration_0012_keeps_the_checks_recorded_before_it(registry_url: str) -> None:
    """A registry at 0011 holding a check: upgraded, the check reads with no model; the
    downgrade drops the column again."""
    import sqlalchemy as sa
    from alembic import command

    from featurehub.registry.migrate import _alembic_config

    engine = sa.create_engine(registry_url)
    try:

        def migrate(action: str, revision: str) -> None:
            with engine.begin() as connection:
                config = _alembic_config()
                config.attributes["connection"] = connection
                getattr(command, action)(config, revision)

        migrate("upgrade", "0011")
        with engine.begin() as connection:
            connection.execute(
                sa.text(
                    "INSERT INTO skew_checks (project, feature_service, window_start, "
                    "window_end, dataset, model_version, sample, passed, rows_served, "
                    "failed_features, result, checked_at) VALUES ('p', 'driver_service', "
                    ":start, :end, NULL, NULL, NULL, :passed, 12, '[]', '{}', :end)"
                ),
                {"start": START, "end": START + timedelta(hours=1), "passed": True},
            )
        migrate("upgrade", "head")
        log = SkewCheckLog(engine, "p")
        (old,) = log.history("driver_service")
        assert (old.model, old.model_version, old.rows_served) == (None, None, 12)
        assert log.latest_judging("driver_service", "m", 1) == old
        new_id = record_of_model(log, 4, 1)
        assert log.history("driver_service", model="driver_model")[0].id == new_id
        migrate("downgrade", "0011")
        columns = {c["name"] for c in sa.inspect(engine).get_columns("skew_checks")}
        assert "model" not in columns and "model_version" in columns
    finally:
        engine.dispose()
