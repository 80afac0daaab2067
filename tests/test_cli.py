"""The CLI end to end through typer's runner, on a real repo and registry."""

import json
import os
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import typer
from hypothesis import given
from hypothesis import strategies as st
from typer.testing import CliRunner

from featurehub import FeatureStore, __version__
from featurehub.cli import app
from featurehub.templates import check_project, project_name_from

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


def fails_with_one_line(result: typer.testing.Result, message: str) -> None:
    """Exit 1 through the CLI's own error path (not an escaped exception), with `message`."""
    assert result.exit_code == 1, result.output
    assert isinstance(result.exception, SystemExit), repr(result.exception)
    assert "Traceback" not in result.output
    assert message in result.output.replace("\n", " "), result.output


def test_init_derives_a_valid_project_and_its_hint_gets_data_online(tmp_path: Path) -> None:
    target = tmp_path / "my repo-1"
    result = runner.invoke(app, ["init", str(target)])
    assert result.exit_code == 0, result.output
    assert "(project my_repo_1)" in result.output
    commands = [shlex.split(line) for line in result.output.splitlines() if "featurehub -r" in line]
    assert [c[3] for c in commands] == ["plan", "apply", "materialize"]
    for command in commands:
        assert command[:3] == ["featurehub", "-r", str(target)]
        outcome = runner.invoke(app, command[1:])
        assert outcome.exit_code in (0, 2), outcome.output
    with FeatureStore(target) as store:
        response = store.get_online_features(["driver_stats:conv_rate"], [{"driver_id": 1}])
    assert response.statuses["conv_rate"] == ["present"]


@pytest.mark.parametrize(
    ("folder", "project"),
    [
        ("my-repo", "my_repo"),
        ("my repo.v2", "my_repo_v2"),
        ("2024 q1", "repo_2024_q1"),
        ("---", "feature_repo"),
        ("ok_Name9", "ok_Name9"),
    ],
)
def test_project_name_from_a_folder(folder: str, project: str) -> None:
    assert project_name_from(folder) == project


@given(st.text(max_size=200))
def test_any_folder_name_gives_a_valid_project(folder: str) -> None:
    assert check_project(project_name_from(folder))


def test_init_refuses_an_invalid_project(tmp_path: Path) -> None:
    result = runner.invoke(app, ["init", str(tmp_path / "repo"), "--project", "bad-name"])
    fails_with_one_line(result, "--project 'bad-name' is invalid")
    assert "e.g. --project bad_name" in result.output
    assert not (tmp_path / "repo").exists()


def test_init_at_a_file(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("x")
    result = runner.invoke(app, ["init", str(tmp_path / "notes.txt")])
    fails_with_one_line(result, "is a file, not a folder")
    result = runner.invoke(app, ["init", str(tmp_path / "notes.txt" / "repo")])
    fails_with_one_line(result, "cannot create the repo in")


def test_unsupported_registry_scheme(repo: Path) -> None:
    env = {"FEATUREHUB_REGISTRY_URL": "mysql://user@localhost/registry"}
    result = runner.invoke(app, ["--repo", str(repo), "plan"], env=env)
    fails_with_one_line(result, "only SQLite and PostgreSQL are supported")


def test_sqlite_registry_folder_that_cannot_be_created(repo: Path, tmp_path: Path) -> None:
    (tmp_path / "a_file").write_text("x")
    env = {"FEATUREHUB_REGISTRY_URL": f"sqlite:///{tmp_path}/a_file/sub/registry.db"}
    result = runner.invoke(app, ["--repo", str(repo), "plan"], env=env)
    fails_with_one_line(result, "cannot create the folder")


def test_offline_root_that_is_a_file(repo: Path, tmp_path: Path) -> None:
    (tmp_path / "a_file").write_text("x")
    run(repo, "apply")
    env = {"FEATUREHUB_OFFLINE_ROOT": str(tmp_path / "a_file")}
    args = ["--repo", str(repo), "materialize", "2026-01-01", "2026-01-02"]
    fails_with_one_line(runner.invoke(app, args, env=env), "is a file: point offline_store.root")


def test_postgresql_registry_without_its_driver(repo: Path) -> None:
    """psycopg is installed here, so hide it: `sys.modules[name] = None` makes importing it
    fail exactly as when it is absent."""
    program = (
        "import sys; sys.modules['psycopg'] = sys.modules['psycopg2'] = None\n"
        "from featurehub.cli import app; app()"
    )
    env = {**os.environ, "FEATUREHUB_REGISTRY_URL": "postgresql://user@127.0.0.1/registry"}
    done = subprocess.run(
        [sys.executable, "-c", program, "--repo", str(repo), "plan"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert done.returncode == 1, done.stderr
    assert "Traceback" not in done.stderr
    assert "pip install 'featurehub[postgres]'" in done.stderr.replace("\n", " ")


def test_runs_of_an_unknown_view(repo: Path) -> None:
    run(repo, "apply")
    result = runner.invoke(app, ["--repo", str(repo), "runs", "--view", "driver_stat"])
    fails_with_one_line(result, "no feature view named 'driver_stat' is registered")
    assert "Known views: driver_stats" in result.output


def test_no_help_shows_a_bool_metavar() -> None:
    commands = [[], *([name] for name in typer.main.get_command(app).commands)]  # type: ignore[attr-defined]
    for command in commands:
        result = runner.invoke(app, [*command, "--help"])
        assert result.exit_code == 0, result.output
        assert "<bool>" not in result.output, result.output
