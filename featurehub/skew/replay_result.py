"""What a replay found: per feature, how often online and offline disagreed, and why.

Plain frozen dataclasses with `to_dict()` (JSON-ready: times as ISO 8601 strings, bytes as
base64, numbers as numbers) and `ReplayResult.to_pandas()` (one row per feature). The JSON
shape is documented in docs/skew-checks.md ("Replay") and is stable.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import pandas as pd

from featurehub.config import MonitoringConfig
from featurehub.skew.histograms import LagHistogram, Timeline
from featurehub.skew.thresholds import REPLAY_KEYS, of_keys

STALE = "stale"
VALUE_SKEW = "value_skew"
TTL_OR_STATUS = "ttl_or_status"
UNEXPLAINED = "unexplained"
CAUSES = (STALE, VALUE_SKEW, TTL_OR_STATUS, UNEXPLAINED)
"""Every cause a mismatch can have; `causes` of a feature always holds all four."""


@dataclass(frozen=True)
class LagSummary:
    """How much older the served event was than the offline winner, over the stale
    mismatches, in seconds. Quantiles are nearest-rank: a lag that occurred."""

    count: int
    min_seconds: float
    median_seconds: float
    p95_seconds: float
    max_seconds: float

    def to_dict(self) -> dict[str, Any]:
        return {
            "count": self.count,
            "min_seconds": self.min_seconds,
            "median_seconds": self.median_seconds,
            "p95_seconds": self.p95_seconds,
            "max_seconds": self.max_seconds,
        }


@dataclass(frozen=True)
class MismatchExample:
    """One logged row where the served value and the offline join's disagreed."""

    keys: dict[str, Any]
    served_at: datetime
    cause: str
    served_status: str
    served_value: Any
    offline_value: Any
    served_event_timestamp: datetime | None
    offline_event_timestamp: datetime | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "keys": {name: _json(value) for name, value in self.keys.items()},
            "served_at": _json(self.served_at),
            "cause": self.cause,
            "served_status": self.served_status,
            "served_value": _json(self.served_value),
            "offline_value": _json(self.offline_value),
            "served_event_timestamp": _json(self.served_event_timestamp),
            "offline_event_timestamp": _json(self.offline_event_timestamp),
        }


@dataclass(frozen=True)
class FeatureReplay:
    """One feature's comparison over the replayed rows that served it.

    A row is a match, a value mismatch (both sides have a row, the values differ), served
    missing (online answered not_found or expired, the join found a row) or offline missing
    (the reverse). Every mismatch of the three kinds has one cause in `causes`. `thresholds`
    are what the feature is judged by: `monitoring:` with the feature's `Field(skew=...)`.
    """

    view: str
    feature: str
    value_type: str
    rows_compared: int
    value_mismatches: int
    served_missing: int
    offline_missing: int
    causes: dict[str, int]
    mean_absolute_difference: float | None  # numbers only, over rows with two finite values
    smape: float | None  # mean of 2|a - b| / (|a| + |b|) (0 when both are 0), in [0, 2]
    lag: LagSummary | None  # None without a stale mismatch
    examples: tuple[MismatchExample, ...] = field(default=())
    timeline: Timeline | None = None  # rows and mismatches by cause per time bucket
    lag_histogram: LagHistogram | None = None  # None without a stale mismatch
    thresholds: MonitoringConfig = field(default_factory=MonitoringConfig)

    @property
    def name(self) -> str:
        """The feature's reference, `view:feature`."""
        return f"{self.view}:{self.feature}"

    @property
    def mismatches(self) -> int:
        return self.value_mismatches + self.served_missing + self.offline_missing

    def rate(self, count: int) -> float:
        return count / self.rows_compared if self.rows_compared else 0.0

    @property
    def stale_rate(self) -> float:
        return self.rate(self.causes[STALE])

    def failures(self) -> tuple[str, ...]:
        """Each cause whose mismatches are above its share of the rows compared allowed by
        `max_<cause>_rate` (by default: stale rows up to 1 %, the other causes none)."""
        found = []
        for cause in CAUSES:
            count, allowed = self.causes[cause], getattr(self.thresholds, f"max_{cause}_rate")
            if self.rate(count) > allowed:
                found.append(
                    f"{cause} {count:,} of {self.rows_compared:,} rows "
                    f"({self.rate(count):.2%}) > max_{cause}_rate {allowed:g}"
                )
        return tuple(found)

    @property
    def passed(self) -> bool:
        return not self.failures()

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "view": self.view,
            "feature": self.feature,
            "value_type": self.value_type,
            "passed": self.passed,
            "failures": list(self.failures()),
            "thresholds": of_keys(self.thresholds, REPLAY_KEYS),
            "rows_compared": self.rows_compared,
            "mismatches": self.mismatches,
            "value_mismatches": self.value_mismatches,
            "value_mismatch_rate": self.rate(self.value_mismatches),
            "served_missing": self.served_missing,
            "served_missing_rate": self.rate(self.served_missing),
            "offline_missing": self.offline_missing,
            "offline_missing_rate": self.rate(self.offline_missing),
            "causes": dict(self.causes),
            "stale_rate": self.stale_rate,
            "mean_absolute_difference": self.mean_absolute_difference,
            "smape": self.smape,
            "lag": self.lag.to_dict() if self.lag else None,
            "examples": [example.to_dict() for example in self.examples],
            "timeline": self.timeline.to_dict() if self.timeline else None,
            "lag_histogram": self.lag_histogram.to_dict() if self.lag_histogram else None,
        }


@dataclass(frozen=True)
class ReplayResult:
    """The replay of one feature service's logged rows in [start, end)."""

    feature_service: str
    start: datetime
    end: datetime
    sample: float | None
    float_tolerance: float  # the `monitoring:` defaults; each feature has its `thresholds`
    max_stale_rate: float
    rows: int  # logged rows replayed (after sampling)
    features: tuple[FeatureReplay, ...]

    @property
    def passed(self) -> bool:
        """True when every feature passed: the mismatches of each cause within the share of
        its rows allowed to them (by default: no value skew, status disagreement or
        unexplained mismatch, and stale rows within `max_stale_rate`)."""
        return all(feature.passed for feature in self.features)

    def feature(self, name: str) -> FeatureReplay:
        """A feature's figures by `view:feature` or by feature name."""
        for feature in self.features:
            if name in (feature.name, feature.feature):
                return feature
        raise KeyError(name)

    def to_dict(self) -> dict[str, Any]:
        return {
            "check": "replay",
            "feature_service": self.feature_service,
            "start": _json(self.start),
            "end": _json(self.end),
            "sample": self.sample,
            "float_tolerance": self.float_tolerance,
            "max_stale_rate": self.max_stale_rate,
            "rows": self.rows,
            "passed": self.passed,
            "features": [feature.to_dict() for feature in self.features],
        }

    def to_pandas(self) -> pd.DataFrame:
        """One row per feature: the figures of `to_dict` without the examples, the causes as
        columns `stale`, `value_skew`, `ttl_or_status`, `unexplained`, the lag flattened
        (the timeline and lag histogram are left to `to_dict`)."""
        rows = []
        for feature in self.to_dict()["features"]:
            row = {k: v for k, v in feature.items() if k not in _NESTED}
            row.update(feature["causes"])
            lag = feature["lag"] or {}
            for part in ("min", "median", "p95", "max"):
                row[f"lag_{part}_seconds"] = lag.get(f"{part}_seconds")
            rows.append(row)
        return pd.DataFrame(rows)


_NESTED = ("causes", "lag", "examples", "failures", "thresholds", "timeline", "lag_histogram")


def _json(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, (bytes, bytearray, memoryview)):
        return base64.b64encode(bytes(value)).decode()
    return value
