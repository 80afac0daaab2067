"""Stages as aliases: promote, rollback, archive, alias, and the history that explains them;
checked against a plain-Python model of the lifecycle (the oracle) with hypothesis."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field, replace

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from featurehub import FeatureStore
from featurehub.models import ModelError
from featurehub.registry.models import ModelCatalog
from tests.models.conftest import train


def _register_versions(store: FeatureStore, count: int) -> None:
    for c in (1.0, 0.5, 0.1, 0.05)[:count]:
        store.models.register(
            "driver_model", train(store, c=c), feature_service="driver_service",
            training_dataset="train", metrics={"accuracy": 0.9},
        )  # fmt: skip


def test_promote_rollback_archive_and_history(model_store: FeatureStore) -> None:
    """On both registries."""
    _register_versions(model_store, 3)
    models = model_store.models
    models.promote("driver_model", 1, "staging")
    assert models.stage("driver_model:1") == "Staging"
    models.promote("driver_model", 1, "production", reason="first release")
    assert [models.stage(f"driver_model:{v}") for v in (1, 2, 3)] == ["Production", "None", "None"]
    models.promote("driver_model", 2, "production")
    assert models.stage("driver_model:1") == "Archived"
    assert models.get("driver_model@production").version == 2
    assert models.get("models:/driver_model@Production").version == 2
    models.alias("driver_model", "champion", 3)
    assert models.get("driver_model@champion").version == 3
    assert models.stage("driver_model:3") == "None"

    changes = models.rollback("driver_model", reason="latency")
    assert [(c.action, c.alias, c.version, c.previous_version) for c in changes] == [
        ("unarchive", "archived", None, 1),
        ("rollback", "production", 1, 2),
        ("archive", "archived", 2, None),
    ]
    assert models.get("driver_model@production").version == 1
    assert models.stage("driver_model:2") == "Archived"
    with pytest.raises(ModelError, match="replaced no production version"):
        models.rollback("driver_model")
    models.archive("driver_model", 3, reason="superseded")
    with pytest.raises(ModelError, match="no alias 'champion'"):
        models.get("driver_model@champion")

    history = models.history("driver_model")
    assert [(e.action, e.alias, e.version, e.previous_version) for e in history] == [
        ("promote", "staging", 1, None),
        ("promote", "production", 1, None),
        ("remove", "staging", None, 1),
        ("promote", "production", 2, 1),
        ("archive", "archived", 1, None),
        ("alias", "champion", 3, None),
        ("unarchive", "archived", None, 1),
        ("rollback", "production", 1, 2),
        ("archive", "archived", 2, None),
        ("remove", "champion", None, 3),
        ("archive", "archived", 3, None),
    ]
    assert history[1].reason == "first release" and history[1].gate is not None
    assert history[1].forced is False and history[1].actor
    assert history[7].reason == "latency" and history[7].gate is None

    models.promote("driver_model", 2, "production")  # archived: it comes back, gated
    unarchived, promoted = models.history("driver_model")[-3:-1]
    assert (unarchived.action, unarchived.gate) == ("unarchive", None)
    assert promoted.action == "promote" and promoted.gate is not None


def test_refusals_change_nothing(local_store: FeatureStore) -> None:
    _register_versions(local_store, 2)
    models = local_store.models
    models.promote("driver_model", 1, "production")
    before = models.history("driver_model")
    refusals = [
        (lambda: models.promote("driver_model", 1, "production"), "already in production"),
        (lambda: models.promote("driver_model", 1, "staging"), "cannot move back to staging"),
        (lambda: models.promote("driver_model", 9, "staging"), "has no version 9"),
        (lambda: models.promote("driver_model", 2, "qa"), "unknown stage 'qa'"),
        (lambda: models.archive("driver_model", 1), "is in production"),
        (lambda: models.alias("driver_model", "production", 2), "reserved"),
        (lambda: models.alias("driver_model", "bad;alias", 2), "alias name"),
        (lambda: models.rollback("driver_model"), "replaced no production version"),
        (lambda: models.rollback("nope"), "no model named 'nope'"),
    ]
    for action, message in refusals:
        with pytest.raises(ModelError, match=message):
            action()
    assert models.history("driver_model") == before


# -- the oracle ----------------------------------------------------------------------------


class Refused(Exception):
    pass


@dataclass
class Oracle:
    """The lifecycle as the docs state it, in plain Python."""

    versions: set[int]
    aliases: dict[str, int] = field(default_factory=dict)
    archived: set[int] = field(default_factory=set)
    promotions: list[tuple[int, int | None]] = field(default_factory=list)
    events: list[tuple[str, str, int | None, int | None]] = field(default_factory=list)

    def _unarchive(self, version: int) -> None:
        if version in self.archived:
            self.archived.discard(version)
            self.events.append(("unarchive", "archived", None, version))

    def _archive(self, version: int) -> None:
        self.archived.add(version)
        self.events.append(("archive", "archived", version, None))

    def _set(self, action: str, alias: str, version: int) -> None:
        self.events.append((action, alias, version, self.aliases.get(alias)))
        self.aliases[alias] = version

    def _remove(self, alias: str) -> None:
        self.events.append(("remove", alias, None, self.aliases.pop(alias)))

    def promote(self, version: int, stage: str) -> None:
        if self.aliases.get(stage) == version:
            raise Refused
        if stage == "staging" and self.aliases.get("production") == version:
            raise Refused
        self._unarchive(version)
        replaced = self.aliases.get(stage)
        self._set("promote", stage, version)
        if stage == "production":
            self.promotions.append((version, replaced))
            if self.aliases.get("staging") == version:
                self._remove("staging")
            if replaced is not None:
                self._archive(replaced)

    def rollback(self) -> None:
        current = self.aliases.get("production")
        earlier = [before for after, before in self.promotions if after == current]
        if current is None or not earlier or earlier[-1] is None:
            raise Refused
        target = earlier[-1]
        self._unarchive(target)
        self._set("rollback", "production", target)
        if self.aliases.get("staging") == target:
            self._remove("staging")
        self._archive(current)

    def archive(self, version: int) -> None:
        if self.aliases.get("production") == version or version in self.archived:
            raise Refused
        for alias in sorted(a for a, v in self.aliases.items() if v == version):
            self._remove(alias)
        self._archive(version)

    def alias(self, alias: str, version: int) -> None:
        if self.aliases.get(alias) == version:
            raise Refused
        self._set("alias", alias, version)

    def stage(self, version: int) -> str:
        if self.aliases.get("production") == version:
            return "Production"
        if self.aliases.get("staging") == version:
            return "Staging"
        return "Archived" if version in self.archived else "None"


VERSIONS = st.sampled_from([1, 2, 3])
OPERATIONS = st.lists(
    st.one_of(
        st.tuples(st.just("promote"), VERSIONS, st.sampled_from(["staging", "production"])),
        st.tuples(st.just("rollback")),
        st.tuples(st.just("archive"), VERSIONS),
        st.tuples(st.just("alias"), st.sampled_from(["champion", "challenger"]), VERSIONS),
    ),
    max_size=14,
)


def _fresh_model(store: FeatureStore) -> str:
    """A new model with three versions, copied from the registered ones (cheap per example)."""
    name = f"m_{uuid.uuid4().hex[:10]}"
    catalog = ModelCatalog(store.registry.engine, store.project)
    for version in store.models.versions("driver_model"):
        catalog.insert(replace(version, name=name))
    return name


@pytest.fixture
def three_versions(local_store: FeatureStore) -> FeatureStore:
    _register_versions(local_store, 3)
    return local_store


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(operations=OPERATIONS)
def test_sequences_match_the_oracle(
    three_versions: FeatureStore, operations: list[tuple[object, ...]]
) -> None:
    store = three_versions
    name = _fresh_model(store)
    oracle = Oracle({1, 2, 3})
    models = store.models
    for operation in operations:
        kind, *arguments = operation
        real = {
            "promote": lambda v, s: models.promote(name, v, s),
            "rollback": lambda: models.rollback(name),
            "archive": lambda v: models.archive(name, v),
            "alias": lambda a, v: models.alias(name, a, v),
        }[str(kind)]
        try:
            getattr(oracle, str(kind))(*arguments)
            expected_refusal = False
        except Refused:
            expected_refusal = True
        try:
            real(*arguments)
            refused = False
        except ModelError:
            refused = True
        assert refused == expected_refusal, (operation, oracle)
        state = models.lifecycle(name)
        assert state.aliases == oracle.aliases, operation
        assert state.archived == oracle.archived, operation
        assert [models.stage(f"{name}:{v}") for v in (1, 2, 3)] == [
            oracle.stage(v) for v in (1, 2, 3)
        ]
    events = [(e.action, e.alias, e.version, e.previous_version) for e in models.history(name)]
    assert events == oracle.events
