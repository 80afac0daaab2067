"""The lock-free latency histogram exposes what prometheus-client's Histogram would."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Histogram, generate_latest

from featurehub.server.metrics import LatencyHistogram

BUCKETS = (0.001, 0.01, 0.1)


def test_same_exposition_as_prometheus_client() -> None:
    ours, theirs = CollectorRegistry(), CollectorRegistry()
    mine = LatencyHistogram("t_seconds", "doc", ["endpoint"], buckets=BUCKETS, registry=ours)
    reference = Histogram("t_seconds", "doc", ["endpoint"], buckets=BUCKETS, registry=theirs)
    for seconds in (0.0005, 0.001, 0.0011, 0.05, 0.1, 3.0):  # on and between bounds
        mine.labels("/a").observe(seconds)
        reference.labels("/a").observe(seconds)
    mine.labels("/b").observe(0.002)
    reference.labels("/b").observe(0.002)

    def lines(registry: CollectorRegistry) -> list[str]:
        text = generate_latest(registry).decode()
        return sorted(line for line in text.splitlines() if "_created" not in line)

    assert lines(ours) == lines(theirs)
