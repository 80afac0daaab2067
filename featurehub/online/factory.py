"""Build the online store a URL names: a new store is one module plus one entry in STORES."""

from __future__ import annotations

from featurehub.config import OnlineStoreConfig, RepoConfig
from featurehub.errors import ConfigError
from featurehub.online.base import OnlineStore
from featurehub.online.redis import RedisOnlineStore
from featurehub.online.sqlite import SQLiteOnlineStore

STORES: dict[str, type[OnlineStore]] = {
    "sqlite": SQLiteOnlineStore,
    "redis": RedisOnlineStore,
    "rediss": RedisOnlineStore,
}


def build_online_store(config: OnlineStoreConfig, project: str) -> OnlineStore:
    """The store for `config.url`'s scheme, for `project`. Relative sqlite paths are relative
    to the working directory; `online_store_for` resolves them against the repo instead."""
    scheme, separator, _ = config.url.partition("://")
    store = STORES.get(scheme.lower()) if separator else None
    if store is None:
        known = ", ".join(f"{name}://" for name in STORES)
        raise ConfigError(
            f"online_store.url {config.url!r} has an unknown scheme; use one of {known} "
            "(e.g. sqlite:///data/online.db or redis://localhost:6379/0)"
        )
    return store.from_config(config, project)


def online_store_for(repo: RepoConfig) -> OnlineStore:
    """The online store of a repo's featurehub.yaml (env overrides already applied)."""
    config = repo.online_store.model_copy(update={"url": repo.online_store_url})
    return build_online_store(config, repo.project)
