"""The histograms a skew check keeps for its report (`featurehub.skew.report`): the replay's
mismatches over time by cause (`Timeline`) and the lags of its stale rows (`LagHistogram`).

They are computed by the check, in the passes it makes anyway (the replay's counting query
groups by time bucket and sums the buckets for its totals; numpy bins the stale lags it
already fetches), so the report never re-reads the log and the JSON carries everything a
dashboard would draw.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

import numpy as np

MOST_BUCKETS = 60
"""A window is cut into at most this many buckets of a round width, and (the widths growing
by at most 2.5x from one to the next) into more than 24 unless it is under 24 microseconds."""

_SECOND = 1_000_000
_MINUTE = 60 * _SECOND
_HOUR = 60 * _MINUTE
_DAY = 24 * _HOUR
ROUND_WIDTHS_US: tuple[int, ...] = (
    *(m * 10**e for e in range(6) for m in (1, 2, 5)),  # 1 us .. 500 ms
    *(s * _SECOND for s in (1, 2, 5, 10, 15, 30)),
    *(m * _MINUTE for m in (1, 2, 5, 10, 15, 30)),
    *(h * _HOUR for h in (1, 2, 3, 6, 12)),
    *(d * _DAY for d in (1, 2, 5, 10, 15, 30)),
    *(m * 10**e * _DAY for e in range(1, 6) for m in (5, 10, 20)),  # 50 days ..
)
"""Bucket widths in microseconds a reader recognises, each at most 2.5x the one before."""

_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


def epoch_us(moment: datetime) -> int:
    """Microseconds since the Unix epoch, exactly (as DuckDB's `epoch_us`)."""
    return (moment - _EPOCH) // timedelta(microseconds=1)


@dataclass(frozen=True)
class Buckets:
    """[start, end) cut into `count` buckets of `width_us` from `start` (the last one may
    reach past `end`): row at t falls in bucket (t - start) // width."""

    start: datetime
    width_us: int
    count: int

    @classmethod
    def of(cls, start: datetime, end: datetime) -> Buckets:
        """The smallest round width that cuts the window into at most MOST_BUCKETS."""
        span = epoch_us(end) - epoch_us(start)
        width = next(
            (w for w in ROUND_WIDTHS_US if span <= MOST_BUCKETS * w),
            -(-span // MOST_BUCKETS),
        )
        return cls(start, width, max(1, -(-span // width)))

    def sql(self, timestamp_sql: str) -> str:
        """The bucket number of a TIMESTAMPTZ expression, in DuckDB."""
        return f"((epoch_us({timestamp_sql}) - {epoch_us(self.start)}) // {self.width_us})"


@dataclass(frozen=True)
class Timeline:
    """Per time bucket of the window (by served_at): rows compared and mismatches by cause."""

    start: datetime
    bucket_seconds: float
    rows: list[int]
    causes: dict[str, list[int]]

    def bucket_starts(self) -> list[datetime]:
        width = timedelta(seconds=self.bucket_seconds)
        return [self.start + i * width for i in range(len(self.rows))]

    def to_dict(self) -> dict[str, Any]:
        return {
            "start": self.start.isoformat(),
            "bucket_seconds": self.bucket_seconds,
            "rows": list(self.rows),
            "causes": {cause: list(counts) for cause, counts in self.causes.items()},
        }


@dataclass(frozen=True)
class LagHistogram:
    """Stale rows by lag (offline event minus served event), in seconds: `counts[i]` rows in
    [edges[i], edges[i + 1]), the last bin closed."""

    edges_seconds: list[float]
    counts: list[int]

    def to_dict(self) -> dict[str, Any]:
        return {"edges_seconds": list(self.edges_seconds), "counts": list(self.counts)}


def lag_histogram(lags_us: np.ndarray) -> LagHistogram | None:
    """Sturges' bin count (log2(n) + 1: 21 bins for a million lags) over [min, max]."""
    if lags_us.size == 0:
        return None
    seconds = np.asarray(lags_us, dtype=np.int64) / 1e6
    counts, edges = np.histogram(seconds, bins="sturges")
    return LagHistogram([float(e) for e in edges], [int(c) for c in counts])
