"""FeatureStore: the Python entry point. It builds the parts from config and delegates.

It holds no logic of its own beyond wiring: definitions come from `repo.loader`, checks from
`repo.validate`, storage from `registry`. Nothing here prints; the CLI renders results.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Sequence
from datetime import datetime, timedelta, timezone
from functools import partial
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING

import pyarrow as pa

from featurehub.config import RepoConfig, load_config
from featurehub.datasets import Dataset, Datasets
from featurehub.datasets.files import DatasetFiles
from featurehub.definitions import Entity, FeatureService, FeatureView
from featurehub.definitions.catalog import Catalog
from featurehub.engines.base import Engine, MaterializationResult, MaterializationTask
from featurehub.engines.local import LocalEngine
from featurehub.engines.planning import backfill_tasks, incremental_tasks
from featurehub.engines.rebuild import OfflineStoreEngine, rebuild_tasks
from featurehub.engines.runner import Fence, ProgressCallback, run_tasks
from featurehub.errors import FeaturehubError
from featurehub.monitoring.alerts import AlertDispatcher
from featurehub.monitoring.freshness import Freshness, view_freshness
from featurehub.monitoring.sdk_log import SdkServingLog
from featurehub.monitoring.status import ViewStatus, view_statuses
from featurehub.offline.parquet import ParquetOfflineStore
from featurehub.offline.retrieval import (
    EntityInput,
    RetrievalError,
    RetrievalJob,
    check_entity_table,
    load_entity_table,
)
from featurehub.offline.source_reader import connect
from featurehub.online.base import OnlineStore
from featurehub.online.factory import online_store_for
from featurehub.online.lookup import EntityRows, OnlineResponse, entity_rows_of, lookup
from featurehub.online.markers import lost_views
from featurehub.registry import Plan, RegistryState, SqlRegistry
from featurehub.registry.datasets import DatasetCatalog
from featurehub.registry.leases import Leases, view_lease
from featurehub.registry.runs import Run
from featurehub.registry.skew_checks import SkewCheckLog
from featurehub.registry.sql import HistoryEntry
from featurehub.repo.loader import load_repo
from featurehub.repo.validate import drifted_views, validate_repo

if TYPE_CHECKING:  # the skew checks load scipy, models skops: only when used
    from featurehub.models import Models
    from featurehub.skew.check import SkewReport


def _service_name(features: Sequence[str] | FeatureService | str) -> str | None:
    """The feature service a look-up named, None for a list of feature references (logged
    as ad-hoc, as the server logs them)."""
    if isinstance(features, FeatureService):
        return features.name
    if isinstance(features, str) and ":" not in features:
        return features
    return None


class FeatureStore:
    """A feature repo and the stores its configuration points to."""

    def __init__(
        self, repo_path: str | os.PathLike[str] = ".", *, config: RepoConfig | None = None
    ) -> None:
        self.config = config or load_config(repo_path)
        self._registry: SqlRegistry | None = None
        self._state: RegistryState | None = None
        self._offline: ParquetOfflineStore | None = None
        self._online: OnlineStore | None = None
        self._serving_log: SdkServingLog | None = None
        self._serving_log_lock = threading.Lock()  # threads of an app share one log
        self._alerts: AlertDispatcher | None = None
        self._alerts_lock = threading.Lock()
        self._checked_at = 0.0
        self._leases: Leases | None = None
        # The registry, leases and stores are built at first use, which may be on several
        # threads at once (the scheduler's jobs): each must be built once, or two threads
        # would hold leases as two holders. Re-entrant: the offline store needs the registry.
        self._parts_lock = threading.RLock()

    @property
    def project(self) -> str:
        return self.config.project

    @property
    def repo_path(self) -> Path:
        return self.config.repo_path

    @property
    def registry(self) -> SqlRegistry:
        with self._parts_lock:
            if self._registry is None:
                self._registry = SqlRegistry(self.config.registry_url)
            return self._registry

    @property
    def leases(self) -> Leases:
        """The project's leases, held as this store (one holder per store)."""
        with self._parts_lock:
            if self._leases is None:
                seconds = self.config.scheduler.lease_seconds
                self._leases = self.registry.leases(self.project, seconds)
            return self._leases

    def close(self) -> None:
        """Release the stores; first commit what the serving log holds (nothing is lost) and
        deliver the queued alerts (for a bounded time: docs/alerts.md)."""
        if self._alerts is not None:
            self._alerts.close()
            self._alerts = None
        if self._serving_log is not None:
            self._serving_log.close()
            self._serving_log = None
        if self._online is not None:
            self._online.close()
            self._online = None
        if self._registry is not None:
            self._registry.close()
            self._registry = None
            self._leases = None

    def __enter__(self) -> FeatureStore:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- definitions: repo -> registry -----------------------------------------------------------

    def load_definitions(self) -> Catalog:
        """The repo's definitions, checked against their sources (nothing is written)."""
        return validate_repo(load_repo(self.repo_path), self.repo_path)

    def plan(self) -> Plan:
        """What `apply` would change in the registry."""
        return self.registry.plan(self.project, self.load_definitions().to_specs())

    def apply(self, *, force: bool = False) -> Plan:
        """Validate the repo, then make the registry match it in one transaction.

        A deleted view, or one re-keyed with `force`, loses its stored data (hidden offline in
        the same transaction, cleared online after), so stale rows never come back.
        """
        plan = self.registry.apply(self.project, self.load_definitions().to_specs(), force=force)
        self._state = None
        for view in plan.reset_views:
            self.online_store.delete_view(view)
        return plan

    # -- registered definitions ------------------------------------------------------------------

    def catalog(self) -> Catalog:
        """Registered definitions, re-read only when an apply changed them."""
        generation = self.registry.generation(self.project)
        if self._state is None or self._state.generation != generation:
            self._state = self.registry.state(self.project)
        return self._state.catalog

    def list_entities(self) -> list[Entity]:
        return list(self.catalog().entities.values())

    def list_feature_views(self) -> list[FeatureView]:
        return list(self.catalog().feature_views.values())

    def list_feature_services(self) -> list[FeatureService]:
        return list(self.catalog().feature_services.values())

    def get_entity(self, name: str) -> Entity:
        return self.catalog().entity(name)

    def get_feature_view(self, name: str) -> FeatureView:
        return self.catalog().feature_view(name)

    def get_feature_service(self, name: str) -> FeatureService:
        return self.catalog().feature_service(name)

    def history(self, kind: str | None = None, name: str | None = None) -> list[HistoryEntry]:
        return self.registry.history(self.project, kind, name)

    # -- materialization -------------------------------------------------------------------------

    def materialize(
        self,
        start: datetime,
        end: datetime,
        views: Sequence[str] | None = None,
        *,
        engine: str | None = None,
        on_progress: ProgressCallback | None = None,
        offline: bool = True,
        online: bool = True,
        as_of: datetime | None = None,
    ) -> list[MaterializationResult]:
        """Backfill: the views' rows with event time in [start, end) into the stores.

        Naive datetimes are UTC. Only rows visible (event and created time passed) before
        `as_of`, now by default, are taken; later ones are left for an incremental run to
        take when they are due. Re-running an interval replaces what it stored before. The
        watermark does not move. `offline=False`/`online=False` write one store only.
        """
        if not (offline or online):
            raise FeaturehubError("materialize: write the offline store, the online one, or both")
        tasks = backfill_tasks(
            self._views(views), start, end, as_of=as_of, offline=offline, online=online
        )
        return self._run(tasks, engine, on_progress)

    def materialize_incremental(
        self,
        end: datetime | None = None,
        views: Sequence[str] | None = None,
        *,
        engine: str | None = None,
        on_progress: ProgressCallback | None = None,
    ) -> list[MaterializationResult]:
        """Take what arrived since each view's watermark, up to `end` (now by default, and
        never later than now): late rows and rows that became due included. See
        `featurehub.engines.planning` for the exact rule.

        It holds each view's lease (featurehub/registry/leases.py) from before it reads the
        watermark until the run is recorded, so two concurrent runs never take the same
        window twice: LeaseHeld says which process is running the view."""
        selected = self._views(views)
        runs = self.registry.runs(self.project)
        leases = self.leases
        with leases.hold([view_lease(view.name) for view in selected]):
            tasks = incremental_tasks(selected, runs, end=end)
            return self._run(
                tasks,
                engine,
                on_progress,
                fence=lambda view: partial(leases.check_held, view_lease(view)),
            )

    def rebuild_online(
        self, views: Sequence[str] | None = None, *, on_progress: ProgressCallback | None = None
    ) -> list[MaterializationResult]:
        """Rewrite the online store from the offline store (the newest stored row per key),
        reading no source: for an online store that lost its data."""
        engine = OfflineStoreEngine(self.offline_store, self.online_store)
        return run_tasks(
            engine,
            "offline-store",
            self.registry.runs(self.project),
            self.offline_store,
            self.online_store,
            rebuild_tasks(self._views(views)),
            on_progress,
        )

    def lost_online_views(self) -> dict[str, str]:
        """Views whose data the online store lost (see `featurehub.online.markers`), with
        the command that rebuilds each; empty when the store holds what was written."""
        expected = self.registry.runs(self.project).last_online_runs()
        online = {view.name for view in self.list_feature_views() if view.online}
        return lost_views(
            {view: run for view, run in expected.items() if view in online}, self.online_store
        )

    def status(self, now: datetime | None = None) -> list[ViewStatus]:
        """Every view's watermark, last run, freshness (at `now`, default now) and online
        data; failing and stale views first."""
        views, runs = self.list_feature_views(), self.registry.runs(self.project)
        return view_statuses(views, runs, self.lost_online_views(), self.freshness(now))

    def freshness(self, now: datetime | None = None) -> dict[str, Freshness]:
        """Per view: last success, newest materialized event, staleness and its bound."""
        return view_freshness(
            self.list_feature_views(),
            self.registry.runs(self.project),
            self.registry.offline_commits(self.project),
            now or datetime.now(timezone.utc),
        )

    def runs(self, view: str | None = None, limit: int = 50) -> list[Run]:
        """Recent materialization runs, newest first."""
        return self.registry.runs(self.project).list(view, limit)

    def _views(self, names: Sequence[str] | None) -> list[FeatureView]:
        catalog = self.catalog()
        if names:
            return [catalog.feature_view(name) for name in names]
        return list(catalog.feature_views.values())

    def _run(
        self,
        tasks: list[MaterializationTask],
        engine_name: str | None,
        on_progress: ProgressCallback | None,
        fence: Fence | None = None,
    ) -> list[MaterializationResult]:
        name = engine_name or self.config.engine.type
        engine: Engine
        if name == "local":
            engine = LocalEngine(self.repo_path, self.offline_store, self.online_store)
        elif name == "spark":
            from featurehub.engines.spark import SparkEngine

            online_config = self.config.online_store.model_copy(
                update={"url": self.config.online_store_url}
            )
            engine = SparkEngine(
                self.repo_path, self.offline_store, self.config.spark, online_config, self.project
            )
        else:
            raise FeaturehubError(f"unknown engine {name!r}; use 'local' or 'spark'")
        online = self.online_store if any(task.writes_online for task in tasks) else None
        return run_tasks(
            engine,
            name,
            self.registry.runs(self.project),
            self.offline_store,
            online,
            tasks,
            on_progress,
            refused=drifted_views([task.view for task in tasks], self.repo_path),
            fence=fence,
        )

    # -- online: serving ---------------------------------------------------------------------------

    @property
    def online_store(self) -> OnlineStore:
        with self._parts_lock:
            if self._online is None:
                self._online = online_store_for(self.config)
            return self._online

    def get_online_features(
        self,
        features: Sequence[str] | FeatureService | str,
        entity_rows: EntityRows,
        *,
        full_feature_names: bool = False,
        log: bool | None = None,
    ) -> OnlineResponse:
        """The latest values of `features` for each entity row, with a status per value
        (present, not_found, expired) and its event timestamp.

        Entity rows are a list of dicts of join keys, columns as the HTTP API takes them
        (`{"driver_id": [1, 2]}`) or a pandas DataFrame; NumPy integers are integers. Keys are
        checked by the server's rule (`featurehub.definitions.entity_keys`): a key the server
        refuses is refused here too.

        TTL is applied now, as `get_historical_features` applies it at an entity timestamp of
        now. Definitions come from a cache refreshed every `registry.refresh_seconds`, so no
        registry query runs per call.

        `log=True` writes the answer to the serving log as the feature server does (same
        records, `source = 'sdk'`), in the background; `log=None` does when featurehub.yaml
        says `serving_log: {sdk: true}`, sampled by its rates. See docs/serving-log.md.
        """
        rows = entity_rows_of(entity_rows)
        projections = self._serving_catalog().resolve(features)
        response = lookup(
            self.online_store, projections, rows, full_feature_names=full_feature_names
        )
        if log or (log is None and self.config.serving_log.sdk):
            self.serving_log.record(_service_name(features), response, sample=log is None)
        return response

    @property
    def serving_log(self) -> SdkServingLog:
        """The SDK's serving log, started at the first logged call (its root checked then:
        a root that cannot be written raises ServingLogError) and flushed by `close`."""
        with self._serving_log_lock:
            if self._serving_log is None:
                self._serving_log = SdkServingLog(self.config.serving_log, self.repo_path)
            return self._serving_log

    def _serving_catalog(self) -> Catalog:
        now = time.monotonic()
        if self._state is None or now - self._checked_at >= self.config.registry.refresh_seconds:
            self._checked_at = now
            return self.catalog()
        return self._state.catalog

    # -- offline: training data --------------------------------------------------------------------

    @property
    def offline_store(self) -> ParquetOfflineStore:
        with self._parts_lock:
            if self._offline is None:
                commits = self.registry.offline_commits(self.project)
                self._offline = ParquetOfflineStore(self.config.offline_root, self.project, commits)
            return self._offline

    def get_historical_features(
        self,
        entity_df: EntityInput,
        features: Sequence[str] | FeatureService | str,
        *,
        timestamp_column: str = "event_timestamp",
        full_feature_names: bool = False,
        created_cutoff: bool = True,
    ) -> RetrievalJob:
        """Point-in-time correct feature values for each entity row (see docs/point-in-time.md).

        Names, columns, types and offline data are checked now; the join runs when the job's
        result is asked for. `created_cutoff=False` lets values created after a row's time
        (late backfills) in, as Feast does; the default keeps them out. `job.save(name)` keeps
        the result as an immutable training dataset (docs/datasets.md).
        """
        from featurehub.offline.pit import ViewQuery, point_in_time_join

        projections = self.catalog().resolve(features)
        entity = load_entity_table(entity_df, self.repo_path)
        check_entity_table(entity, projections, timestamp_column)
        queries = []
        for projection in projections:
            view = projection.view
            relation = self.offline_store.relation(view)
            if relation is None:
                raise RetrievalError(
                    f"feature view {view.name!r} has no offline data yet; materialize it "
                    f"first: featurehub materialize START END --views {view.name}"
                )
            queries.append(ViewQuery.of(projection, relation))

        def run() -> pa.Table:
            con = connect(self.repo_path)
            try:
                return point_in_time_join(
                    con,
                    entity,
                    queries,
                    timestamp_column=timestamp_column,
                    full_feature_names=full_feature_names,
                    created_cutoff=created_cutoff,
                )
            finally:
                con.close()

        request = self.datasets.request(
            features, projections, entity.column_names, timestamp_column, created_cutoff
        )
        return RetrievalJob(run, save=self.datasets.saver(request))

    # -- saved training datasets ------------------------------------------------------------------

    @property
    def datasets(self) -> Datasets:
        """Saved training datasets: `save`, `get(name)`, `list()` (docs/datasets.md)."""
        catalog = DatasetCatalog(self.registry.engine, self.project)
        files = DatasetFiles(self.config.offline_root, self.project)
        return Datasets(catalog, files, self.get_historical_features)

    def get_dataset(self, name: str) -> Dataset:
        return self.datasets.get(name)

    # -- models: versions tied to a service and a training set --------------------------------

    @property
    def models(self) -> Models:
        """The model registry: `register`, `get(ref)`, `load(ref)`, `promote`, `rollback`,
        `score` (docs/models.md)."""
        from featurehub.models import Models

        return Models(self, self.registry.engine, self.registry.runs(self.project))

    # -- checks: serving log -> skew ---------------------------------------------------------

    def check_skew(
        self,
        feature_service: str | None = None,
        *,
        model: str | None = None,
        against: str | None = None,
        start: datetime | None = None,
        end: datetime | None = None,
        since: timedelta | None = None,
        sample: float | None = None,
    ) -> SkewReport:
        """What `feature_service` served in a window (its serving log): replayed through the
        offline join row by row and, with a saved training dataset `against`, compared in
        distribution; thresholds from featurehub.yaml's `monitoring:` and each feature's
        `Field(skew=...)` (docs/skew-checks.md). The window: `since` back from now, or
        [start, end). `sample` keeps that share of entity keys (chosen by a hash of the key:
        the same ones every time). `model` (`NAME:V`, `NAME@production`, `models:/...`)
        checks the rows that version answered, on its service against its training set
        (a service or `against` other than the version's is an error). The result is
        recorded in `skew_checks`."""
        from featurehub.skew.check import check_skew, window
        from featurehub.skew.distribution_check import SkewCheckError
        from featurehub.skew.model_target import check_lineage, model_target

        target = None
        if model is not None:
            target = model_target(self.models, model, feature_service, against)
            feature_service, against = target.feature_service, target.training_dataset
        elif feature_service is None:
            raise SkewCheckError(
                "name the feature service to check, or a model version: --model NAME@production"
            )
        self.get_feature_service(feature_service)  # an unknown name fails here, with hints
        dataset = self.datasets.get(against) if against is not None else None
        if target is not None and dataset is not None:
            check_lineage(target, dataset)
        begin, finish = window(start, end, since)
        return check_skew(
            self,
            feature_service,
            dataset,
            begin,
            finish,
            self.config.monitoring,
            sample,
            model=target,
        )

    @property
    def alerts(self) -> AlertDispatcher:
        """Where events go (featurehub.yaml's `monitoring.alerts`): `alerts.emit(event)`
        queues an event (featurehub.monitoring.alert_events) for each destination that takes
        its kind and returns at once; `close` delivers what is queued (docs/alerts.md)."""
        with self._alerts_lock:
            if self._alerts is None:
                self._alerts = AlertDispatcher.from_config(self.config.monitoring.alerts)
            return self._alerts

    @property
    def skew_checks(self) -> SkewCheckLog:
        """Recorded skew checks: `history(service, limit)`, newest first, and `latest(service)`
        (docs/skew-checks.md, "History")."""
        return SkewCheckLog(self.registry.engine, self.project)
