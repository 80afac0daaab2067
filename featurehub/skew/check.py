"""`store.check_skew(...)` and `featurehub skew`: the two checks of one feature service over
one window, in one report: the replay of its logged rows through the offline join (row level,
`featurehub.skew.replay`) and, given a saved training dataset, the distribution check
(`featurehub.skew.distribution_check`)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any

import pandas as pd

from featurehub.config import MonitoringConfig
from featurehub.datasets.dataset import Dataset
from featurehub.skew.distribution_check import (
    DistributionResult,
    SkewCheckError,
    check_distribution,
)
from featurehub.skew.replay_result import ReplayResult
from featurehub.types import as_utc

if TYPE_CHECKING:
    from featurehub.feature_store import FeatureStore


@dataclass(frozen=True)
class SkewReport:
    feature_service: str
    start: datetime
    end: datetime
    replay: ReplayResult
    distribution: DistributionResult | None  # None without a training dataset to compare

    @property
    def passed(self) -> bool:
        return self.replay.passed and (self.distribution is None or self.distribution.passed)

    def to_dict(self) -> dict[str, Any]:
        """The whole result (docs/skew-checks.md): what `featurehub skew --json` prints."""
        return {
            "feature_service": self.feature_service,
            "start": self.start.isoformat(),
            "end": self.end.isoformat(),
            "passed": self.passed,
            "replay": self.replay.to_dict(),
            "distribution": None if self.distribution is None else self.distribution.to_dict(),
        }

    def to_pandas(self) -> pd.DataFrame:
        """One row per feature: the replay's figures and, when it ran, the distribution's."""
        replayed = self.replay.to_pandas()
        if self.distribution is None:
            return replayed
        drift = self.distribution.to_pandas().add_prefix("distribution_")
        return replayed.merge(
            drift, how="outer", left_on="feature", right_on="distribution_feature"
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
    store: FeatureStore,
    feature_service: str,
    dataset: Dataset | None,
    start: datetime,
    end: datetime,
    monitoring: MonitoringConfig,
    sample: float | None = None,
) -> SkewReport:
    from featurehub.skew.replay import replay

    if dataset is not None:
        _check_served(store, feature_service, dataset)
    replayed = replay(
        store,
        feature_service,
        start,
        end,
        sample=sample,
        float_tolerance=monitoring.float_tolerance,
        max_stale_rate=monitoring.max_stale_rate,
    )
    distribution = (
        None
        if dataset is None
        else check_distribution(
            store.config.serving_log_root,
            feature_service,
            dataset,
            start,
            end,
            monitoring,
        )
    )
    return SkewReport(feature_service, start, end, replayed, distribution)


def _check_served(store: FeatureStore, feature_service: str, dataset: Dataset) -> None:
    """A training set must hold only features the service serves: any other would read as
    null in every served row, a false alarm on its null rate."""
    served = {
        f"{projection.view.name}:{feature}"
        for projection in store.catalog().resolve(store.get_feature_service(feature_service))
        for feature in projection.features
    }
    others = [feature for feature in dataset.features if feature not in served]
    if others:
        raise SkewCheckError(
            f"dataset {dataset.name!r} holds {', '.join(others)}, which feature service "
            f"{feature_service!r} does not serve: compare against the training set of a model "
            "that uses this service (featurehub datasets list shows each dataset's service)"
        )
