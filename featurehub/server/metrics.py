"""Prometheus metrics of the feature server, in a registry of its own (one per app).

Few labels (endpoint, feature service, status code, error kind), and label children cached so
that recording a request costs a dict look-up and two increments. With several worker
processes, each has its own registry: scrape each worker, or run one worker per container.
"""

from __future__ import annotations

import itertools
import math
import time
from bisect import bisect_left
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
from prometheus_client import CollectorRegistry, Counter, Gauge
from prometheus_client.core import GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.utils import floatToGoString

from featurehub.monitoring.freshness import Freshness

PREDICTION_BUCKETS = (
    0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0, 2.0, 5.0, 10.0, 100.0, 1000.0,
)  # fmt: skip
"""Numeric predictions: a class label (0, 1), a probability, or a small count or amount."""

FEW_VALUES = 16  # up to this many, `observe_many` loops in Python (faster than numpy calls)

LATENCY_BUCKETS = (
    0.0005, 0.001, 0.002, 0.003, 0.005, 0.0075, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
)  # fmt: skip


class LatencyChild:
    """One label set of a `LatencyHistogram`: a count per bucket and a sum."""

    __slots__ = ("bounds", "counts", "edges", "sum")

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self.bounds = bounds
        self.edges = np.array(bounds, dtype=np.float64)  # for `observe_many`, built once
        self.counts = [0] * (len(bounds) + 1)  # the last one is +Inf
        self.sum = 0.0

    def observe(self, seconds: float) -> None:
        self.counts[bisect_left(self.bounds, seconds)] += 1  # le: bound >= value
        self.sum += seconds

    def observe_many(self, values: np.ndarray) -> None:
        """Every finite value of a numeric array at once (a batch of predictions): one numpy
        pass for a batch (searchsorted and bincount over the whole array, ~4 us for 100
        values); a loop for a few values, where numpy's per-call cost dominates."""
        if len(values) <= FEW_VALUES:
            for value in values.tolist():
                if math.isfinite(value):
                    self.observe(value)
            return
        numbers = values.astype(np.float64, copy=False)
        if values.dtype.kind == "f":  # integers and booleans are always finite
            numbers = numbers[np.isfinite(numbers)]
        indices = self.edges.searchsorted(numbers, side="left")  # le: bound >= value
        added = np.bincount(indices, minlength=len(self.counts)).tolist()
        self.counts = [count + more for count, more in zip(self.counts, added, strict=True)]
        self.sum += float(numbers.sum())


class LatencyHistogram:
    """A Prometheus histogram observed from the event loop only, without a lock.

    prometheus_client's Histogram takes a lock and updates every bucket at each observation
    (~2.5 us, twice per request); this one adds 1 to one bucket, and sums the buckets when
    scraped. Observations and scrapes (GET /metrics) both run on the event loop thread.
    """

    def __init__(
        self,
        name: str,
        documentation: str,
        labelnames: Sequence[str] = (),
        *,
        buckets: Sequence[float],
        registry: CollectorRegistry,
    ) -> None:
        self.name = name
        self.documentation = documentation
        self.labelnames = list(labelnames)
        self.bounds = tuple(sorted(buckets))
        self.children: dict[tuple[str, ...], LatencyChild] = {}
        registry.register(self)

    def labels(self, *values: str) -> LatencyChild:
        child = self.children.get(values)
        if child is None:
            child = self.children[values] = LatencyChild(self.bounds)
        return child

    def observe(self, seconds: float) -> None:
        self.labels().observe(seconds)

    def describe(self) -> Iterator[Metric]:
        yield HistogramMetricFamily(self.name, self.documentation, labels=self.labelnames)

    def collect(self) -> Iterator[Metric]:
        family = HistogramMetricFamily(self.name, self.documentation, labels=self.labelnames)
        bounds = [floatToGoString(bound) for bound in self.bounds] + ["+Inf"]
        for values, child in list(self.children.items()):
            cumulative = list(itertools.accumulate(child.counts))
            family.add_metric(list(values), list(zip(bounds, cumulative, strict=True)), child.sum)
        yield family


class FreshnessCollector:
    """Per view: staleness seconds, last success time, freshness bound and whether it is
    stale. The registry figures come with each background refresh (`update`); staleness is
    computed when scraped (now minus the newest materialized event), so it keeps growing
    between refreshes as it should, and a scrape queries nothing."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.figures: dict[str, Freshness] = {}
        registry.register(self)

    def update(self, figures: dict[str, Freshness]) -> None:
        self.figures = figures  # one reference swap: a scrape sees the old or the new

    def describe(self) -> Iterator[Metric]:
        return iter(self._families())

    def collect(self) -> Iterator[Metric]:
        staleness, success, bound, stale = self._families()
        now = time.time()
        for view, figure in sorted(self.figures.items()):
            if figure.newest_event is not None:
                staleness.add_metric([view], now - figure.newest_event.timestamp())
            if figure.last_success_at is not None:
                success.add_metric([view], figure.last_success_at.timestamp())
            if figure.freshness_seconds is not None:
                bound.add_metric([view], figure.freshness_seconds)
                age = None if figure.newest_event is None else now - figure.newest_event.timestamp()
                stale.add_metric([view], float(age is None or age > figure.freshness_seconds))
        yield from (staleness, success, bound, stale)

    @staticmethod
    def _families() -> tuple[GaugeMetricFamily, ...]:
        return (
            GaugeMetricFamily(
                "featurehub_view_staleness_seconds",
                "Now minus the newest event time materialized for the view.",
                labels=["view"],
            ),
            GaugeMetricFamily(
                "featurehub_view_last_success_timestamp_seconds",
                "When the view's latest successful materialization run finished (Unix time).",
                labels=["view"],
            ),
            GaugeMetricFamily(
                "featurehub_view_freshness_seconds",
                "The view's freshness bound: FeatureView(freshness=...) or twice its schedule.",
                labels=["view"],
            ),
            GaugeMetricFamily(
                "featurehub_view_stale",
                "1 when the view's staleness exceeds its freshness bound (or nothing is "
                "materialized), else 0.",
                labels=["view"],
            ),
        )


class ServerMetrics:
    """The counters and histograms the server updates, and cached label children."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.requests = Counter(
            "featurehub_requests",
            "Requests answered, by endpoint, feature service and HTTP status code.",
            ["endpoint", "feature_service", "code"],
            registry=r,
        )
        self.latency = LatencyHistogram(
            "featurehub_request_seconds",
            "Time to answer a request, by endpoint and feature service.",
            ["endpoint", "feature_service"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.online_latency = LatencyHistogram(
            "featurehub_online_store_seconds",
            "Time of the online store look-up of a /v1/features request.",
            buckets=LATENCY_BUCKETS,
            registry=r,
        ).labels()
        self.errors = Counter(
            "featurehub_errors",
            "Requests refused or failed, by kind (bad_request, unknown_feature, ...).",
            ["kind"],
            registry=r,
        )
        self.values = Counter(
            "featurehub_feature_values",
            "Feature values served that were not present, by status (not_found, expired).",
            ["status"],
            registry=r,
        )
        self.log_dropped = Counter(
            "featurehub_serving_log_dropped_records",
            "Serving-log records dropped: queue full, or a write failed.",
            registry=r,
        )
        self.log_written = Counter(
            "featurehub_serving_log_written_records",
            "Serving-log records committed to Parquet.",
            registry=r,
        )
        self.registry_refreshes = Counter(
            "featurehub_registry_refreshes",
            "Background registry reads, by outcome (ok, error).",
            ["outcome"],
            registry=r,
        )
        self.online_up = Gauge(
            "featurehub_online_store_up", "1 when the last online store call worked.", registry=r
        )
        self.online_views_lost = Gauge(
            "featurehub_online_views_lost",
            "Views whose data the online store lost (its markers are missing or older than the "
            "registry's last online write): rebuild with `featurehub materialize --online-only`.",
            registry=r,
        )
        self.freshness = FreshnessCollector(r)
        self.model_requests = Counter(
            "featurehub_model_requests",
            "Predict requests answered, by model, version, arm and HTTP status code (a request "
            "split between arms counts once per arm).",
            ["model", "version", "arm", "code"],
            registry=r,
        )
        self.model_latency = LatencyHistogram(
            "featurehub_model_request_seconds",
            "Time to answer a predict request, by model, version and arm.",
            ["model", "version", "arm"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.model_predict = LatencyHistogram(
            "featurehub_model_predict_seconds",
            "The model's own predict time in a predict request (its rows of it, without the "
            "feature look-up), by model and version.",
            ["model", "version"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.predictions = LatencyHistogram(
            "featurehub_model_predictions",
            "Numeric predictions, by model, version and arm (shadow ones included).",
            ["model", "version", "arm"],
            buckets=PREDICTION_BUCKETS,
            registry=r,
        )
        self.canary_rollbacks = Counter(
            "featurehub_model_canary_rollbacks",
            "Canaries this server stopped routing to (models.canary bounds crossed).",
            ["model", "version"],
            registry=r,
        )
        self.canary_fallbacks = Counter(
            "featurehub_model_canary_fallbacks",
            "Entity rows a canary failed on that the production version answered instead (the "
            "failure also counts as a canary 500 in featurehub_model_requests_total).",
            ["model", "version"],
            registry=r,
        )
        self.not_found = self.values.labels("not_found")
        self.expired = self.values.labels("expired")
        self._request_children: dict[tuple[str, str, int], Any] = {}
        self._latency_children: dict[tuple[str, str], LatencyChild] = {}
        self._error_children: dict[str, Any] = {}
        self._model_children: dict[tuple[str, int, str, int], list[Any]] = {}
        self._predict_children: dict[tuple[str, int], LatencyChild] = {}

    def observe(self, endpoint: str, service: str, code: int, seconds: float) -> None:
        key = (endpoint, service, code)
        child = self._request_children.get(key)
        if child is None:
            child = self._request_children[key] = self.requests.labels(endpoint, service, code)
        child.inc()
        timer = self._latency_children.get((endpoint, service))
        if timer is None:
            timer = self._latency_children[(endpoint, service)] = self.latency.labels(
                endpoint, service
            )
        timer.observe(seconds)

    def observe_model(
        self,
        model: str,
        version: int,
        arm: str,
        code: int,
        seconds: float,
        predictions: np.ndarray | None = None,
    ) -> None:
        """A predict request answered (or failed) by one version and arm: its count and
        latency, and the distribution of its predictions when given (numeric ones only).
        One look-up of the label children for all three."""
        key = (model, version, arm, code)
        children = self._model_children.get(key)
        if children is None:
            labels = (model, str(version), arm)
            children = self._model_children[key] = [
                self.model_requests.labels(*labels, str(code)),
                self.model_latency.labels(*labels),
                None,  # the predictions' histogram, made when there are some
            ]
        children[0].inc()
        children[1].observe(seconds)
        if predictions is not None and predictions.dtype.kind in "iufb":
            histogram = children[2]
            if histogram is None:
                histogram = children[2] = self.predictions.labels(model, str(version), arm)
            histogram.observe_many(predictions)

    def observe_predict(self, model: str, version: int, seconds: float) -> None:
        key = (model, version)
        child = self._predict_children.get(key)
        if child is None:
            child = self._predict_children[key] = self.model_predict.labels(model, str(version))
        child.observe(seconds)

    def observe_predictions(self, model: str, version: int, arm: str, values: np.ndarray) -> None:
        """The distribution of a version's numeric predictions (others are not counted): a
        shadow's, which answers no request of its own."""
        if values.dtype.kind not in "iufb" or not len(values):
            return
        self.predictions.labels(model, str(version), arm).observe_many(values)

    def error(self, kind: str) -> None:
        child = self._error_children.get(kind)
        if child is None:
            child = self._error_children[kind] = self.errors.labels(kind)
        child.inc()
