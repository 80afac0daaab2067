"""The distribution check of one feature service: what it served in a window (its serving
log, whatever wrote it) against a saved training dataset, feature by feature.

The served side is read with DuckDB from the log's JSON columns, one typed column per feature
under its short or its full name (`view__feature`), as the request asked (nulls where the
value was null or the key was not found or expired: that is what the model got); the
training side is the dataset's stored profile, and its rows of the one feature for the
statistics that need values (KS, Wasserstein). The statistics and their defaults are in
`featurehub.skew.distribution`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import duckdb
import numpy as np
import pandas as pd

from featurehub.datasets.dataset import Dataset
from featurehub.errors import FeaturehubError
from featurehub.monitoring.log_reader import read_serving_log
from featurehub.skew.distribution import DriftThresholds, FeatureDrift, feature_drift
from featurehub.types import as_utc


class SkewCheckError(FeaturehubError):
    """The check could not run (no logged rows in the window, a feature the dataset lacks)."""


@dataclass(frozen=True)
class DistributionResult:
    feature_service: str
    dataset: str
    start: datetime
    end: datetime
    served_rows: int
    features: list[FeatureDrift] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        """No feature crossed a fail threshold (warnings and insufficient data pass)."""
        return all(drift.status != "fail" for drift in self.features)

    def to_dict(self) -> dict[str, Any]:
        return {
            "feature_service": self.feature_service,
            "dataset": self.dataset,
            "start": self.start.isoformat(),
            "end": self.end.isoformat(),
            "served_rows": self.served_rows,
            "passed": self.passed,
            "features": [drift.to_dict() for drift in self.features],
        }

    def ranked(self) -> list[FeatureDrift]:
        """The features, failing ones first, then warnings, insufficient data, passes."""
        order = {"fail": 0, "warn": 1, "insufficient_data": 2, "pass": 3}
        return sorted(self.features, key=lambda drift: (order[drift.status], drift.feature))

    def to_pandas(self) -> pd.DataFrame:
        """One row per feature, failing ones first (the shares are left to `to_dict`)."""
        nested = ("bins", "category_shares")
        return pd.DataFrame(
            [
                {k: v for k, v in drift.to_dict().items() if k not in nested}
                for drift in self.ranked()
            ]
        )


def check_distribution(
    log_root: Any,
    feature_service: str,
    dataset: Dataset,
    start: datetime,
    end: datetime,
    thresholds: DriftThresholds = DriftThresholds(),
    per_feature: Mapping[str, DriftThresholds] | None = None,
) -> DistributionResult:
    """Served values of `feature_service` with served_at in [start, end) against `dataset`,
    each feature (a column of the dataset) judged by its `per_feature` thresholds if given,
    by `thresholds` (featurehub.yaml's `monitoring:`) otherwise."""
    start, end = as_utc(start), as_utc(end)
    profiles = dataset.profile
    names = [name for name in profiles if profiles[name].kind in ("number", "category")]
    con = duckdb.connect()
    try:
        log = read_serving_log(log_root, con)
        window = log.filter(
            f"feature_service = {_quote(feature_service)} "
            f"AND served_at >= {_instant(start)} AND served_at < {_instant(end)}"
        )
        log_names = _log_names(dataset)
        served = window.select(
            ", ".join(
                _served_column(name, log_names.get(name, (name,)), profiles[name].type)
                for name in names
            )
            or "1"
        ).to_arrow_table()
    finally:
        con.close()
    if not served.num_rows:
        raise SkewCheckError(
            f"no logged rows of feature service {feature_service!r} served in [{start}, {end}): "
            "choose a window in which it served requests (the serving log records what the "
            "feature server, or the SDK with log=True, answered)"
        )
    training = dataset.to_arrow()
    drifts = [
        feature_drift(
            profiles[name],
            _training_values(training.column(name), profiles[name].kind),
            served.column(name).to_pylist()
            if profiles[name].kind == "category"
            else served.column(name).to_numpy(zero_copy_only=False),
            (per_feature or {}).get(name, thresholds),
        )
        for name in names
    ]
    return DistributionResult(feature_service, dataset.name, start, end, served.num_rows, drifts)


def _log_names(dataset: Dataset) -> dict[str, tuple[str, ...]]:
    """Per column of the dataset, the names its feature may have in the log: `feature`, or
    `view__feature` when a request asked for full feature names (whichever way the dataset
    itself was saved)."""
    names: dict[str, tuple[str, ...]] = {}
    for reference in dataset.features:
        view, _, feature = reference.partition(":")
        both = (feature, f"{view}__{feature}")
        for column in both:
            names.setdefault(column, both)
    return names


def _served_column(name: str, log_names: tuple[str, ...], arrow_type: str) -> str:
    """The served value of a feature, typed as in training (null: null, not found, expired),
    under whichever of its names the row was logged with."""
    extracts = [
        f"json_extract(feature_values, {_quote(f'$.{_json_key(log_name)}')})"
        for log_name in log_names
    ]
    value = extracts[0] if len(extracts) == 1 else f"coalesce({', '.join(extracts)})"
    if arrow_type == "bool":
        return f'TRY_CAST({value} AS BOOLEAN) AS "{name}"'
    if arrow_type.startswith("string") or arrow_type.startswith("large_string"):
        return f"({value} ->> '$') AS \"{name}\""
    return f'TRY_CAST({value} AS DOUBLE) AS "{name}"'


def _training_values(column: Any, kind: str) -> np.ndarray | list[Any]:
    if kind == "number":
        return np.asarray(column.cast("double").to_numpy(zero_copy_only=False), dtype=float)
    return column.to_pylist()


def _json_key(name: str) -> str:
    return '"' + name.replace('"', '\\"') + '"'


def _quote(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _instant(moment: datetime) -> str:
    return f"TIMESTAMPTZ {_quote(moment.isoformat())}"
