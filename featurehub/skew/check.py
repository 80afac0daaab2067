"""`store.check_skew(...)` and `featurehub skew`: the two checks of one feature service over
one window, in one report: the replay of its logged rows through the offline join (row level,
`featurehub.skew.replay`) and, given a saved training dataset, the distribution check
(`featurehub.skew.distribution_check`); for a model version (`featurehub.skew.model_target`),
only the rows it answered, against its training set. Each feature is judged by featurehub.yaml's
`monitoring:` with its `Field(skew=...)` over it; every report is recorded in the registry
(`featurehub.registry.skew_checks`), for `featurehub skew history`."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from featurehub.config import MonitoringConfig
from featurehub.datasets.dataset import Dataset
from featurehub.offline.source_reader import connect
from featurehub.registry.skew_checks import FailedFeature
from featurehub.skew.distribution_check import (
    DistributionResult,
    SkewCheckError,
    check_distribution,
)
from featurehub.skew.model_target import CheckedModel
from featurehub.skew.replay_result import ReplayResult
from featurehub.skew.served_rows import ModelAnswers, count_by_arm, log_files
from featurehub.skew.thresholds import judged_by
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
    # dataset column -> the view:feature it holds (the distribution's features are columns)
    columns: dict[str, str] = field(default_factory=dict)
    # The id of this check's record in the registry (`store.skew_checks`), once recorded.
    check_id: int | None = None
    # The model version whose rows were checked (None: every row the service served).
    model: CheckedModel | None = None
    # Of a model's check: the rows it answered in the window per arm, most first (all of
    # them, sampled or not; `served_rows.count_by_arm`). None for a check of the service.
    rows_by_arm: dict[str, int] | None = None

    @property
    def passed(self) -> bool:
        return self.replay.passed and (self.distribution is None or self.distribution.passed)

    def to_dict(self) -> dict[str, Any]:
        """The whole result (docs/skew-checks.md): what `featurehub skew --json` prints."""
        return {
            "feature_service": self.feature_service,
            "model": None if self.model is None else self.model.to_dict(),
            "rows_by_arm": None if self.rows_by_arm is None else dict(self.rows_by_arm),
            "start": self.start.isoformat(),
            "end": self.end.isoformat(),
            "passed": self.passed,
            "replay": self.replay.to_dict(),
            "distribution": None if self.distribution is None else self.distribution.to_dict(),
        }

    def html(self) -> str:
        """The report as one self-contained HTML page (docs/skew-checks.md, "The report")."""
        from featurehub.skew.report import render_html

        return render_html(self)

    def to_html(self, path: str | Path) -> Path:
        """Write `html()` to `path` (what `featurehub skew --html PATH` does)."""
        from featurehub.skew.report import write_html

        return write_html(self, path)

    def _repr_html_(self) -> str:
        """The report inline in a notebook, in an iframe of its own."""
        from featurehub.skew.report import inline_html

        return inline_html(self)

    def failed_features(self) -> tuple[FailedFeature, ...]:
        """Each feature that crossed a threshold, per check, with the figures that did."""
        failed = [
            FailedFeature(feature.name, "replay", "; ".join(feature.failures()))
            for feature in self.replay.features
            if not feature.passed
        ]
        if self.distribution is not None:
            failed += [
                FailedFeature(
                    self.columns.get(drift.feature, drift.feature),
                    "distribution",
                    "; ".join(drift.reasons),
                )
                for drift in self.distribution.ranked()
                if drift.status == "fail"
            ]
        return tuple(failed)

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
    model: CheckedModel | None = None,
) -> SkewReport:
    """Both checks (of `model`'s rows only, when given), recorded in the registry once they
    ran (a check that raised records nothing)."""
    from featurehub.skew.replay import replay

    if dataset is not None:
        _check_served(store, feature_service, dataset)
    answered_by = None if model is None else model.answers
    replayed = replay(
        store,
        feature_service,
        start,
        end,
        sample=sample,
        monitoring=monitoring,
        answered_by=answered_by,
    )
    distribution = None
    columns = {} if dataset is None else dataset_columns(dataset)
    if dataset is not None:
        distribution = check_distribution(
            store.config.serving_log_root,
            feature_service,
            dataset,
            start,
            end,
            monitoring,
            per_feature=column_thresholds(store, columns, monitoring),
            answered_by=answered_by,
        )
    arms = None
    if answered_by is not None:
        arms = _rows_by_arm(store, feature_service, start, end, answered_by)
    report = SkewReport(
        feature_service, start, end, replayed, distribution, columns, model=model, rows_by_arm=arms
    )
    recorded = store.skew_checks.record(
        feature_service=feature_service,
        window_start=start,
        window_end=end,
        dataset=None if dataset is None else dataset.name,
        sample=sample,
        passed=report.passed,
        rows_served=replayed.rows,
        failed_features=report.failed_features(),
        result=report.to_dict(),
        model=None if model is None else model.name,
        model_version=None if model is None else model.version,
    )
    return replace(report, check_id=recorded.id)


def _rows_by_arm(
    store: FeatureStore,
    feature_service: str,
    start: datetime,
    end: datetime,
    answered_by: ModelAnswers,
) -> dict[str, int]:
    """The version's rows per arm, from the log files the replay read."""
    files = log_files(store.config.serving_log_root, feature_service, start, end)
    con = connect(store.repo_path)
    try:
        return count_by_arm(con, files, start, end, answered_by)
    finally:
        con.close()


def dataset_columns(dataset: Dataset) -> dict[str, str]:
    """Each column of the dataset's features (its name, or `view__name` when the join used
    full feature names) -> the `view:feature` it holds."""
    columns = {}
    for ref in dataset.features:
        view, _, feature = ref.partition(":")
        columns[f"{view}__{feature}"] = ref
        columns.setdefault(feature, ref)
    return columns


def column_thresholds(
    store: FeatureStore, columns: dict[str, str], monitoring: MonitoringConfig
) -> dict[str, MonitoringConfig]:
    """By dataset column: `monitoring` with the `Field(skew=...)` of the feature it holds, as
    its view defines it now (a view gone since: `monitoring` alone)."""
    views = {view.name: view for view in store.list_feature_views()}
    judged = {}
    for column, ref in columns.items():
        view_name, _, feature = ref.partition(":")
        view = views.get(view_name)
        own = next((f.skew for f in view.schema if f.name == feature), {}) if view else {}
        judged[column] = judged_by(monitoring, own)
    return judged


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
