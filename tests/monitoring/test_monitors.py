"""Monitors: checked when defined and kept in the spec (`plan` shows one added); which tick
is due, against a brute-force walk over the minutes (hypothesis); and on the real path
(materialize, serve over HTTP with its log, inject value skew) a scheduled check that fails
records itself and its event reaches a real HTTP listener on loopback, once per tick."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from featurehub import FeatureService, FeatureStore, Monitor
from featurehub.cli import app
from featurehub.definitions.catalog import Catalog
from featurehub.errors import DefinitionError
from featurehub.monitoring.monitors import MonitorError, due_tick, latest_tick, run_monitor
from featurehub.offline.base import offline_schema
from tests.definitions.test_definitions import catalog, view
from tests.monitoring.listener import Listener
from tests.server.conftest import DEFS, materialize, tables
from tests.skew.test_replay import serve

HOURLY = Monitor(schedule="@hourly", window=timedelta(hours=24))

# -- definitions ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("monitor", "message"),
    [
        (
            Monitor(schedule="every hour", window=timedelta(hours=1)),
            "feature service 'svc': monitor: schedule 'every hour' is not a valid cron "
            "expression; use five fields",
        ),
        (
            Monitor(schedule=None, window=timedelta(hours=1)),  # type: ignore[arg-type]
            "feature service 'svc': monitor needs a schedule",
        ),
        (
            Monitor(schedule="@daily", window=timedelta(0)),
            "feature service 'svc': monitor: window datetime.timedelta(0) must be a positive",
        ),
        (
            Monitor(schedule="@daily", window=timedelta(hours=-1)),
            "must be a positive datetime.timedelta, e.g. window=timedelta(hours=24)",
        ),
        (
            Monitor(schedule="@daily", window=24),  # type: ignore[arg-type]
            "monitor: window 24 must be a positive datetime.timedelta",
        ),
        (
            Monitor(schedule="@daily", window=timedelta(hours=1), sample=1.5),
            "monitor: sample 1.5 must be a share of entity keys in (0, 1]",
        ),
        (
            Monitor(schedule="@daily", window=timedelta(hours=1), against="not a name"),
            "training dataset name 'not a name' is invalid",
        ),
        ("@hourly", "monitor must be Monitor(schedule=..., window=...)"),
        (
            Monitor(
                schedule="@daily", window=timedelta(hours=1), model="m@production", against="t"
            ),
            "monitor: give against= or model=, not both",
        ),
        (
            Monitor(schedule="@daily", window=timedelta(hours=1), model="m:zero"),
            "monitor: model: model reference 'm:zero': version 'zero' is not a positive number",
        ),
    ],
)
def test_a_bad_monitor_names_the_service_and_the_fix(monitor: Any, message: str) -> None:
    with pytest.raises(DefinitionError) as caught:
        FeatureService(name="svc", features=[view()], monitor=monitor)
    assert message in str(caught.value)


def test_a_monitor_is_in_the_spec_and_old_specs_still_load() -> None:
    monitor = Monitor("*/15 * * * *", timedelta(hours=6), against="train_2026", sample=0.5)
    service = FeatureService(name="svc", features=[view()[["trips"]]], monitor=monitor)
    spec = service.to_spec()
    assert spec["monitor"] == {
        "schedule": "*/15 * * * *",
        "window_seconds": 21600.0,
        "against": "train_2026",
        "sample": 0.5,
    }
    specs = catalog().to_specs()
    assert "monitor" not in specs["feature_service"]["svc"]  # unset: the spec is as before
    assert Catalog.from_specs(specs).feature_service("svc").monitor is None  # an old spec
    specs["feature_service"]["svc"] = spec
    again = Catalog.from_specs(specs).feature_service("svc")
    assert again.monitor == monitor and again == service
    assert "model" not in spec["monitor"]  # unset: a spec recorded before models is as it was


def test_a_model_monitor_keeps_its_reference_in_the_spec() -> None:
    """The alias, not the version it points at now: each run resolves it."""
    monitor = Monitor("@hourly", timedelta(hours=24), model="models:/trip_model@production")
    service = FeatureService(name="svc", features=[view()[["trips"]]], monitor=monitor)
    spec = service.to_spec()
    assert spec["monitor"]["model"] == "models:/trip_model@production"
    specs = catalog().to_specs()
    specs["feature_service"]["svc"] = spec
    assert Catalog.from_specs(specs).feature_service("svc").monitor == monitor


def test_plan_shows_a_monitor_added(tmp_path: Path) -> None:
    config = materialize(tmp_path / "repo")
    (config.repo_path / "defs.py").write_text(monitored(DEFS, "@hourly"))
    with FeatureStore(config.repo_path) as store:
        plan = store.plan()
    [change] = plan.changes
    assert (change.kind, change.name) == ("feature_service", "driver_service")
    assert change.action == "update"
    assert [(f.path, f.old) for f in change.fields] == [("monitor", None)]
    assert change.fields[0].new["schedule"] == "@hourly"


def monitored(defs: str, schedule: str, window: str = "timedelta(hours=2)") -> str:
    """The server tests' definitions with a monitor on driver_service."""
    return defs.replace(
        "from featurehub import Entity,", "from featurehub import Monitor, Entity,"
    ).replace(
        'service = FeatureService(name="driver_service", features=[stats])',
        'service = FeatureService(name="driver_service", features=[stats], '
        f"monitor=Monitor(schedule={schedule!r}, window={window}))",
    )


# -- due ticks against a brute-force walk ---------------------------------------------------

FIELD_RANGES = {"minute": range(60), "hour": range(24), "dow": range(7)}


@st.composite
def cron_field(draw: st.DrawFn, name: str) -> tuple[str, set[int]]:
    """A cron field and the values it matches, written out independently of croniter."""
    values = FIELD_RANGES[name]
    form = draw(st.sampled_from(["*", "step", "list", "range", "one"]))
    if form == "*":
        return "*", set(values)
    if form == "step":
        step = draw(st.integers(1, len(values) // 2))
        return f"*/{step}", {v for v in values if v % step == 0}
    if form == "list":
        picked = sorted(draw(st.sets(st.sampled_from(values), min_size=1, max_size=4)))
        return ",".join(map(str, picked)), set(picked)
    if form == "range":
        low = draw(st.sampled_from(values))
        high = draw(st.integers(low, values[-1]))
        return f"{low}-{high}", set(range(low, high + 1))
    one = draw(st.sampled_from(values))
    return str(one), {one}


ALIASES = {"@hourly": "0 * * * *", "@daily": "0 0 * * *", "@weekly": "0 0 * * 0"}


@st.composite
def schedules(draw: st.DrawFn) -> tuple[str, tuple[set[int], set[int], set[int]]]:
    if draw(st.booleans()):
        alias = draw(st.sampled_from(sorted(ALIASES)))
        minute, hour, _, _, dow = ALIASES[alias].split()
        sets = tuple(
            set(FIELD_RANGES[n]) if v == "*" else {int(v)}
            for n, v in (("minute", minute), ("hour", hour), ("dow", dow))
        )
        return alias, sets  # type: ignore[return-value]
    minute, minutes = draw(cron_field("minute"))
    hour, hours = draw(cron_field("hour"))
    dow, days = draw(cron_field("dow"))
    return f"{minute} {hour} * * {dow}", (minutes, hours, days)


def brute_latest_tick(fields: tuple[set[int], set[int], set[int]], at: datetime) -> datetime:
    """Walk back minute by minute from `at` to the first one every field matches."""
    minutes, hours, days = fields
    moment = at.replace(second=0, microsecond=0)
    while True:
        cron_day = (moment.weekday() + 1) % 7  # cron: Sunday is 0
        if moment.minute in minutes and moment.hour in hours and cron_day in days:
            return moment
        moment -= timedelta(minutes=1)


moments = st.datetimes(
    min_value=datetime(2026, 1, 1), max_value=datetime(2027, 1, 1), timezones=st.just(timezone.utc)
)


@settings(max_examples=200, deadline=None)
@given(
    schedule=schedules(),
    at=moments,
    on_tick=st.booleans(),
    checked=st.one_of(st.none(), st.integers(-3 * 86400, 3 * 86400)),
)
def test_the_due_tick_is_the_latest_one_not_yet_checked(
    schedule: tuple[str, tuple[set[int], set[int], set[int]]],
    at: datetime,
    on_tick: bool,
    checked: int | None,
) -> None:
    expression, fields = schedule
    if on_tick:  # exactly on a tick: that tick counts
        at = brute_latest_tick(fields, at)
    tick = brute_latest_tick(fields, at)
    assert latest_tick(expression, at) == tick
    monitor = Monitor(expression, timedelta(hours=1))
    checked_until = None if checked is None else tick + timedelta(seconds=checked)
    expected = tick if checked_until is None or checked_until < tick else None
    assert due_tick(monitor, at, checked_until) == expected


# -- the real path ----------------------------------------------------------------------------


def inject_value_skew(store: FeatureStore) -> None:
    """Driver 1001's online conv_rate becomes 0.9 (offline: 0.5), same timestamps."""
    view = store.get_feature_view("driver_stats")
    row = tables()["drivers"].slice(0, 1)
    wrong = pa.table(
        {
            "driver_id": row["driver_id"],
            "event_timestamp": row["event_timestamp"],
            "created_timestamp": row["created"],
            "conv_rate": [0.9],
            "trips_today": row["trips_today"],
        }
    )
    store.online_store.write(view, wrong.select(offline_schema(view).names))


def with_webhook(repo: Path, url: str) -> None:
    with (repo / "featurehub.yaml").open("a") as config:
        config.write(
            "monitoring:\n  alerts:\n    backoff_seconds: 0.01\n    webhooks:\n"
            f"      - url: {url}\n        events: [skew_check_failed]\n"
        )


def test_a_failed_scheduled_check_alerts_the_webhook_once_per_tick(tmp_path: Path) -> None:
    config = materialize(tmp_path / "repo")
    repo = config.repo_path
    (repo / "defs.py").write_text(monitored(DEFS, "*/5 * * * *"))
    runner = CliRunner()
    with Listener(failures=1) as hook:
        with_webhook(repo, hook.url)
        with FeatureStore(repo) as store:
            store.apply()
        serve(config)
        now = datetime.now(timezone.utc)
        first = now + timedelta(minutes=6)  # its tick is after what was served
        with FeatureStore(repo) as store:
            healthy = run_monitor(store, "driver_service", first)
            assert healthy.passed and healthy.events == ()
            assert healthy.tick == latest_tick("*/5 * * * *", first)
            assert (healthy.report.start, healthy.report.end) == (
                healthy.tick - timedelta(hours=2),
                healthy.tick,
            )
            with pytest.raises(MonitorError, match="'dispatch' declares no monitor; add one"):
                run_monitor(store, "dispatch", first)
            inject_value_skew(store)
        serve(config)
        later = first + timedelta(minutes=5)  # the next tick
        base = ["-r", str(repo), "monitor", "run", "--at", later.isoformat()]
        ran = runner.invoke(app, base)
        assert ran.exit_code == 1, ran.output
        text = " ".join(ran.output.split())
        assert "monitors run" in text and "driver_service" in text and "value_skew" in text
        [event] = hook.wait_for(1)
        assert hook.attempts == 2  # the first answer was a 500: retried, delivered once
        with FeatureStore(repo) as store:
            checks = store.skew_checks.history("driver_service")
        assert [c.passed for c in checks] == [False, True]
        assert event["kind"] == "skew_check_failed"
        assert event["project"] == "server_test" and event["subject"] == "driver_service"
        details = event["details"]
        assert details["check_id"] == checks[0].id
        assert details["window_end"] == latest_tick("*/5 * * * *", later).isoformat()
        assert details["rows_served"] == 24 and details["replay_passed"] is False
        assert [(f["feature"], f["check"]) for f in details["failed_features"]] == [
            ("driver_stats:conv_rate", "replay")
        ]
        figure = details["failed_features"][0]["figure"]
        assert figure.startswith("value_skew 3 of 24 rows")  # driver 1001 in 3 requests
        assert event["summary"] == (
            "skew check of driver_service failed: 1 feature(s) crossed a threshold: "
            "driver_stats:conv_rate (replay)"
        )

        again = runner.invoke(app, base)  # that tick is checked: nothing is due
        assert again.exit_code == 0 and "no monitor due" in again.output, again.output
        listed = runner.invoke(app, ["-r", str(repo), "monitor", "list", "--at", later.isoformat()])
        assert listed.exit_code == 0 and "*/5 * * * *" in listed.output, listed.output

        forced = runner.invoke(app, [*base[:4], "driver_service", *base[4:], "--json"])
        assert forced.exit_code == 1, forced.output  # named: runs even though checked
        [result] = json.loads(forced.output)
        assert result["passed"] is False and result["alerts"][0]["kind"] == "skew_check_failed"
        assert len(hook.wait_for(2)) == 2

        missing = runner.invoke(app, [*base[:4], "dispatch", *base[4:]])
        assert missing.exit_code == 2 and "declares no monitor" in missing.output


def test_a_monitor_that_cannot_run_exits_2_and_records_nothing(tmp_path: Path) -> None:
    config = materialize(tmp_path / "repo")
    repo = config.repo_path
    (repo / "defs.py").write_text(monitored(DEFS, "@hourly"))
    with FeatureStore(repo) as store:
        store.apply()
    runner = CliRunner()
    ran = runner.invoke(app, ["-r", str(repo), "monitor", "run"])  # nothing was served
    assert ran.exit_code == 2, ran.output
    assert "error: monitor of driver_service:" in ran.output
    with FeatureStore(repo) as store:
        assert store.skew_checks.checked_until("driver_service") is None
    with (repo / "featurehub.yaml").open("a") as config:
        config.write(
            "monitoring:\n  alerts:\n    webhooks:\n      - url: http://127.0.0.1:9/hook\n"
            "        headers_from_env: {X-Token: FEATUREHUB_TEST_UNSET_TOKEN}\n"
        )
    unset = runner.invoke(app, ["-r", str(repo), "monitor", "run"])
    assert unset.exit_code == 2, unset.output
    assert "FEATUREHUB_TEST_UNSET_TOKEN, which is not set" in " ".join(unset.output.split())


def test_a_range_of_one_value_is_that_value_not_every_minute() -> None:
    """croniter 7 reads `5-5` as `*`; featurehub's ticks do not."""
    at = datetime(2026, 1, 1, 10, 30, tzinfo=timezone.utc)
    assert latest_tick("5-5 * * * *", at) == datetime(2026, 1, 1, 10, 5, tzinfo=timezone.utc)
    assert latest_tick("0 3-3/2 * * *", at) == datetime(2026, 1, 1, 3, 0, tzinfo=timezone.utc)
    assert latest_tick("0-5 * * * *", at) == datetime(2026, 1, 1, 10, 5, tzinfo=timezone.utc)
