"""Distribution statistics against brute-force definitions in plain Python."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from featurehub.datasets.profile import profile_column
from featurehub.skew.distribution import (
    EMPTY_SHARE,
    DriftThresholds,
    bin_counts,
    categorical_drift,
    feature_drift,
    numeric_drift,
)

ANY = DriftThresholds(min_rows=1)
numbers = st.lists(
    st.floats(-1e6, 1e6, allow_nan=False).map(lambda x: round(x, 3)), min_size=1, max_size=80
)


def profile_of(values: list) -> object:
    return profile_column("x", pa.chunked_array([pa.array(values)]))


def brute_psi(expected: list[int], actual: list[int]) -> float:
    total_e, total_a = sum(expected), sum(actual)
    result = 0.0
    for e, a in zip(expected, actual, strict=True):
        p = e / total_e if total_e else 0.0
        q = a / total_a if total_a else 0.0
        p, q = p or EMPTY_SHARE, q or EMPTY_SHARE
        result += (q - p) * math.log(q / p)
    return result


def brute_bins(edges: list[float], values: list[float]) -> list[int]:
    counts = [0] * (len(edges) + 1)
    for value in values:
        counts[sum(1 for edge in edges if edge <= value)] += 1
    return counts


def cdf(sample: list[float], x: float) -> float:
    return sum(1 for v in sample if v <= x) / len(sample)


def brute_ks(a: list[float], b: list[float]) -> float:
    return max(abs(cdf(a, x) - cdf(b, x)) for x in a + b)


def brute_wasserstein(a: list[float], b: list[float]) -> float:
    points = sorted(set(a + b))
    return sum(
        (right - left) * abs(cdf(a, left) - cdf(b, left))
        for left, right in itertools.pairwise(points)
    )


def brute_js(p: list[float], q: list[float]) -> float:
    m = [(x + y) / 2 for x, y in zip(p, q, strict=True)]

    def kl(x: list[float]) -> float:
        return sum(a * math.log2(a / c) for a, c in zip(x, m, strict=True) if a > 0)

    return math.sqrt(max(0.5 * kl(p) + 0.5 * kl(q), 0.0))


@pytest.mark.filterwarnings("ignore:ks_2samp. Exact calculation unsuccessful:RuntimeWarning")
@settings(max_examples=200, deadline=None)
@given(training=numbers, served=numbers)
def test_numeric_statistics_match_their_definitions(training: list, served: list) -> None:
    profile = profile_of(training)
    assert bin_counts(profile, np.array(served)) == brute_bins(profile.bin_edges, served)
    drift = numeric_drift(profile, np.array(training), served, ANY)
    expected = brute_psi(profile.bin_counts, brute_bins(profile.bin_edges, served))
    assert drift.psi == pytest.approx(expected, rel=1e-9, abs=1e-12)
    assert drift.psi_bins == len(profile.bin_edges) + 1
    assert drift.ks_statistic == pytest.approx(brute_ks(training, served), abs=1e-12)
    assert drift.bins is not None and drift.bins.edges == profile.bin_edges
    bins = drift.bins
    for shares, sample in ((bins.training_share, training), (bins.served_share, served)):
        counts = brute_bins(profile.bin_edges, sample)
        assert shares == pytest.approx([count / len(sample) for count in counts])
    if profile.std:
        scaled = brute_wasserstein(training, served) / profile.std
        assert drift.wasserstein_scaled == pytest.approx(scaled, rel=1e-6, abs=1e-9)
    else:
        assert drift.wasserstein_scaled is None


categories = st.lists(st.sampled_from(["a", "b", "c", "d", None]), min_size=1, max_size=60)


@settings(max_examples=200, deadline=None)
@given(training=categories, served=categories)
def test_categorical_statistics_match_their_definitions(training: list, served: list) -> None:
    profile = profile_of(training)
    drift = categorical_drift(profile, served, ANY)
    # the distribution check hands the served column over as Arrow, counted by Arrow
    assert (
        categorical_drift(profile, pa.chunked_array([pa.array(served, pa.string())]), ANY) == drift
    )
    present = [v for v in served if v is not None]
    assert drift.null_rate_served == pytest.approx(1 - len(present) / len(served))
    if all(value is None for value in training):
        assert drift.category_shares is None
    else:
        shares = drift.category_shares
        assert shares is not None and shares.values == [v for v, _ in profile.categories] + [
            "__other__"
        ]
        known = shares.values[:-1]
        for share, sample in (
            (shares.training_share, [v for v in training if v is not None]),
            (shares.served_share, present),
        ):
            counts = [sample.count(v) for v in known] + [sum(v not in known for v in sample)]
            assert share == pytest.approx([c / len(sample) if sample else 0.0 for c in counts])
    if not present or all(value is None for value in training):
        assert drift.status in ("insufficient_data", "fail") and drift.js_distance is None
        assert any("insufficient data" in reason for reason in drift.reasons)
        return
    known = [value for value, _ in profile.categories]
    total = sum(count for _, count in profile.categories) or 1
    p = [count / total for _, count in profile.categories] + [0.0]
    q = [present.count(v) / len(present) for v in known]
    q.append(sum(1 for v in present if v not in known) / len(present))
    assert drift.js_distance == pytest.approx(brute_js(p, q), abs=1e-9)
    assert drift.linf_distance == pytest.approx(max(abs(a - b) for a, b in zip(p, q, strict=True)))
    assert drift.unseen_share == pytest.approx(q[-1])


def test_same_distribution_passes_and_a_shift_fails() -> None:
    rng = np.random.default_rng(0)
    training = rng.normal(0, 1, 20_000)
    profile = profile_of(training.tolist())
    same = numeric_drift(profile, training, rng.normal(0, 1, 5_000))
    assert same.status == "pass" and same.reasons == () and same.psi is not None
    assert same.psi < 0.1 and same.ks_pvalue is not None and same.ks_pvalue > 0.001
    shifted = numeric_drift(profile, training, rng.normal(1, 1, 5_000))
    assert shifted.status == "fail" and shifted.psi is not None and shifted.psi >= 0.25
    assert any("PSI" in reason for reason in shifted.reasons)
    slight = numeric_drift(profile, training, rng.normal(0.35, 1, 5_000))
    assert slight.status == "warn", slight


def test_the_statistics_do_not_depend_on_the_order() -> None:
    """The distribution check sorts both sides (scipy's Wasserstein distance is faster so)."""
    rng = np.random.default_rng(1)
    training, served = rng.normal(0, 1, 3_000), rng.normal(0.2, 1.1, 2_000)
    served[::7] = np.nan
    profile = profile_of(training.tolist())
    as_given = numeric_drift(profile, training, served)
    ordered = numeric_drift(profile, np.sort(training), np.sort(served))
    assert as_given.psi == ordered.psi and as_given.ks_statistic == ordered.ks_statistic
    assert (
        as_given.ks_pvalue == ordered.ks_pvalue
        and as_given.null_rate_served == ordered.null_rate_served
    )
    assert as_given.wasserstein_scaled == pytest.approx(ordered.wasserstein_scaled, rel=1e-12)


def test_too_few_rows_say_so_instead_of_a_statistic() -> None:
    profile = profile_of([float(x) for x in range(2_000)])
    drift = numeric_drift(profile, np.arange(2_000.0), [1.0] * 999 + [None] * 5)
    assert drift.status == "insufficient_data" and drift.psi is None
    assert "999 served values that are not null, fewer than the 1,000" in drift.reasons[0]


def test_a_feature_null_when_served_fails_on_its_null_rate() -> None:
    profile = profile_of(["a", "b"] * 1_000)
    drift = categorical_drift(profile, ["a"] * 1_000 + [None] * 500)
    assert drift.status == "fail" and drift.null_rate_shift == pytest.approx(1 / 3)
    assert "null rate 33.3% served against 0.0% in training" in drift.reasons[0]
    categories = feature_drift(profile, [], ["a", "b"] * 600)
    assert categories.status == "pass" and categories.js_distance == pytest.approx(0.0)
    json_ready = categories.to_dict()
    assert json_ready["null_rate_shift"] == 0.0 and json_ready["reasons"] == []
