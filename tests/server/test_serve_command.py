"""`featurehub serve`: the CLI entry point of the feature server."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from featurehub.cli import app


def test_serve_help() -> None:
    result = CliRunner().invoke(app, ["serve", "--help"])
    assert result.exit_code == 0
    for option in ("--host", "--port", "--workers"):
        assert option in result.output


def test_serve_refuses_a_folder_that_is_no_repo(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["--repo", str(tmp_path), "serve"])
    assert result.exit_code == 1


@pytest.mark.parametrize(
    ("option", "message"),
    [
        (["--port", "99999"], "--port 99999 is not a TCP port; use 1 to 65535"),
        (["--port", "0"], "--port 0 is not a TCP port"),
        (["-p", "-1"], "--port -1 is not a TCP port"),
        (["--workers", "0"], "--workers 0: run at least 1 worker process"),
    ],
)
def test_serve_refuses_a_bad_port_or_worker_count(
    tmp_path: Path, option: list[str], message: str
) -> None:
    (tmp_path / "featurehub.yaml").write_text("project: p\n")
    result = CliRunner().invoke(app, ["--repo", str(tmp_path), "serve", *option])
    assert result.exit_code == 1
    assert message in " ".join(result.output.split())


def test_serve_refuses_api_keys_that_are_all_empty(tmp_path: Path) -> None:
    (tmp_path / "featurehub.yaml").write_text(
        "project: p\nserver:\n  api_keys: ['${FH_TEST_UNSET_KEY:-}']\n"
    )
    result = CliRunner().invoke(app, ["--repo", str(tmp_path), "serve"])
    assert result.exit_code == 1
    output = " ".join(result.output.split())
    assert "server.api_keys lists 1 key(s), all empty" in output and "auth: none" in output


def test_serve_refuses_a_serving_log_root_it_cannot_write(tmp_path: Path) -> None:
    (tmp_path / "a_file").write_text("")
    (tmp_path / "featurehub.yaml").write_text("project: p\nserving_log:\n  root: a_file/logs\n")
    result = CliRunner().invoke(app, ["--repo", str(tmp_path), "serve"])
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert "cannot write the serving log under" in " ".join(result.output.split())
