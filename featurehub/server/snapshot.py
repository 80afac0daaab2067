"""The catalog snapshot the request path resolves features against, the thread that
refreshes it, and the circuit breaker on the online store.

A request never queries the registry: `Refresher` reads it in the background (every
`registry.refresh_seconds`, or when woken by SIGHUP) and swaps in a new `Snapshot`.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import orjson

from featurehub import types
from featurehub.definitions.catalog import Catalog
from featurehub.definitions.feature_view import FeatureViewProjection
from featurehub.feature_store import FeatureStore
from featurehub.monitoring.log_format import AD_HOC
from featurehub.server import schemas
from featurehub.server.metrics import ServerMetrics

log = logging.getLogger("featurehub.server")

AD_HOC_CACHE_SIZE = 1024


@dataclass(frozen=True)
class Resolved:
    """Feature references resolved once: projections, and the join keys they need."""

    label: str  # the feature service name, or AD_HOC (a metrics label and log partition)
    service: str | None
    projections: list[FeatureViewProjection]
    join_keys: list[tuple[str, types.ValueType | None, str]]  # (key, type, view needing it)


def resolve(catalog: Catalog, features: Sequence[str] | str, service: str | None) -> Resolved:
    projections = catalog.resolve(features)
    keys: dict[str, tuple[str, types.ValueType | None, str]] = {}
    for projection in projections:
        view = projection.view
        for entity in view.entities:
            for key in entity.join_keys:
                keys.setdefault(key, (key, entity.key_types.get(key), view.name))
    return Resolved(service or AD_HOC, service, projections, list(keys.values()))


@dataclass
class Snapshot:
    """What the request path needs of the registry, precomputed; replaced, never mutated
    (except the bounded cache of ad-hoc feature lists)."""

    catalog: Catalog
    services: dict[str, Resolved]
    services_json: bytes
    views_json: bytes
    loaded_at: float = field(default_factory=time.time)
    ad_hoc: dict[tuple[str, ...], Resolved] = field(default_factory=dict)

    @classmethod
    def build(cls, catalog: Catalog) -> Snapshot:
        services = {
            name: resolve(catalog, [name], name) for name in sorted(catalog.feature_services)
        }
        return cls(
            catalog=catalog,
            services=services,
            services_json=orjson.dumps(schemas.feature_services_json(catalog)),
            views_json=orjson.dumps(schemas.feature_views_json(catalog)),
        )

    def features(self, references: tuple[str, ...]) -> Resolved:
        resolved = self.ad_hoc.get(references)
        if resolved is None:
            resolved = resolve(self.catalog, references, None)
            if len(self.ad_hoc) >= AD_HOC_CACHE_SIZE:
                self.ad_hoc.clear()
            self.ad_hoc[references] = resolved
        return resolved


class Refresher:
    """Reads the registry in a background thread: every `interval` seconds, or when woken."""

    def __init__(self, store: FeatureStore, interval: float, metrics: ServerMetrics) -> None:
        self.store = store
        self.interval = interval
        self.metrics = metrics
        self.snapshot: Snapshot | None = None
        self.error: str | None = None
        # Views whose online data is gone, checked with each refresh (None: not known yet).
        self.lost_views: dict[str, str] | None = None
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        # Other readers of the registry, called at each refresh (the model routes).
        self.also: list[Callable[[], None]] = []

    def refresh(self) -> None:
        """Read the registry now; keep the previous snapshot when it fails."""
        try:
            catalog = self.store.catalog()
            if self.snapshot is None or self.snapshot.catalog is not catalog:
                self.snapshot = Snapshot.build(catalog)
            for read in self.also:
                read()
            self.error = None
            self.metrics.registry_refreshes.labels("ok").inc()
        except Exception as exc:  # the registry being down must not stop the server
            self.error = f"{type(exc).__name__}: {exc}"
            self.metrics.registry_refreshes.labels("error").inc()
            log.warning("registry refresh failed: %s", self.error)
        self.check_online_data()
        self.check_freshness()

    def check_freshness(self) -> None:
        """Read each view's last success and newest materialized event (two registry
        queries) for /metrics; the last figures are kept when the registry is down."""
        try:
            self.metrics.freshness.update(self.store.freshness())
        except Exception as exc:
            log.warning("freshness check failed: %s: %s", type(exc).__name__, exc)

    def check_online_data(self) -> None:
        """Compare the online store's markers with the registry's runs (one registry query,
        one read of the markers): an online store that restarted empty answers not_found for
        every key, which only this notices. A store that cannot be reached is the breaker's
        business; the last answer is kept."""
        try:
            lost = self.store.lost_online_views()
        except Exception as exc:
            log.warning("online data check failed: %s: %s", type(exc).__name__, exc)
            return
        if lost and lost != self.lost_views:
            log.error("the online store lost data: %s", "; ".join(lost.values()))
        self.lost_views = lost
        self.metrics.online_views_lost.set(len(lost))

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="featurehub-registry", daemon=True)
        self._thread.start()

    def wake(self) -> None:
        self._wake.set()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(10)

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(self.interval)
            self._wake.clear()
            if not self._stop.is_set():
                self.refresh()


class OnlineHealth:
    """A circuit breaker on the online store: down after a failure, probed now and then."""

    def __init__(self, probe_interval: float) -> None:
        self.probe_interval = probe_interval
        self.up = True
        self.error = ""
        self._next_probe = 0.0

    def allow(self) -> bool:
        if self.up:
            return True
        now = time.monotonic()
        if now >= self._next_probe:
            self._next_probe = now + self.probe_interval
            return True
        return False

    def succeeded(self) -> None:
        self.up = True

    def failed(self, error: str) -> None:
        self.up = False
        self.error = error
        self._next_probe = time.monotonic() + self.probe_interval

    def retry_message(self) -> str:
        """The 503 answer while the store is marked down: its last error, and when to retry."""
        return (
            f"{self.error.rstrip('. ')}. The server tries it again every "
            f"{self.probe_interval:g}s: retry later"
        )
