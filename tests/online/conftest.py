"""Online store fixtures: a real redis-server per session, a fresh project per test."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from featurehub.config import OnlineStoreConfig
from featurehub.online import OnlineStore, build_online_store

StoreFactory = Callable[[str], OnlineStore]


@pytest.fixture
def project() -> str:
    """A project name of this test alone: its Redis keys are apart from every other test's."""
    return f"p_{uuid.uuid4().hex[:12]}"


@pytest.fixture(params=["sqlite", "redis"])
def store_factory(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[StoreFactory]:
    """Builds stores of one backend (per param) for any project; all closed after the test."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'online.db'}"
    else:
        url = request.getfixturevalue("redis_url")
    stores: list[OnlineStore] = []

    def build(project: str) -> OnlineStore:
        store = build_online_store(OnlineStoreConfig(url=url), project)
        stores.append(store)
        return store

    yield build
    for store in stores:
        store.close()


@pytest.fixture
def online_store(store_factory: StoreFactory, project: str) -> OnlineStore:
    """An empty online store on each backend."""
    return store_factory(project)
