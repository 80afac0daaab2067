"""The Redis online store: one key per entity, one packed value, one round trip per read.

Key layout: `<key_prefix>:<project>:<view>:<entity key>` (entity key as in `codec`), so several
projects share one Redis and `delete_view` is a SCAN of one prefix. The value is the packed row
of `codec` (timestamps header, null bitmap, fixed-width features, then strings). A read of any
number of keys, of one view or several (`read_many_columns`), is one MGET, decoded column-wise,
sent on connections of its own past redis-py's client layer (`redis_reads`): a one-key read is
then little more than the round trip.

Writes (`redis_writes`) are atomic newest-wins batches: MSETNX while every key is new, else a
Lua script that reads the stored headers with one MGET and MSETs the rows that are not older.
Standalone Redis only: a batch spans hash slots, which Redis Cluster refuses.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import pyarrow as pa
import redis
import redis.exceptions as rex
from redis.backoff import NoBackoff
from redis.retry import Retry

from featurehub.config import OnlineStoreConfig
from featurehub.definitions import FeatureView
from featurehub.definitions.names import check_name
from featurehub.online.base import (
    ColumnarRead,
    EntityKey,
    OnlineStore,
    OnlineStoreError,
    OnlineStoreUnavailable,
    ReadRequest,
)
from featurehub.online.codec import LayoutCache, encode_keys, latest_rows_arrow
from featurehub.online.redis_reads import MgetPool
from featurehub.online.redis_writes import BatchWriter


@dataclass(frozen=True)
class RedisOnlineStoreConfig:
    """Connection settings: `url` is redis://[[user]:password@]host[:port][/db] or rediss://
    (TLS); `password` applies when the URL has none; `tls` turns redis:// into rediss://."""

    url: str
    key_prefix: str = "featurehub"
    password: str | None = None
    tls: bool = False
    timeout_seconds: float = 0.5

    @classmethod
    def from_config(cls, config: OnlineStoreConfig) -> RedisOnlineStoreConfig:
        return cls(
            url=config.url,
            key_prefix=config.key_prefix,
            password=config.password,
            tls=config.tls,
            timeout_seconds=config.timeout_seconds,
        )

    @property
    def connection_url(self) -> str:
        if self.tls and self.url.startswith("redis://"):
            return "rediss://" + self.url[len("redis://") :]
        return self.url

    @property
    def display_url(self) -> str:
        """The URL without its password, for messages and logs."""
        parts = urlsplit(self.connection_url)
        host = parts.hostname or "localhost"
        netloc = f"{host}:{parts.port or 6379}"
        if parts.username:
            netloc = f"{parts.username}@{netloc}"
        return f"{parts.scheme}://{netloc}{parts.path or '/0'}"


class RedisOnlineStore(OnlineStore):
    """The online store on a standalone Redis (or Valkey/KeyDB) server."""

    def __init__(self, config: RedisOnlineStoreConfig, project: str) -> None:
        check_name("project", project)
        self.config = config
        options: dict[str, Any] = {
            "socket_timeout": config.timeout_seconds,
            "socket_connect_timeout": config.timeout_seconds,
            # One immediate retry re-opens a pooled connection that a server restart broke;
            # timeouts are not retried so an unreachable server fails within the timeout.
            "retry": Retry(NoBackoff(), 1, supported_errors=(rex.ConnectionError,)),
        }
        if config.password is not None and urlsplit(config.connection_url).password is None:
            options["password"] = config.password
        self._client = redis.Redis.from_url(config.connection_url, **options)
        pool = self._client.connection_pool
        self._writer = BatchWriter(pool, self._client)
        self._reads = MgetPool(lambda: pool.connection_class(**pool.connection_kwargs))
        self._namespace = f"{config.key_prefix}:{project}:"
        # A hash of view -> run id; "#" cannot start a view name, so no view's keys match it.
        self._markers = f"{self._namespace}#markers".encode()
        self._prefixes: dict[str, bytes] = {}
        self._layouts = LayoutCache()

    @classmethod
    def from_config(cls, config: OnlineStoreConfig, project: str) -> RedisOnlineStore:
        return cls(RedisOnlineStoreConfig.from_config(config), project)

    def key_prefix(self, view_name: str) -> bytes:
        """`<key_prefix>:<project>:<view>:`, the start of every key of the view."""
        prefix = self._prefixes.get(view_name)
        if prefix is None:
            prefix = self._prefixes[view_name] = f"{self._namespace}{view_name}:".encode()
        return prefix

    def write(self, view: FeatureView, table: pa.Table) -> int:
        rows, keys = latest_rows_arrow(view, table, self.key_prefix(view.name))
        if not len(keys):
            return 0
        try:
            return self._writer.write(keys, rows, self._layouts.get(view))
        except rex.RedisError as exc:
            raise self._error(exc) from exc

    def read_columns(
        self, view: FeatureView, keys: Sequence[EntityKey], features: Sequence[str]
    ) -> ColumnarRead:
        decode = self._layouts.get(view).decoder(features)
        if not keys:
            return decode([])
        return decode(self._mget(encode_keys(keys, self.key_prefix(view.name))))

    def read_many_columns(self, requests: Sequence[ReadRequest]) -> list[ColumnarRead]:
        """All views' keys in one MGET: a request costs one round trip, not one per view."""
        names: list[bytes] = []
        for view, keys, _ in requests:
            names.extend(encode_keys(keys, self.key_prefix(view.name)))
        decoders = [self._layouts.get(view).decoder(features) for view, _, features in requests]
        found = self._mget(names) if names else []
        results: list[ColumnarRead] = []
        start = 0
        for (_, keys, _), decode in zip(requests, decoders, strict=True):
            results.append(decode(found[start : start + len(keys)]))
            start += len(keys)
        return results

    def _mget(self, names: list[bytes]) -> list[bytes | None]:
        try:
            return self._reads.mget(names)
        except rex.RedisError as exc:
            raise self._error(exc) from exc

    def delete_view(self, view_name: str) -> None:
        pattern = _escape_glob(self.key_prefix(view_name)) + b"*"
        try:
            batch: list[bytes] = []
            for key in self._client.scan_iter(match=pattern, count=1000):
                batch.append(key)
                if len(batch) >= 1000:
                    self._client.unlink(*batch)
                    batch = []
            if batch:
                self._client.unlink(*batch)
            self._client.hdel(self._markers, view_name)
        except rex.RedisError as exc:
            raise self._error(exc) from exc

    def write_marker(self, view_name: str, run_id: int) -> None:
        try:
            # Newest run wins, atomically: a slow older run never moves the marker back.
            self._client.eval(_MARKER_SCRIPT, 1, self._markers, view_name, run_id)
        except rex.RedisError as exc:
            raise self._error(exc) from exc

    def read_markers(self) -> dict[str, int]:
        try:
            found = self._client.hgetall(self._markers)
        except rex.RedisError as exc:
            raise self._error(exc) from exc
        return {
            view.decode() if isinstance(view, bytes) else view: int(run_id)
            for view, run_id in found.items()
        }

    def ping(self) -> None:
        try:
            self._client.ping()
        except rex.RedisError as exc:
            raise self._error(exc) from exc

    def close(self) -> None:
        self._reads.close()
        self._client.close()

    def _error(self, exc: rex.RedisError) -> OnlineStoreError:
        """The featurehub error for a redis-py error, naming the URL (never the password)."""
        url = self.config.display_url
        where = (
            "The URL comes from featurehub.yaml online_store.url or FEATUREHUB_ONLINE_STORE_URL."
        )
        if isinstance(exc, (rex.AuthenticationError, rex.AuthorizationError)) or (
            isinstance(exc, rex.ResponseError) and "NOAUTH" in str(exc)
        ):
            hint = "check the password (online_store.password or the URL)"
        elif isinstance(exc, rex.TimeoutError):
            hint = (
                f"no answer within {self.config.timeout_seconds}s: check the host and port, "
                "the network, and online_store.timeout_seconds"
            )
        elif isinstance(exc, rex.ConnectionError):
            hint = "check that redis-server is running and reachable at that host and port"
        elif isinstance(exc, (rex.ReadOnlyError, rex.OutOfMemoryError)):
            hint = "the server refuses writes: point the URL at the primary, or raise maxmemory"
        else:
            return OnlineStoreError(
                f"online store {url} refused a command ({type(exc).__name__}: {exc}); another "
                f"program may use the key prefix {self._namespace!r}. {where}"
            )
        return OnlineStoreUnavailable(
            f"online store {url} is unavailable ({type(exc).__name__}: {exc}); {hint}. {where}"
        )


_MARKER_SCRIPT = """
local current = tonumber(redis.call('HGET', KEYS[1], ARGV[1]) or '0')
if tonumber(ARGV[2]) > current then redis.call('HSET', KEYS[1], ARGV[1], ARGV[2]) end
"""


def _escape_glob(prefix: bytes) -> bytes:
    """Escape SCAN MATCH's special characters, which a key_prefix may contain."""
    for char in (b"\\", b"*", b"?", b"[", b"]"):
        prefix = prefix.replace(char, b"\\" + char)
    return prefix
