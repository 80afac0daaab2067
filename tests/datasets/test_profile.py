"""The profile against plain Python: bin edges, bin counts, null rates, categories.

The oracle sorts the values and counts by hand; the profile uses numpy and Arrow. Values come
from tiny domains so that ties, discrete data (edges that collapse), nulls and NaN are common.
"""

from __future__ import annotations

import math
from collections import Counter
from typing import Any

import pyarrow as pa
from hypothesis import given, settings
from hypothesis import strategies as st

from featurehub.datasets.profile import DECILES, TOP_CATEGORIES, FeatureProfile, profile_column

NUMBERS = st.one_of(
    st.none(),
    st.floats(min_value=-1e6, max_value=1e6),
    st.sampled_from([math.nan, math.inf, -math.inf]),
    st.sampled_from([0.0, 1.0, 2.5, -3.0]),  # repeated values: discrete data
)


def oracle_edges(values: list[float]) -> list[float]:
    """Deciles as observed values: the value at index floor((n - 1) * q) of the sorted data
    (numpy's "lower" method), deduplicated."""
    ordered = sorted(values)
    n = len(ordered)
    return sorted({ordered[(n - 1) * k // 10] for k in range(1, 10)})


def oracle_bins(values: list[float], edges: list[float]) -> list[int]:
    """Bin i holds the values with exactly i edges at or below them."""
    counts = [0] * (len(edges) + 1)
    for value in values:
        counts[sum(1 for edge in edges if edge <= value)] += 1
    return counts


@settings(max_examples=300, deadline=None)
@given(st.lists(NUMBERS, max_size=200))
def test_number_bins_and_null_rate_match_plain_python(raw: list[float | None]) -> None:
    profile = profile_column("x", pa.chunked_array([pa.array(raw, pa.float64())]))
    present = [v for v in raw if v is not None and not math.isnan(v)]
    finite = [v for v in present if math.isfinite(v)]
    assert profile.kind == "number"
    assert profile.count == len(raw)
    assert profile.missing == len(raw) - len(present)
    assert profile.infinite == len(present) - len(finite)
    assert profile.null_rate == (profile.missing / len(raw) if raw else 0.0)
    assert profile.bin_edges == (oracle_edges(finite) if finite else [])
    assert profile.bin_counts == oracle_bins(present, profile.bin_edges)
    assert sum(profile.bin_counts) == len(present)
    assert len(profile.bin_counts) <= len(DECILES) + 1
    if not finite:
        assert profile.quantiles == {} and profile.mean is None
        return
    assert profile.quantiles["0"] == min(finite) and profile.quantiles["100"] == max(finite)
    assert all(math.isfinite(q) for q in profile.quantiles.values())
    assert math.isclose(profile.mean or 0.0, sum(finite) / len(finite), abs_tol=1e-6)
    for value in present:  # bin_of, which a drift check uses, agrees with the stored counts
        assert profile.bin_of(value) == sum(1 for edge in profile.bin_edges if edge <= value)


@settings(max_examples=100, deadline=None)
@given(st.lists(st.one_of(st.none(), st.integers(-5, 5)), max_size=40))
def test_integer_columns_are_numbers_with_nulls_only_missing(raw: list[int | None]) -> None:
    profile = profile_column("n", pa.chunked_array([pa.array(raw, pa.int64())]))
    present = [v for v in raw if v is not None]
    assert profile.missing == raw.count(None)
    if present:
        assert profile.bin_counts == oracle_bins(present, oracle_edges(present))


def oracle_categories(values: list[Any]) -> tuple[list[tuple[Any, int]], int]:
    counts = Counter(v for v in values if v is not None)
    counted = sorted(counts.items(), key=lambda pair: (-pair[1], pair[0]))
    return counted[:TOP_CATEGORIES], sum(c for _, c in counted[TOP_CATEGORIES:])


@settings(max_examples=100, deadline=None)
@given(
    st.lists(st.one_of(st.none(), st.text(alphabet="ab", max_size=2)), max_size=50),
    st.lists(st.one_of(st.none(), st.booleans()), max_size=50),
)
def test_category_frequencies_match_plain_python(
    strings: list[str | None], flags: list[bool | None]
) -> None:
    for raw, arrow_type in ((strings, pa.string()), (flags, pa.bool_())):
        profile = profile_column("c", pa.chunked_array([pa.array(raw, arrow_type)]))
        top, other = oracle_categories(raw)
        assert profile.kind == "category"
        assert (profile.categories, profile.other_count) == (top, other)
        assert profile.missing == raw.count(None)


def test_beyond_the_top_categories_the_rest_is_counted_as_other() -> None:
    values = [f"c{i:03d}" for i in range(150) for _ in range(1 + (i < 10))]
    profile = profile_column("c", pa.chunked_array([pa.array(values)]))
    assert len(profile.categories) == TOP_CATEGORIES
    assert profile.categories[0] == ("c000", 2)
    assert profile.other_count == 50
    assert sum(c for _, c in profile.categories) + profile.other_count == len(values)


def test_a_profile_survives_its_json_form() -> None:
    profile = profile_column("c", pa.chunked_array([pa.array(["a", "b", "a", None])]))
    again = FeatureProfile.from_dict(profile.to_dict())
    assert again == profile and again.null_rate == 0.25
    numbers = profile_column("x", pa.chunked_array([pa.array([1.0, 2.0, None])]))
    assert FeatureProfile.from_dict(numbers.to_dict()) == numbers


def test_discrete_data_gets_fewer_bins_open_at_both_ends() -> None:
    profile = profile_column("x", pa.chunked_array([pa.array([1, 1, 1, 1, 2, 2, 3] * 10)]))
    assert profile.bin_edges == [1.0, 2.0, 3.0]
    assert profile.bin_counts == [0, 40, 20, 10]
    assert profile.bin_of(-100) == 0 and profile.bin_of(1e9) == 3
