"""The registry on SQLite and PostgreSQL: apply, plan, history, breaking changes, concurrency."""

from __future__ import annotations

import multiprocessing
import shutil
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from featurehub import FeatureStore
from featurehub.config import load_config
from featurehub.errors import BreakingChangeError, RegistryError, ValidationError
from featurehub.registry import SqlRegistry
from tests.repos import DRIVER_DEFS, driver_table, make_repo


def store_for(repo: Path, registry_url: str) -> FeatureStore:
    config = load_config(repo, env={"FEATUREHUB_REGISTRY_URL": registry_url})
    return FeatureStore(config=config)


def test_apply_then_nothing_to_plan(repo: Path, registry_url: str) -> None:
    store = store_for(repo, registry_url)
    plan = store.plan()
    assert plan.counts() == {"create": 4, "update": 0, "delete": 0}
    store.apply()
    assert not store.plan().has_changes
    assert [v.name for v in store.list_feature_views()] == ["driver_stats"]
    assert store.get_feature_service("driver_service").projections[0].features == [
        "conv_rate",
        "trips_today",
    ]


def test_update_is_field_by_field_and_versioned(repo: Path, registry_url: str) -> None:
    store = store_for(repo, registry_url)
    store.apply()
    text = DRIVER_DEFS.replace("days=2", "days=3").replace('"@hourly"', '"@daily"')
    (repo / "defs.py").write_text(text)
    plan = store.plan()
    [change] = plan.changes
    assert (change.kind, change.name, change.action) == ("feature_view", "driver_stats", "update")
    assert {(f.path, f.old, f.new) for f in change.fields} == {
        ("ttl_seconds", 172800.0, 259200.0),
        ("schedule", "@hourly", "@daily"),
    }
    store.apply()
    assert store.get_feature_view("driver_stats").schedule == "@daily"
    history = store.history("feature_view", "driver_stats")
    assert [(h.version, h.action) for h in history] == [(1, "create"), (2, "update")]
    assert {c["path"] for c in history[1].changes} == {"ttl_seconds", "schedule"}


def test_added_feature_is_one_line_of_the_diff(repo: Path, registry_url: str) -> None:
    store = store_for(repo, registry_url)
    store.apply()
    text = DRIVER_DEFS.replace(
        'Field("trips_today", Int64)]', 'Field("trips_today", Int64), Field("city", String)]'
    ).replace("Float64, Int64", "Float64, Int64, String")
    (repo / "defs.py").write_text(text)
    changes = {c.name: c for c in store.plan().changes}
    paths = [f.path for f in changes["driver_stats"].fields]
    assert paths == ["schema.city"]
    assert [f.path for f in changes["driver_service"].fields] == ["features.driver_stats.features"]


def test_removed_objects_are_deleted(repo: Path, registry_url: str) -> None:
    store = store_for(repo, registry_url)
    store.apply()
    (repo / "defs.py").write_text(DRIVER_DEFS.split("service =")[0])
    plan = store.apply()
    assert [(c.action, c.name) for c in plan.changes] == [("delete", "driver_service")]
    assert store.list_feature_services() == []
    assert store.history("feature_service", "driver_service")[-1].action == "delete"


def test_type_change_is_breaking_unless_forced(repo: Path, registry_url: str) -> None:
    store = store_for(repo, registry_url)
    store.apply()
    (repo / "defs.py").write_text(
        DRIVER_DEFS.replace('Field("trips_today", Int64)', 'Field("trips_today", Float64)')
    )
    table = driver_table()
    table = table.set_column(4, "trips_today", table["trips_today"].cast(pa.float64()))
    pq.write_table(table, repo / "data" / "drivers.parquet")
    before = store.registry.generation(store.project)
    with pytest.raises(BreakingChangeError, match="'trips_today' changes type Int64 -> Float64"):
        store.apply()
    assert store.registry.generation(store.project) == before  # nothing written
    assert store.get_feature_view("driver_stats").feature("trips_today").dtype.name == "Int64"
    store.apply(force=True)
    assert store.get_feature_view("driver_stats").feature("trips_today").dtype.name == "Float64"


def test_entity_change_of_a_view_is_breaking(repo: Path, registry_url: str) -> None:
    store = store_for(repo, registry_url)
    store.apply()
    text = DRIVER_DEFS.replace(
        'driver = Entity(name="driver", join_keys=["driver_id"])',
        'driver = Entity(name="driver", join_keys=["driver_id"])\n'
        'rider = Entity(name="rider", join_keys=["driver_id"])',
    ).replace("entities=[driver]", "entities=[rider]")
    (repo / "defs.py").write_text(text)
    with pytest.raises(BreakingChangeError, match=r"entities change \['driver'\] -> \['rider'\]"):
        store.apply()


def test_invalid_repo_writes_nothing(repo: Path, registry_url: str) -> None:
    store = store_for(repo, registry_url)
    (repo / "data" / "drivers.parquet").unlink()
    with pytest.raises(ValidationError):
        store.apply()
    assert store.registry.generation(store.project) == 0
    assert store.list_feature_views() == []


def test_projects_are_isolated(tmp_path: Path, registry_url: str) -> None:
    one = store_for(make_repo(tmp_path / "one", project="one"), registry_url)
    two = store_for(make_repo(tmp_path / "two", project="two", files={}), registry_url)
    one.apply()
    assert two.list_feature_views() == []
    assert two.plan().counts()["delete"] == 0


def test_unreachable_registry_says_what_to_check() -> None:
    with pytest.raises(RegistryError, match="cannot open the registry.*FEATUREHUB_REGISTRY_URL"):
        SqlRegistry("postgresql://nobody@127.0.0.1:1/none?connect_timeout=1")


def _apply_repeatedly(repo: str, registry_url: str, times: int) -> None:
    store = store_for(Path(repo), registry_url)
    for _ in range(times):
        store.apply(force=True)


def test_concurrent_applies_never_mix(tmp_path: Path, registry_url: str) -> None:
    """Two repos with disjoint objects applied at once, many times: the registry always ends
    as exactly one of them, and every generation's history is one repo's complete change."""
    repo_a = make_repo(tmp_path / "a")
    repo_b = tmp_path / "b"
    shutil.copytree(repo_a, repo_b)
    renamed = DRIVER_DEFS.replace('"driver_stats"', '"driver_stats_b"').replace(
        '"driver_service"', '"driver_service_b"'
    )
    (repo_b / "defs.py").write_text(renamed)
    context = multiprocessing.get_context("spawn")
    workers = [
        context.Process(target=_apply_repeatedly, args=(str(r), registry_url, 8))
        for r in (repo_a, repo_b, repo_a, repo_b)
    ]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(120)
        assert worker.exitcode == 0
    store = store_for(repo_a, registry_url)
    views = {v.name for v in store.list_feature_views()}
    services = {s.name for s in store.list_feature_services()}
    assert (views, services) in (
        ({"driver_stats"}, {"driver_service"}),
        ({"driver_stats_b"}, {"driver_service_b"}),
    )
    # Replay the history generation by generation: after each, the registry held exactly
    # one repo's objects, never a mix.
    shared = {("entity", "driver"), ("source", "drivers")}
    expected = (
        shared | {("feature_view", "driver_stats"), ("feature_service", "driver_service")},
        shared | {("feature_view", "driver_stats_b"), ("feature_service", "driver_service_b")},
    )
    state: set[tuple[str, str]] = set()
    history = store.history()
    for generation in sorted({h.generation for h in history}):
        for entry in (h for h in history if h.generation == generation):
            if entry.action == "delete":
                state.discard((entry.kind, entry.name))
            else:
                state.add((entry.kind, entry.name))
        assert state in expected
