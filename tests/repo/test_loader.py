from pathlib import Path

import pytest

from featurehub.errors import RepoLoadError
from featurehub.repo.loader import load_repo
from tests.repos import DRIVER_DEFS, make_repo

EXAMPLE = Path(__file__).parents[2] / "feature_repo"


def test_example_repo_loads_across_files() -> None:
    catalog = load_repo(EXAMPLE)
    assert set(catalog.entities) == {"driver", "customer", "route"}
    assert set(catalog.feature_views) == {
        "driver_stats",
        "customer_profile",
        "route_stats",
        "driver_daily_activity",
    }
    assert set(catalog.feature_services) == {"trip_completion_v1"}
    assert catalog.feature_view("route_stats").join_keys == ["pickup_zone", "dropoff_zone"]


def test_loading_twice_sees_edits(tmp_path: Path) -> None:
    repo = make_repo(
        tmp_path, files={"defs.py": DRIVER_DEFS, "extra.py": "from defs import stats\n"}
    )
    assert "driver_stats" in load_repo(repo).feature_views
    (repo / "defs.py").write_text(DRIVER_DEFS.replace("driver_stats", "driver_stats_v2"))
    assert set(load_repo(repo).feature_views) == {"driver_stats_v2"}


def test_syntax_error_names_file_and_line(tmp_path: Path) -> None:
    repo = make_repo(tmp_path, files={"defs.py": DRIVER_DEFS, "broken.py": "x = 1\ny = (\n"})
    with pytest.raises(RepoLoadError, match=r"broken.py, line \d+: syntax error"):
        load_repo(repo)


def test_runtime_error_names_file_and_line(tmp_path: Path) -> None:
    text = DRIVER_DEFS.replace("ttl=timedelta(days=2)", "ttl=timedelta(days=-2)")
    repo = make_repo(tmp_path, files={"defs.py": text})
    with pytest.raises(RepoLoadError, match=r"defs.py, line 7: DefinitionError: .*negative"):
        load_repo(repo)


def test_name_error_names_file_and_line(tmp_path: Path) -> None:
    repo = make_repo(
        tmp_path, files={"defs.py": "from featurehub import Entity\n\nx = undefined\n"}
    )
    with pytest.raises(RepoLoadError, match=r"defs.py, line 3: NameError"):
        load_repo(repo)


def test_two_objects_with_one_name_are_refused(tmp_path: Path) -> None:
    other = "from featurehub import Entity\ndriver = Entity(name='driver', join_keys=['id'])\n"
    repo = make_repo(tmp_path, files={"defs.py": DRIVER_DEFS, "other.py": other})
    with pytest.raises(
        RepoLoadError, match="two different entity definitions are named .driver.*rename one"
    ):
        load_repo(repo)


def test_ignore_file_and_data_folder_are_skipped(tmp_path: Path) -> None:
    repo = make_repo(
        tmp_path,
        files={"defs.py": DRIVER_DEFS, "scripts/gen.py": "raise SystemExit('must not run')\n"},
    )
    (repo / "data" / "x.py").write_text("raise SystemExit('must not run')\n")
    (repo / ".featurehubignore").write_text("# scripts\nscripts/\n")
    assert "driver_stats" in load_repo(repo).feature_views
