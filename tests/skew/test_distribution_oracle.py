"""The distribution check of a service (`check_distribution`: the serving log read back, the
saved dataset's profile and rows) against a brute-force computation in plain Python on small
random served and training sets: every figure of every feature, its status and its reasons.

tests/skew/test_distribution.py checks each statistic against its definition; this checks
what the check as a whole makes of a log: which rows are in the window, a served null (a null
value, a key not found or expired), short and full feature names, the null-rate rule, the
insufficient-data rule and the grading against the thresholds.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from datetime import datetime, timedelta, timezone
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from featurehub.datasets.dataset import Dataset
from featurehub.datasets.files import DatasetFiles, fingerprint
from featurehub.datasets.profile import profile_table
from featurehub.errors import FeaturehubError
from featurehub.registry.datasets import DatasetRecord
from featurehub.skew.distribution import EMPTY_SHARE, OTHER, DriftThresholds
from featurehub.skew.distribution_check import check_distribution
from tests.skew.test_distribution import brute_bins, brute_js, brute_ks, brute_wasserstein
from tests.skew.test_replay import write_log

BASE = datetime(2026, 3, 1, 23, tzinfo=timezone.utc)  # the served hours cross midnight
TYPES = {"x": pa.float64(), "n": pa.int64(), "s": pa.string(), "b": pa.bool_()}
NUMBERS = ("x", "n")
VALUES: dict[str, st.SearchStrategy[Any]] = {
    "x": st.one_of(st.none(), st.floats(-4, 4).map(lambda v: round(v, 2))),
    "n": st.one_of(st.none(), st.integers(-3, 3)),
    "s": st.sampled_from([None, "a", "b", "c", "d"]),
    "b": st.sampled_from([None, True, False]),
}


def column_name(feature: str, full: bool) -> str:
    return f"v__{feature}" if full else feature


def saved(root: Path, training: dict[str, list[Any]], full: bool) -> Dataset:
    """`training` saved as a dataset as `Datasets.save_job` saves one (the files through the
    commit protocol, the profile as the registry's JSON), without a registry."""
    table = pa.table(
        {column_name(f, full): pa.array(training[f], TYPES[f]) for f in TYPES}
        | {"k": pa.array(range(len(training["x"])), pa.int64())}
    )
    columns = [column_name(f, full) for f in TYPES]
    files = DatasetFiles(root, "p")
    staging, written = files.stage(table)
    path = files.seal(staging, "training")
    profile = {
        c: json.loads(json.dumps(p.to_dict())) for c, p in profile_table(table, columns).items()
    }
    record = DatasetRecord(
        name="training",
        features=[f"v:{f}" for f in TYPES],
        feature_service="svc",
        view_versions={"v": 1},
        timestamp_column="event_timestamp",
        entity_start=None,
        entity_end=None,
        row_count=table.num_rows,
        fingerprint=fingerprint(written),
        path=path,
        files=written,
        created_cutoff=True,
        description="",
        created_at=BASE,
        profile=profile,
    )
    return Dataset(record, files)


@st.composite
def served_rows(draw: st.DrawFn) -> list[dict[str, Any]]:
    """Logged rows as the writer leaves them: a key not found or expired has null values."""
    rows = []
    for i in range(draw(st.integers(0, 30))):
        status = draw(st.sampled_from(["present", "present", "present", "not_found", "expired"]))
        full = draw(st.booleans())  # the request asked for full feature names
        values = {
            column_name(f, full): draw(VALUES[f]) if status == "present" else None for f in TYPES
        }
        rows.append(
            {
                "request_id": f"r{i:03d}",
                "row": 0,
                "served_at": BASE + timedelta(minutes=draw(st.integers(0, 180))),
                "k": i,
                "values": values,
                "statuses": dict.fromkeys(values, status),
                "events": dict.fromkeys(values, None),
            }
        )
    return rows


def exact_share(part: int, whole: int) -> Fraction:
    return Fraction(part, whole) if whole else Fraction(0)


def graded(
    status: str, reasons: list[str], name: str, value: float, warn: float, fail: float
) -> str:
    if value >= fail:
        reasons.append(f"{name} fail")
        return "fail"
    if value >= warn:
        reasons.append(f"{name} warn")
        return "fail" if status == "fail" else "warn"
    return status


def brute_drift(
    feature: str, training: list[Any], served: list[Any], limits: DriftThresholds
) -> dict[str, Any]:
    """What the check must report for one feature, written out plainly."""
    present_training = [v for v in training if v is not None]
    present = [v for v in served if v is not None]
    null_training = exact_share(len(training) - len(present_training), len(training))
    null_served = exact_share(len(served) - len(present), len(served))
    shift = null_served - null_training
    reasons: list[str] = []
    if abs(shift) >= Fraction(str(limits.null_rate_shift_fail)):  # the threshold as written
        reasons.append("null")
    figures: dict[str, Any] = {
        "training_rows": len(training),
        "served_rows": len(served),
        "null_rate_training": float(null_training),
        "null_rate_served": float(null_served),
        "null_rate_shift": float(shift),
    }
    status = "fail" if reasons else "pass"
    if len(present) < limits.min_rows or not present_training:
        reasons.append("insufficient")
        return figures | {
            "status": status if reasons[0] == "null" else "insufficient_data",
            "reasons": reasons,
        }
    if feature in NUMBERS:
        return figures | numeric_figures(
            training, present_training, present, status, reasons, limits
        )
    return figures | category_figures(present_training, present, status, reasons, limits)


def numeric_figures(
    training: list[Any], trained: list[float], present: list[float], status: str,
    reasons: list[str], limits: DriftThresholds,
) -> dict[str, Any]:  # fmt: skip
    from featurehub.datasets.profile import profile_column

    edges = profile_column("x", pa.chunked_array([pa.array(training, pa.float64())])).bin_edges
    expected, actual = brute_bins(edges, trained), brute_bins(edges, present)
    psi = 0.0
    for e, a in zip(expected, actual, strict=True):
        p, q = (e / len(trained)) or EMPTY_SHARE, (a / len(present)) or EMPTY_SHARE
        psi += (q - p) * math.log(q / p)
    status = graded(status, reasons, "PSI", psi, limits.psi_warn, limits.psi_fail)
    mean = sum(trained) / len(trained)
    std = math.sqrt(sum((v - mean) ** 2 for v in trained) / len(trained))
    return {
        "status": status,
        "reasons": reasons,
        "psi": psi,
        "psi_bins": len(edges) + 1,
        "ks_statistic": brute_ks([float(v) for v in trained], [float(v) for v in present]),
        # no spread when every training value is the same (numpy's std may be 1e-17 then)
        "wasserstein_scaled": (
            brute_wasserstein(trained, present) / std if len(set(trained)) > 1 else None
        ),
    }


def category_figures(
    trained: list[Any], present: list[Any], status: str, reasons: list[str],
    limits: DriftThresholds,
) -> dict[str, Any]:  # fmt: skip
    known = Counter(trained)
    buckets = [*known, OTHER]
    served = Counter(v if v in known else OTHER for v in present)
    p = [known.get(b, 0) / len(trained) for b in buckets]
    q = [served.get(b, 0) / len(present) for b in buckets]
    distance = brute_js(p, q)
    status = graded(status, reasons, "Jensen-Shannon", distance, limits.js_warn, limits.js_fail)
    return {
        "status": status,
        "reasons": reasons,
        "js_distance": distance,
        "linf_distance": max(abs(a - b) for a, b in zip(p, q, strict=True)),
        "unseen_share": served.get(OTHER, 0) / len(present),
    }


def reason_kind(reason: str) -> str:
    """A reason the check gave, as the brute force names it: its first word (the figure),
    and whether it is a warning or a failure."""
    grade = {"(fail)": " fail", "(warn)": " warn"}.get(reason.rsplit(" ", 1)[-1], "")
    return reason.split()[0].rstrip(":") + grade


def served_values(rows: list[dict[str, Any]], feature: str) -> list[Any]:
    return [row["values"].get(feature, row["values"].get(f"v__{feature}")) for row in rows]


@pytest.mark.filterwarnings("ignore:ks_2samp. Exact calculation unsuccessful:RuntimeWarning")
@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data(), logged=served_rows())
def test_the_check_equals_a_brute_force_computation(
    tmp_path_factory: pytest.TempPathFactory, data: st.DataObject, logged: list[dict[str, Any]]
) -> None:
    size = data.draw(st.integers(1, 25))
    training = {f: data.draw(st.lists(VALUES[f], min_size=size, max_size=size)) for f in TYPES}
    psi, js = (
        data.draw(st.sampled_from([(0.1, 0.25), (0.02, 0.05)])),
        data.draw(st.sampled_from([(0.1, 0.2), (0.01, 0.03)])),
    )
    limits = DriftThresholds(
        min_rows=data.draw(st.integers(1, 6)),
        null_rate_shift_fail=data.draw(st.sampled_from([0.1, 0.2, 0.5, 0.25])),
        psi_warn=psi[0], psi_fail=psi[1], js_warn=js[0], js_fail=js[1],
    )  # fmt: skip
    start = BASE + timedelta(minutes=data.draw(st.sampled_from([0, 30, 61])))
    end = start + timedelta(minutes=data.draw(st.sampled_from([20, 60, 180])))
    full = data.draw(st.booleans())  # the dataset saved with full feature names
    root = tmp_path_factory.mktemp("drift")
    (root / "logs").mkdir()
    write_log(root / "logs", logged)
    dataset = saved(root / "offline", training, full)
    in_window = [row for row in logged if start <= row["served_at"] < end]
    if not in_window:
        with pytest.raises(FeaturehubError, match="no (logged rows|serving log)"):
            check_distribution(root / "logs", "svc", dataset, start, end, limits)
        return
    result = check_distribution(root / "logs", "svc", dataset, start, end, limits)
    assert result.served_rows == len(in_window)
    found = {drift.feature: drift for drift in result.features}
    assert set(found) == {column_name(f, full) for f in TYPES}
    for feature in TYPES:
        expected = brute_drift(
            feature, training[feature], served_values(in_window, feature), limits
        )
        drift = found[column_name(feature, full)].to_dict()
        kinds = [reason_kind(reason) for reason in drift["reasons"]]
        assert kinds == expected.pop("reasons"), (feature, drift["reasons"])
        for name, value in expected.items():
            if isinstance(value, float):
                assert drift[name] == pytest.approx(value, rel=1e-9, abs=1e-12), (feature, name)
            else:
                assert drift[name] == value, (feature, name, drift)
    assert result.passed == all(d.status != "fail" for d in result.features)


def test_a_constant_training_feature_has_no_scaled_wasserstein() -> None:
    """numpy's std of [0.1, 0.1, 0.1] is 1.4e-17, not 0: dividing by it reported a distance
    of 1e16 training spreads."""
    from featurehub.datasets.profile import profile_column
    from featurehub.skew.distribution import numeric_drift

    training = [0.1] * 3
    profile = profile_column("x", pa.chunked_array([pa.array(training)]))
    drift = numeric_drift(profile, np.array(training), [-0.5, 0.1], DriftThresholds(min_rows=1))
    assert drift.wasserstein_scaled is None and drift.psi is not None and drift.psi > 0.25


def test_a_null_rate_shift_of_exactly_the_threshold_fails() -> None:
    """100 nulls in 1,000 served values against none in training: a shift of 10 %, which
    fails at the default 10 % (1 - 900 / 1000 is 0.09999999999999998, which did not)."""
    from featurehub.datasets.profile import profile_column
    from featurehub.skew.distribution import categorical_drift

    profile = profile_column("s", pa.chunked_array([pa.array(["a"] * 10)]))
    drift = categorical_drift(profile, ["a"] * 900 + [None] * 100)
    assert drift.status == "fail" and drift.null_rate_served == 0.1
    assert drift.reasons[0].startswith("null rate 10.0% served against 0.0% in training")
