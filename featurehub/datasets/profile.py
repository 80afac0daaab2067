"""A profile per feature, computed once when a dataset is saved.

A drift check compares served values with the training set through this profile alone, so it
never re-reads the dataset, and every check against one dataset uses the same bins.

Missing values are nulls, and NaN in float columns. For numbers (integers and floats, not
booleans) over the values that are not missing:

- quantiles at 0, 1, 5, 10, 25, 50, 75, 90, 95, 99 and 100 % (numpy, linear interpolation),
  the mean and the standard deviation (population, ddof=0), over the finite values (the
  count of infinite ones is kept apart: they would make every statistic NaN);
- PSI bins. The edges are the deciles 10 % .. 90 % of the finite values, each an observed
  value (numpy's "lower" method, so a discrete value's rows all fall in one bin),
  deduplicated: discrete data gets fewer than 10 bins. With edges e1 < ... < ek there are
  k + 1 bins, open at both ends: (-inf, e1), [e1, e2), ..., [ek, +inf). A value v (infinite
  ones included) falls in bin i = the number of edges <= v. The training count of every bin
  is stored.

For strings and booleans: the 100 most frequent values with their counts (ties by value),
and an "other" count for the rest. Other types (timestamps, lists) get counts only.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

QUANTILES = (0.0, 0.01, 0.05, 0.10, 0.25, 0.50, 0.75, 0.90, 0.95, 0.99, 1.0)
DECILES = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)
TOP_CATEGORIES = 100


@dataclass(frozen=True)
class FeatureProfile:
    """What a drift check needs of one feature of the training set."""

    name: str
    type: str  # the Arrow type, e.g. "double", "int64", "string"
    kind: str  # "number", "category" or "other"
    count: int  # rows, missing included
    missing: int  # null, or NaN for floats
    infinite: int = 0  # +-inf: binned, left out of quantiles, mean and std
    quantiles: dict[str, float] = field(default_factory=dict)  # "0", "1", ... "100" (percent)
    mean: float | None = None
    std: float | None = None
    bin_edges: list[float] = field(default_factory=list)
    bin_counts: list[int] = field(default_factory=list)  # len(bin_edges) + 1 bins
    categories: list[tuple[Any, int]] = field(default_factory=list)  # most frequent first
    other_count: int = 0  # values beyond the top categories

    @property
    def null_rate(self) -> float:
        return self.missing / self.count if self.count else 0.0

    def bin_of(self, value: float) -> int:
        """The PSI bin of a value: the number of edges <= value."""
        return int(np.searchsorted(np.asarray(self.bin_edges, dtype=float), value, side="right"))

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["categories"] = [list(pair) for pair in self.categories]
        data["null_rate"] = self.null_rate
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FeatureProfile:
        values = {k: v for k, v in data.items() if k != "null_rate"}
        values["categories"] = [tuple(pair) for pair in values.get("categories", [])]
        return cls(**values)


def profile_table(table: pa.Table, columns: list[str]) -> dict[str, FeatureProfile]:
    """A profile of each of `columns` of `table`."""
    return {name: profile_column(name, table.column(name)) for name in columns}


def profile_column(name: str, column: pa.ChunkedArray) -> FeatureProfile:
    kind = _kind(column.type)
    count = len(column)
    if kind == "number":
        values = _present_numbers(column)
        base = FeatureProfile(name, str(column.type), kind, count, count - values.size)
        return _with_numbers(base, values)
    missing = column.null_count
    base = FeatureProfile(name, str(column.type), kind, count, missing)
    if kind == "category":
        return _with_categories(base, column)
    return base


def _kind(arrow_type: pa.DataType) -> str:
    if pa.types.is_boolean(arrow_type) or pa.types.is_string(arrow_type):
        return "category"
    if pa.types.is_large_string(arrow_type) or pa.types.is_dictionary(arrow_type):
        return "category"
    if pa.types.is_integer(arrow_type) or pa.types.is_floating(arrow_type):
        return "number"
    if pa.types.is_decimal(arrow_type):
        return "number"
    return "other"


def _present_numbers(column: pa.ChunkedArray) -> np.ndarray:
    """The values that are neither null nor NaN, as float64."""
    values = pc.drop_null(column.cast(pa.float64())).to_numpy()
    return values[~np.isnan(values)]


def _with_numbers(base: FeatureProfile, values: np.ndarray) -> FeatureProfile:
    finite = values[np.isfinite(values)]
    if not finite.size:  # no edges: one bin, (-inf, +inf)
        return replace(base, infinite=int(values.size), bin_counts=[int(values.size)])
    quantiles = np.quantile(finite, QUANTILES, method="linear")
    edges = np.unique(np.quantile(finite, DECILES, method="lower"))
    bins = np.searchsorted(edges, values, side="right")
    counts = np.bincount(bins, minlength=edges.size + 1)
    return replace(
        base,
        infinite=int(values.size - finite.size),
        quantiles={_percent(q): float(v) for q, v in zip(QUANTILES, quantiles, strict=True)},
        mean=float(np.mean(finite)),
        std=float(np.std(finite)),
        bin_edges=[float(e) for e in edges],
        bin_counts=[int(c) for c in counts],
    )


def _percent(fraction: float) -> str:
    return f"{fraction * 100:g}"


def _with_categories(base: FeatureProfile, column: pa.ChunkedArray) -> FeatureProfile:
    if pa.types.is_dictionary(column.type):
        column = column.cast(column.type.value_type)
    counted = pc.value_counts(pc.drop_null(column))
    pairs = [
        (value, int(count))
        for value, count in zip(
            counted.field("values").to_pylist(), counted.field("counts").to_pylist(), strict=True
        )
    ]
    pairs.sort(key=lambda pair: (-pair[1], pair[0]))
    top = pairs[:TOP_CATEGORIES]
    other = sum(count for _, count in pairs[TOP_CATEGORIES:])
    return replace(base, categories=top, other_count=other)
