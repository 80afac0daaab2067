"""The CLI end to end through typer's runner, on a real repo and registry."""

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from featurehub import __version__
from featurehub.cli import app

runner = CliRunner()


def run(repo: Path, *args: str) -> tuple[int, str]:
    result = runner.invoke(app, ["--repo", str(repo), *args])
    return result.exit_code, result.output


def test_version() -> None:
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0 and __version__ in result.output


def test_plan_apply_plan(repo: Path) -> None:
    code, out = run(repo, "plan")
    assert code == 2, out
    assert "+ create feature view driver_stats" in out
    assert "Plan: 4 to create, 0 to update, 0 to delete." in out
    code, out = run(repo, "apply")
    assert code == 0, out
    assert "Applied to project test_project" in out
    code, out = run(repo, "plan")
    assert code == 0 and "No changes" in out


def test_plan_shows_field_changes_and_breaking(repo: Path) -> None:
    run(repo, "apply")
    defs = (repo / "defs.py").read_text()
    (repo / "defs.py").write_text(defs.replace("days=2", "days=1"))
    code, out = run(repo, "plan")
    assert code == 2
    assert "~ update feature view driver_stats" in out
    assert "ttl_seconds: 172800.0 -> 86400.0" in out


def test_list_and_describe(repo: Path) -> None:
    run(repo, "apply")
    code, out = run(repo, "list", "views")
    assert code == 0 and "driver_stats" in out and "2d" in out
    code, out = run(repo, "list", "entities", "--json")
    assert code == 0
    assert json.loads(out)[0]["key_types"] == {"driver_id": "Int64"}
    code, out = run(repo, "list", "services", "--json")
    assert json.loads(out)[0]["name"] == "driver_service"
    code, out = run(repo, "describe", "driver_stats")
    assert code == 0 and "conv_rate: Float64" in out and "version 1: create" in out
    code, out = run(repo, "describe", "driver_stats", "--json")
    described = json.loads(out)
    assert described["kind"] == "feature_view" and described["history"][0]["version"] == 1


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("list", "tables"), "cannot list 'tables'"),
        (("describe", "driver_stat"), "nothing named 'driver_stat'.*'driver_stats'"),
    ],
)
def test_errors_exit_1_with_the_problem(repo: Path, args: tuple[str, ...], message: str) -> None:
    run(repo, "apply")
    code, out = run(repo, *args)
    assert code == 1
    assert __import__("re").search(message, out.replace("\n", " ")), out


def test_validation_errors_are_listed(repo: Path) -> None:
    (repo / "data" / "drivers.parquet").unlink()
    code, out = run(repo, "apply")
    assert code == 1
    assert "no Parquet file at 'data/drivers.parquet'" in out.replace("\n", " ")


def test_not_a_repo(tmp_path: Path) -> None:
    code, out = run(tmp_path, "plan")
    assert code == 1 and "featurehub init" in out


def test_repo_from_environment(repo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FEATUREHUB_REPO", str(repo))
    result = runner.invoke(app, ["plan"])
    assert result.exit_code == 2


def test_init_creates_a_repo_that_applies(tmp_path: Path) -> None:
    target = tmp_path / "new_repo"
    result = runner.invoke(app, ["init", str(target)])
    assert result.exit_code == 0, result.output
    code, out = run(target, "apply")
    assert code == 0, out
    assert "Applied to project new_repo" in out
    result = runner.invoke(app, ["init", str(target)])
    assert result.exit_code == 1 and "not empty" in result.output
