"""`store.check_skew(...)` and `featurehub skew`: the checks of one feature service over one
window, in one report. Today the distribution check against a saved dataset; the replay of
logged rows through the offline join joins it (issue 10)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

import pandas as pd

from featurehub.config import MonitoringConfig
from featurehub.datasets.dataset import Dataset
from featurehub.skew.distribution import DriftThresholds
from featurehub.skew.distribution_check import (
    DistributionResult,
    SkewCheckError,
    check_distribution,
)
from featurehub.types import as_utc


@dataclass(frozen=True)
class SkewReport:
    feature_service: str
    start: datetime
    end: datetime
    distribution: DistributionResult

    @property
    def passed(self) -> bool:
        return self.distribution.passed

    def to_dict(self) -> dict[str, Any]:
        return {
            "feature_service": self.feature_service,
            "start": self.start.isoformat(),
            "end": self.end.isoformat(),
            "passed": self.passed,
            "distribution": self.distribution.to_dict(),
        }

    def to_pandas(self) -> pd.DataFrame:
        return self.distribution.to_pandas()


def thresholds_of(config: MonitoringConfig) -> DriftThresholds:
    return DriftThresholds(
        psi_warn=config.psi_warn,
        psi_fail=config.psi_fail,
        js_warn=config.js_warn,
        js_fail=config.js_fail,
        null_rate_shift_fail=config.null_rate_shift_fail,
        min_rows=config.min_rows,
    )


def window(
    start: datetime | None, end: datetime | None, since: timedelta | None
) -> tuple[datetime, datetime]:
    """[start, end): `since` back from now, or the given bounds (end defaults to now)."""
    finish = as_utc(end) if end is not None else datetime.now(timezone.utc)
    if since is not None:
        if start is not None:
            raise SkewCheckError("give --since or --start, not both")
        return finish - since, finish
    if start is None:
        raise SkewCheckError("give the window: --since 24h, or --start TIME [--end TIME]")
    begin = as_utc(start)
    if begin >= finish:
        raise SkewCheckError(f"the window's start {begin} is not before its end {finish}")
    return begin, finish


def check_skew(
    log_root: Any,
    feature_service: str,
    dataset: Dataset,
    start: datetime,
    end: datetime,
    monitoring: MonitoringConfig,
) -> SkewReport:
    distribution = check_distribution(
        log_root, feature_service, dataset, start, end, thresholds_of(monitoring)
    )
    return SkewReport(feature_service, start, end, distribution)
