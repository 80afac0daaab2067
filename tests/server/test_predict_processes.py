"""Two deployable servers (uvicorn on loopback, processes of their own) over one registry:
a traffic policy set with `featurehub models traffic` reaches both without a restart (within
registry.refresh_seconds, or at once on SIGHUP), and both put every key in the same arm."""

from __future__ import annotations

import signal
import time
from pathlib import Path

import httpx
from typer.testing import CliRunner

from featurehub.cli import app
from tests.redis_server import free_port
from tests.server.test_predict import MODEL, build, oracle_bucket
from tests.server.test_shutdown import start

KEYS = list(range(1_000))


def arms(url: str) -> list[str]:
    body = {"entities": {"driver_id": KEYS}}
    answer = httpx.post(f"{url}/v1/models/{MODEL}/predict", json=body, timeout=30)
    assert answer.status_code == 200, answer.text
    return answer.json()["arms"]


def wait_for(url: str, wanted: list[str]) -> None:
    deadline = time.monotonic() + 20
    while arms(url) != wanted:
        assert time.monotonic() < deadline, f"{url} did not pick the policy up"
        time.sleep(0.1)


def test_two_servers_follow_the_policy_without_restart(tmp_path: Path) -> None:
    repo = build(tmp_path / "repo")
    config = repo / "featurehub.yaml"
    text = config.read_text().replace(
        "registry: sqlite:///data/registry.db",
        "registry: {url: 'sqlite:///data/registry.db', refresh_seconds: 1}",
    )
    config.write_text(text)
    fast = start(repo, port := free_port())
    fast_url = f"http://127.0.0.1:{port}"
    # The second server reads the registry once an hour: SIGHUP makes it read it now.
    slow_repo = tmp_path / "slow"
    slow_repo.symlink_to(repo, target_is_directory=True)
    config.write_text(text.replace("refresh_seconds: 1", "refresh_seconds: 3600"))
    slow = start(slow_repo, port := free_port())
    slow_url = f"http://127.0.0.1:{port}"
    config.write_text(text)
    try:
        assert arms(fast_url) == arms(slow_url) == ["production"] * len(KEYS)
        result = CliRunner().invoke(
            app, ["-r", str(repo), "models", "traffic", MODEL, "--canary", "2:10"]
        )
        assert result.exit_code == 0, result.output
        assert "canary: 10 % of entity keys to version 2" in result.stdout
        canary = ["canary" if oracle_bucket(MODEL, [k]) < 1_000 else "production" for k in KEYS]
        wait_for(fast_url, canary)  # refresh_seconds
        assert arms(slow_url) == ["production"] * len(KEYS)  # not read yet
        slow.send_signal(signal.SIGHUP)
        wait_for(slow_url, canary)  # the same keys in the same arm in both processes

        result = CliRunner().invoke(
            app, ["-r", str(repo), "models", "traffic", MODEL, "--production-only"]
        )
        assert result.exit_code == 0, result.output
        wait_for(fast_url, ["production"] * len(KEYS))
        history = CliRunner().invoke(
            app, ["-r", str(repo), "models", "traffic", MODEL, "--history"]
        )
        assert history.stdout.count("\n") == 2 and "production only" in history.stdout
    finally:
        for process in (fast, slow):
            process.send_signal(signal.SIGTERM)
            process.wait(60)


def test_the_traffic_command_refuses_bad_input(tmp_path: Path) -> None:
    repo = build(tmp_path / "repo")
    runner = CliRunner()
    refused = runner.invoke(app, ["-r", str(repo), "models", "traffic", MODEL, "--canary", "two"])
    assert refused.exit_code == 1
    assert "write VERSION:PERCENT" in refused.stderr
    both = runner.invoke(
        app, ["-r", str(repo), "models", "traffic", MODEL, "--shadow", "2", "--ab", "2:50"]
    )
    assert both.exit_code == 1 and "exactly one" in both.stderr
    shown = runner.invoke(app, ["-r", str(repo), "models", "traffic", MODEL])
    assert shown.exit_code == 0 and "production only" in shown.stdout
