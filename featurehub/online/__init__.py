"""Online stores: the newest feature values per entity key, read by the feature server."""

from featurehub.online.base import (
    ColumnarRead,
    OnlineRow,
    OnlineStore,
    OnlineStoreError,
    OnlineStoreUnavailable,
)
from featurehub.online.factory import STORES, build_online_store, online_store_for
from featurehub.online.redis import RedisOnlineStore, RedisOnlineStoreConfig
from featurehub.online.sqlite import SQLiteOnlineStore

__all__ = [
    "STORES",
    "ColumnarRead",
    "OnlineRow",
    "OnlineStore",
    "OnlineStoreError",
    "OnlineStoreUnavailable",
    "RedisOnlineStore",
    "RedisOnlineStoreConfig",
    "SQLiteOnlineStore",
    "build_online_store",
    "online_store_for",
]
