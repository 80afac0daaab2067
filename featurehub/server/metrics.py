"""Prometheus metrics of the feature server, in a registry of its own (one per app).

Few labels (endpoint, feature service, status code, error kind), and label children cached so
that recording a request costs a dict look-up and two increments. With several worker
processes, each has its own registry: scrape each worker, or run one worker per container.
"""

from __future__ import annotations

from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

LATENCY_BUCKETS = (
    0.0005, 0.001, 0.002, 0.003, 0.005, 0.0075, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
)  # fmt: skip


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
        self.latency = Histogram(
            "featurehub_request_seconds",
            "Time to answer a request, by endpoint and feature service.",
            ["endpoint", "feature_service"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.online_latency = Histogram(
            "featurehub_online_store_seconds",
            "Time of the online store look-up of a /v1/features request.",
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
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
        self.not_found = self.values.labels("not_found")
        self.expired = self.values.labels("expired")
        self._request_children: dict[tuple[str, str, int], Any] = {}
        self._latency_children: dict[tuple[str, str], Any] = {}
        self._error_children: dict[str, Any] = {}

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

    def error(self, kind: str) -> None:
        child = self._error_children.get(kind)
        if child is None:
            child = self._error_children[kind] = self.errors.labels(kind)
        child.inc()
