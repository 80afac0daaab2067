"""Distribution checks: a feature's served values against its training set.

The training side is a saved dataset's profile (`featurehub.datasets.profile`): its PSI bins
and counts, its category frequencies, its null rate, so every check against one dataset uses
the same bins; KS and Wasserstein also take the training values of the one feature checked.
The statistics are scipy's; the defaults are those users of Evidently, NannyML and TFDV know:

numbers
    PSI on the training bins (up to 10, at the training deciles), an empty bin's share taken
    as 0.0001 on either side (Evidently's smoothing): sum((q - p) * ln(q / p)); warn at 0.1,
    fail at 0.25. The two-sample Kolmogorov-Smirnov statistic and p-value
    (`scipy.stats.ks_2samp`), and the Wasserstein distance (`scipy.stats.wasserstein_distance`)
    divided by the training standard deviation: reported, not thresholded by default.
categories (strings, booleans)
    The Jensen-Shannon distance, base 2 (`scipy.spatial.distance.jensenshannon`, in [0, 1]),
    over the training categories plus one bucket for the rest; warn at 0.1, fail at 0.2. The
    L-infinity distance (TFDV's skew measure: the largest change of any category's share) and
    the share of served values the training set never had: reported.
every feature
    The null rate on both sides and its shift; fail when it moved by 0.1 or more.

A feature with fewer than `min_rows` (1,000) served values that are not null gets status
"insufficient_data" and a reason instead of a statistic: never a NaN without a reason.

Every result also keeps what the report draws: the training and served shares of the values
that are not missing, per PSI bin (`bins`) or per category (`category_shares`), raw (the
smoothing is the statistic's, not the data's).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from scipy import stats
from scipy.spatial.distance import jensenshannon

from featurehub.config import MonitoringConfig as DriftThresholds  # featurehub.yaml's monitoring:
from featurehub.datasets.profile import FeatureProfile
from featurehub.skew.thresholds import DRIFT_KEYS, of_keys

EMPTY_SHARE = 0.0001  # an empty bin's share, on either side (Evidently's PSI smoothing)
OTHER = "__other__"  # the bucket of categories outside the training profile's top ones


@dataclass(frozen=True)
class BinShares:
    """Shares per PSI bin: k `edges`, k + 1 bins (-inf, e1), [e1, e2), ..., [ek, +inf)."""

    edges: list[float]
    training_share: list[float]
    served_share: list[float]


@dataclass(frozen=True)
class CategoryShares:
    """Shares per training category (most frequent first), then OTHER: the rest."""

    values: list[Any]
    training_share: list[float]
    served_share: list[float]


@dataclass(frozen=True)
class FeatureDrift:
    """One feature's distribution check. `status`: pass, warn, fail or insufficient_data;
    `reasons` say which figure crossed which threshold, or why none was computed;
    `thresholds` are the ones it was judged by (`monitoring:` and its `Field(skew=...)`)."""

    feature: str
    kind: str  # "number" or "category"
    status: str
    reasons: tuple[str, ...]
    training_rows: int
    served_rows: int
    null_rate_training: float
    null_rate_served: float
    psi: float | None = None
    psi_bins: int | None = None
    ks_statistic: float | None = None
    ks_pvalue: float | None = None
    wasserstein_scaled: float | None = None
    js_distance: float | None = None
    linf_distance: float | None = None
    unseen_share: float | None = None
    bins: BinShares | None = None  # numbers, with a training value
    category_shares: CategoryShares | None = None  # categories, with a training value
    thresholds: dict[str, float | int] = field(default_factory=dict)

    @property
    def null_rate_shift(self) -> float:
        return self.null_rate_served - self.null_rate_training

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["reasons"] = list(self.reasons)
        data["null_rate_shift"] = self.null_rate_shift
        return data


def psi(expected_counts: Sequence[int], actual_counts: Sequence[int]) -> float:
    """Population stability index of two histograms over the same bins."""
    expected = _shares(expected_counts)
    actual = _shares(actual_counts)
    return float(np.sum((actual - expected) * np.log(actual / expected)))


def _raw_shares(counts: Sequence[int]) -> list[float]:
    """Each count's share of the total (all 0 when there is none), unsmoothed."""
    total = sum(counts)
    return [count / total if total else 0.0 for count in counts]


def _shares(counts: Sequence[int]) -> np.ndarray:
    values = np.asarray(counts, dtype=float)
    total = values.sum()
    shares = values / total if total else np.zeros_like(values)
    return np.where(shares == 0, EMPTY_SHARE, shares)


def bin_counts(profile: FeatureProfile, values: np.ndarray) -> list[int]:
    """Counts of `values` (not missing) in the profile's PSI bins (see its rule)."""
    edges = np.asarray(profile.bin_edges, dtype=float)
    bins = np.searchsorted(edges, values, side="right")
    return [int(count) for count in np.bincount(bins, minlength=edges.size + 1)]


def numeric_drift(
    profile: FeatureProfile,
    training: np.ndarray,
    served: Sequence[Any] | np.ndarray,
    thresholds: DriftThresholds = DriftThresholds(),
) -> FeatureDrift:
    """Served numbers against the training profile and values (nulls, NaN count missing)."""
    values = _numbers(served)
    present = values[~np.isnan(values)]
    base = _base(profile, "number", values.size, values.size - present.size, thresholds)
    if profile.count == profile.missing:
        return _insufficient(base, profile, present.size, thresholds)
    served_counts = bin_counts(profile, present)
    shares = BinShares(
        edges=[float(edge) for edge in profile.bin_edges],
        training_share=_raw_shares(profile.bin_counts),
        served_share=_raw_shares(served_counts),
    )
    base = replace(base, bins=shares)
    if present.size < thresholds.min_rows:
        return _insufficient(base, profile, present.size, thresholds)
    reasons = list(base.reasons)
    status = "fail" if reasons else "pass"
    index = psi(profile.bin_counts, served_counts)
    status, reasons = _grade(
        status, reasons, "PSI", index, thresholds.psi_warn, thresholds.psi_fail
    )
    trained = _numbers(training)
    trained = trained[np.isfinite(trained)]
    finite = present[np.isfinite(present)]
    ks = stats.ks_2samp(trained, finite) if trained.size and finite.size else None
    # no spread when every training value is the same: numpy's std of [0.1] * 3 is 1.4e-17
    constant = profile.quantiles.get("0") == profile.quantiles.get("100")
    spread = 0.0 if constant else profile.std or 0.0
    wasserstein = (
        float(stats.wasserstein_distance(trained, finite)) / spread
        if spread > 0 and trained.size and finite.size
        else None
    )
    return replace(
        base,
        status=status,
        reasons=tuple(reasons),
        psi=index,
        psi_bins=len(profile.bin_counts),
        ks_statistic=None if ks is None else float(ks.statistic),
        ks_pvalue=None if ks is None else float(ks.pvalue),
        wasserstein_scaled=wasserstein,
    )


def categorical_drift(
    profile: FeatureProfile,
    served: Sequence[Any] | pa.Array | pa.ChunkedArray,
    thresholds: DriftThresholds = DriftThresholds(),
) -> FeatureDrift:
    """Served categories (None is missing) against the training profile's frequencies."""
    frequencies = _frequencies(served)
    present = sum(frequencies.values())
    base = _base(profile, "category", len(served), len(served) - present, thresholds)
    if profile.count == profile.missing:
        return _insufficient(base, profile, present, thresholds)
    known = dict(profile.categories)
    buckets = [*known, OTHER]
    training = [*known.values(), profile.other_count]
    counted: Counter[Any] = Counter()
    for value, count in frequencies.items():
        counted[value if value in known else OTHER] += count
    serving = [counted.get(bucket, 0) for bucket in buckets]
    base = replace(
        base,
        category_shares=CategoryShares(buckets, _raw_shares(training), _raw_shares(serving)),
    )
    if present < thresholds.min_rows:
        return _insufficient(base, profile, present, thresholds)
    p = np.asarray(training, dtype=float) / max(sum(training), 1)
    q = np.asarray(serving, dtype=float) / present
    distance = float(jensenshannon(p, q, base=2))
    unseen = (
        counted.get(OTHER, 0) / present if profile.other_count == 0 else None
    )  # with an "other" bucket in training, a value outside the top ones may not be new
    reasons = list(base.reasons)
    status = "fail" if reasons else "pass"
    status, reasons = _grade(
        status, reasons, "Jensen-Shannon", distance, thresholds.js_warn, thresholds.js_fail
    )
    return replace(
        base,
        status=status,
        reasons=tuple(reasons),
        js_distance=distance,
        linf_distance=float(np.max(np.abs(p - q))),
        unseen_share=unseen,
    )


def feature_drift(
    profile: FeatureProfile,
    training: np.ndarray | Sequence[Any],
    served: Sequence[Any] | np.ndarray | pa.Array | pa.ChunkedArray,
    thresholds: DriftThresholds = DriftThresholds(),
) -> FeatureDrift:
    """The check that fits the feature's kind."""
    if profile.kind == "number":
        return numeric_drift(profile, np.asarray(training), served, thresholds)
    if profile.kind == "category":
        arrow = isinstance(served, (pa.Array, pa.ChunkedArray))
        return categorical_drift(profile, served if arrow else list(served), thresholds)
    raise ValueError(f"feature {profile.name!r}: no distribution check for type {profile.type}")


# -- helpers --------------------------------------------------------------------------------


def _frequencies(values: Sequence[Any] | pa.Array | pa.ChunkedArray) -> dict[Any, int]:
    """Value -> count of the values that are not None. An Arrow array (the served side of a
    check of a million rows) is counted by Arrow, not value by value in Python."""
    if isinstance(values, (pa.Array, pa.ChunkedArray)):
        counts = pc.value_counts(values).to_pylist()
        return {item["values"]: item["counts"] for item in counts if item["values"] is not None}
    return dict(Counter(value for value in values if value is not None))


def _numbers(values: Sequence[Any] | np.ndarray) -> np.ndarray:
    """float64, None as NaN."""
    if isinstance(values, np.ndarray) and values.dtype != object:
        return values.astype(float, copy=False)
    return np.array([np.nan if value is None else value for value in values], dtype=float)


def _base(
    profile: FeatureProfile,
    kind: str,
    served_rows: int,
    served_missing: int,
    thresholds: DriftThresholds,
) -> FeatureDrift:
    null_served = served_missing / served_rows if served_rows else 0.0
    shift = _exact_shift(served_missing, served_rows, profile.missing, profile.count)
    reasons = (
        (
            f"null rate {null_served:.1%} served against {profile.null_rate:.1%} in training "
            f"(shift {shift:+.1%}, fail at {thresholds.null_rate_shift_fail:.0%})",
        )
        if abs(shift) >= thresholds.null_rate_shift_fail
        else ()
    )
    return FeatureDrift(
        feature=profile.name,
        kind=kind,
        status="fail" if reasons else "pass",
        reasons=reasons,
        training_rows=profile.count,
        served_rows=served_rows,
        null_rate_training=profile.null_rate,
        null_rate_served=null_served,
        thresholds=of_keys(thresholds, DRIFT_KEYS[kind]),
    )


def _exact_shift(served_missing: int, served: int, trained_missing: int, trained: int) -> float:
    """served_missing / served - trained_missing / trained, rounded once: the difference of
    two rounded rates can fall just short of a threshold it meets (0.9 - 1.0 is
    -0.09999999999999998), so a shift of exactly 10 % would pass a 10 % threshold."""
    if not served or not trained:
        return (served_missing / served if served else 0.0) - (
            trained_missing / trained if trained else 0.0
        )
    return (served_missing * trained - trained_missing * served) / (served * trained)


def _insufficient(
    base: FeatureDrift, profile: FeatureProfile, present: int, thresholds: DriftThresholds
) -> FeatureDrift:
    if profile.count == profile.missing:
        why = "insufficient data: the training set holds no value of this feature"
    else:
        why = (
            f"insufficient data: {present:,} served values that are not null, fewer than the "
            f"{thresholds.min_rows:,} a distribution statistic needs (monitoring.min_rows)"
        )
    status = "fail" if base.status == "fail" else "insufficient_data"
    return replace(base, status=status, reasons=(*base.reasons, why))


def _grade(
    status: str, reasons: list[str], name: str, value: float, warn: float, fail: float
) -> tuple[str, list[str]]:
    if value >= fail:
        return "fail", [*reasons, f"{name} {value:.3f} >= {fail} (fail)"]
    if value >= warn:
        return ("fail" if status == "fail" else "warn"), [
            *reasons,
            f"{name} {value:.3f} >= {warn} (warn)",
        ]
    return status, reasons
