"""`featurehub serve`: the CLI entry point of the feature server."""

from __future__ import annotations

from typer.testing import CliRunner

from featurehub.cli import app


def test_serve_help() -> None:
    result = CliRunner().invoke(app, ["serve", "--help"])
    assert result.exit_code == 0
    for option in ("--host", "--port", "--workers"):
        assert option in result.output


def test_serve_refuses_a_folder_that_is_no_repo(tmp_path: object) -> None:
    result = CliRunner().invoke(app, ["--repo", str(tmp_path), "serve"])
    assert result.exit_code == 1
