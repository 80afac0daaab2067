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
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from scipy import stats
from scipy.spatial.distance import jensenshannon

from featurehub.config import MonitoringConfig as DriftThresholds  # featurehub.yaml's monitoring:
from featurehub.datasets.profile import FeatureProfile

EMPTY_SHARE = 0.0001  # an empty bin's share, on either side (Evidently's PSI smoothing)
OTHER = "__other__"  # the bucket of categories outside the training profile's top ones


@dataclass(frozen=True)
class FeatureDrift:
    """One feature's distribution check. `status`: pass, warn, fail or insufficient_data;
    `reasons` say which figure crossed which threshold, or why none was computed."""

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
    null_served = 1 - present.size / values.size if values.size else 0.0
    base = _base(profile, "number", values.size, null_served, thresholds)
    if present.size < thresholds.min_rows or profile.count == profile.missing:
        return _insufficient(base, profile, present.size, thresholds)
    reasons = list(base.reasons)
    status = "fail" if reasons else "pass"
    index = psi(profile.bin_counts, bin_counts(profile, present))
    status, reasons = _grade(
        status, reasons, "PSI", index, thresholds.psi_warn, thresholds.psi_fail
    )
    trained = _numbers(training)
    trained = trained[np.isfinite(trained)]
    finite = present[np.isfinite(present)]
    ks = stats.ks_2samp(trained, finite) if trained.size and finite.size else None
    spread = profile.std or 0.0
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
    null_served = 1 - present / len(served) if len(served) else 0.0
    base = _base(profile, "category", len(served), null_served, thresholds)
    if present < thresholds.min_rows or profile.count == profile.missing:
        return _insufficient(base, profile, present, thresholds)
    known = dict(profile.categories)
    buckets = [*known, OTHER]
    training = [*known.values(), profile.other_count]
    counted: Counter[Any] = Counter()
    for value, count in frequencies.items():
        counted[value if value in known else OTHER] += count
    serving = [counted.get(bucket, 0) for bucket in buckets]
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
    null_served: float,
    thresholds: DriftThresholds,
) -> FeatureDrift:
    shift = null_served - profile.null_rate
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
    )


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
