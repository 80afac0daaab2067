"""Alert delivery over real loopback HTTP and a real command: retried until delivered once,
a dead or hung webhook blocks neither the caller nor the other destinations, a full queue
drops and logs, each destination gets only the kinds it asked for; and the config's checks."""

from __future__ import annotations

import json
import logging
import sys
import threading
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from featurehub.config import AlertsConfig, load_config
from featurehub.errors import ConfigError
from featurehub.monitoring.alert_events import (
    AlertEvent,
    materialization_failed,
    view_stale,
)
from featurehub.monitoring.alerts import AlertDispatcher
from tests.monitoring.listener import Listener, dead_url
from tests.repos import make_repo

AT = datetime(2026, 11, 30, 12, 0, tzinfo=timezone.utc)
FAST = {"timeout_seconds": 2.0, "attempts": 3, "backoff_seconds": 0.01, "max_backoff_seconds": 0.05}


def dispatcher(**settings: object) -> AlertDispatcher:
    return AlertDispatcher.from_config(AlertsConfig.model_validate({**FAST, **settings}), env={})


def stale(view: str = "driver_stats") -> AlertEvent:
    return view_stale("proj", view, timedelta(hours=3), timedelta(hours=2), AT, AT, at=AT)


def test_a_webhook_that_fails_twice_then_succeeds_gets_the_event_once() -> None:
    with Listener(failures=2) as hook:
        alerts = dispatcher(webhooks=[{"url": hook.url}])
        event = stale()
        assert alerts.emit(event) == 1
        alerts.close()
        assert hook.attempts == 3
        assert hook.received == [event.to_dict()]
        assert hook.headers[0]["Content-Type"] == "application/json"
        assert alerts.destinations[0].delivered == 1


def test_a_dead_or_hung_webhook_blocks_neither_the_caller_nor_the_others(
    caplog: pytest.LogCaptureFixture,
) -> None:
    release = threading.Event()
    with Listener(hold=release) as hung, Listener() as live:
        alerts = dispatcher(
            webhooks=[{"url": dead_url()}, {"url": hung.url}, {"url": live.url}],
            timeout_seconds=30.0,  # the hung one holds its worker until released
        )
        events = [stale(f"view_{i}") for i in range(3)]
        with caplog.at_level(logging.WARNING, logger="featurehub.monitoring.alerts"):
            for event in events:
                assert alerts.emit(event) == 3  # returns while the hung request waits
            assert hung.arrived.wait(30)
            assert live.wait_for(3) == [e.to_dict() for e in events]
            assert not release.is_set() and hung.received == []  # still hung
            release.set()
            alerts.close()
        assert hung.wait_for(3) == [e.to_dict() for e in events]
        dead = alerts.destinations[0]
        assert (dead.delivered, dead.dropped) == (0, 3)
        dropped = [r.getMessage() for r in caplog.records if "dropped" in r.getMessage()]
        assert len(dropped) == 3 and all("after 3 attempt(s)" in m for m in dropped)
        assert any("retrying" in r.getMessage() for r in caplog.records)


def test_a_full_queue_drops_the_event_and_logs_it(caplog: pytest.LogCaptureFixture) -> None:
    release = threading.Event()
    with Listener(hold=release) as hung:
        alerts = dispatcher(webhooks=[{"url": hung.url}], queue_size=1, timeout_seconds=30.0)
        first, second, third = stale("a"), stale("b"), stale("c")
        assert alerts.emit(first) == 1
        assert hung.arrived.wait(30)  # the worker holds `first`; the queue is empty
        assert alerts.emit(second) == 1  # queued
        with caplog.at_level(logging.ERROR, logger="featurehub.monitoring.alerts"):
            assert alerts.emit(third) == 0  # the queue is full: dropped
        assert "queue holds 1 events already" in caplog.text and third.id in caplog.text
        release.set()
        alerts.close()
        assert [e["subject"] for e in hung.received] == ["a", "b"]


def test_the_command_gets_the_event_on_stdin_and_in_its_environment(tmp_path: Path) -> None:
    out = tmp_path / "got.json"
    script = (
        "import json, os, sys; "
        "env = {k: v for k, v in os.environ.items() if k.startswith('FEATUREHUB_ALERT_')}; "
        f"open({str(out)!r}, 'w').write(json.dumps({{'stdin': sys.stdin.read(), 'env': env}}))"
    )
    alerts = dispatcher(command={"argv": [sys.executable, "-c", script]})
    event = materialization_failed(
        "proj", "driver_stats", "source unreadable\ntraceback", run_id=7, attempts=3, at=AT
    )
    assert alerts.emit(event) == 1
    alerts.close()
    got = json.loads(out.read_text())
    assert json.loads(got["stdin"]) == event.to_dict()
    env = got["env"]
    assert env["FEATUREHUB_ALERT_KIND"] == "materialization_failed"
    assert env["FEATUREHUB_ALERT_SUBJECT"] == "driver_stats"
    assert env["FEATUREHUB_ALERT_PROJECT"] == "proj"
    assert env["FEATUREHUB_ALERT_TIME"] == AT.isoformat()
    assert env["FEATUREHUB_ALERT_SUMMARY"] == (
        "materialization of driver_stats failed after 3 attempt(s): source unreadable"
    )
    assert json.loads(env["FEATUREHUB_ALERT_JSON"]) == event.to_dict()


def test_a_failing_command_is_retried_then_dropped(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    runs = tmp_path / "runs"
    script = f"open({str(runs)!r}, 'a').write('x'); raise SystemExit(3)"
    alerts = dispatcher(command={"argv": [sys.executable, "-c", script]})
    with caplog.at_level(logging.ERROR, logger="featurehub.monitoring.alerts"):
        alerts.emit(stale())
        alerts.close()
    assert runs.read_text() == "xxx"  # three attempts
    assert "exited 3" in caplog.text and "dropped" in caplog.text


def test_each_destination_gets_only_the_kinds_it_asked_for() -> None:
    with Listener() as stale_only, Listener() as everything:
        alerts = dispatcher(
            webhooks=[{"url": stale_only.url, "events": ["view_stale"]}, {"url": everything.url}]
        )
        failed = materialization_failed("proj", "driver_stats", "boom", at=AT)
        assert alerts.emit(failed) == 1
        assert alerts.emit(stale()) == 2
        alerts.close()
        assert [e["kind"] for e in stale_only.received] == ["view_stale"]
        assert [e["kind"] for e in everything.received] == ["materialization_failed", "view_stale"]


def test_webhook_headers_come_from_the_environment() -> None:
    with Listener() as hook:
        settings = AlertsConfig.model_validate(
            {**FAST, "webhooks": [{"url": hook.url, "headers_from_env": {"X-Token": "HOOK_KEY"}}]}
        )
        alerts = AlertDispatcher.from_config(settings, env={"HOOK_KEY": "s3cret"})
        alerts.emit(stale())
        alerts.close()
        assert hook.headers[0]["X-Token"] == "s3cret"
        with pytest.raises(ConfigError, match=r"HOOK_KEY, which is not set; export HOOK_KEY"):
            AlertDispatcher.from_config(settings, env={})


def test_the_event_json_has_the_documented_shape() -> None:
    event = stale()
    assert event.to_dict() == {
        "id": event.id,
        "kind": "view_stale",
        "project": "proj",
        "subject": "driver_stats",
        "time": "2026-11-30T12:00:00+00:00",
        "summary": "feature view driver_stats is stale: its newest materialized event is "
        "3.0h old, above its freshness bound of 2.0h",
        "details": {
            "view": "driver_stats",
            "staleness_seconds": 10800.0,
            "freshness_seconds": 7200.0,
            "newest_event_time": "2026-11-30T12:00:00+00:00",
            "last_success": "2026-11-30T12:00:00+00:00",
        },
    }
    assert stale().id != event.id  # unique: receivers may deduplicate


@pytest.mark.parametrize(
    ("alerts", "message"),
    [
        ({"webhooks": [{"url": "hooks.example.com"}]}, "is not an http:// or https:// URL"),
        (
            {"webhooks": [{"url": "http://x", "events": ["skew_failed"]}]},
            "monitoring.alerts.webhooks.0.events.0: Input should be 'skew_check_failed'",
        ),
        (
            {"webhooks": [{"url": "http://x", "headers_from_env": {"Auth": "Bearer abc"}}]},
            "is not an environment variable name; write the variable's name",
        ),
        ({"webhooks": [{"url": "http://x", "token": "abc"}]}, "token: Extra inputs"),
        ({"command": {"argv": []}}, "monitoring.alerts.command.argv: List should have at least"),
        ({"attempts": 0}, "monitoring.alerts.attempts: Input should be greater than or equal"),
        ({"queue_size": 0}, "monitoring.alerts.queue_size: Input should be greater than 0"),
    ],
)
def test_bad_alert_settings_name_the_key(
    tmp_path: Path, alerts: dict[str, object], message: str
) -> None:
    import yaml

    repo = make_repo(tmp_path / "repo")
    with (repo / "featurehub.yaml").open("a") as config:
        config.write(yaml.safe_dump({"monitoring": {"alerts": alerts}}))
    with pytest.raises(ConfigError, match="featurehub.yaml") as caught:
        load_config(repo, env={})
    assert message in str(caught.value)


def test_the_documented_configuration_loads(tmp_path: Path) -> None:
    docs = (Path(__file__).parents[2] / "docs" / "alerts.md").read_text()
    block = docs.split("```yaml\n", 1)[1].split("```", 1)[0]
    repo = make_repo(tmp_path / "repo")
    with (repo / "featurehub.yaml").open("a") as config:
        config.write(block)
    alerts = load_config(repo, env={}).monitoring.alerts
    assert [hook.events for hook in alerts.webhooks] == [
        ["skew_check_failed", "view_stale", "materialization_failed"],
        ["materialization_failed"],
    ]
    assert alerts.command is not None and alerts.command.events == ["skew_check_failed"]
    built = AlertDispatcher.from_config(alerts, env={"ALERTS_AUTH_HEADER": "Bearer x"})
    assert len(built.destinations) == 3
