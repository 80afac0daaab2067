"""Replay: every logged serving row through the offline point-in-time join, compared value by
value with what was served (issue 10's row-level check; docs/skew-checks.md, "Replay").

The online store answers the join at now among the rows the stores hold (docs/point-in-time.md,
"Online equals offline"), so a logged row replayed at its served_at must get the value it was
served. Where it does not, the event timestamps logged with every value say why:

- stale: online served an older event than the join picks (materialization lag);
- value_skew: same event time, different value (a computation or write bug);
- ttl_or_status: the sides disagree whether there is a value (expired or not_found online and a
  row offline, or the reverse) and the event times do not show staleness (a TTL changed
  between serving and training, or an online store missing rows);
- unexplained: online served a newer event than the join picks.

Three steps, none of which loops over rows in Python: DuckDB reads and types the log's JSON
(`served_rows`); the point-in-time join appends each view's features and the winning row's
`event_timestamp`, fetched as one more column of the view (the join's rules are untouched);
DuckDB compares the two sides per feature and counts.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

import duckdb
import numpy as np

from featurehub import types
from featurehub.config import MonitoringConfig
from featurehub.errors import FeaturehubError
from featurehub.offline.base import EVENT_TIMESTAMP
from featurehub.offline.pit import ViewQuery, point_in_time_join
from featurehub.offline.source_reader import connect
from featurehub.skew.histograms import Buckets, Timeline, lag_histogram
from featurehub.skew.replay_result import (
    CAUSES,
    STALE,
    FeatureReplay,
    LagSummary,
    MismatchExample,
    ReplayResult,
)
from featurehub.skew.served_rows import (
    REQUEST_ID,
    ROW,
    SERVED_AT,
    ModelAnswers,
    ServedFeature,
    as_utc,
    log_files,
    read_served_rows,
    served_event,
    served_status,
    served_value,
    view_numbers,
)
from featurehub.skew.thresholds import judged_by
from featurehub.types import ValueType

if TYPE_CHECKING:
    from featurehub.feature_store import FeatureStore

EXAMPLES = 5
"""Mismatching rows shown per feature, the first by (served_at, request_id, row)."""

_NUMBERS = frozenset({"Int32", "Int64", "Float32", "Float64"})
_FLOATS = frozenset({"Float32", "Float64"})
_ONLINE_HAS = "(status = 'present')"
_OFFLINE_HAS = "(offline_event IS NOT NULL)"
_BOTH_TIMES = "served_event IS NOT NULL AND offline_event IS NOT NULL"
_CAUSE = (
    f"CASE WHEN {_BOTH_TIMES} AND served_event < offline_event THEN 'stale' "
    f"WHEN {_BOTH_TIMES} AND served_event > offline_event THEN 'unexplained' "
    f"WHEN {_ONLINE_HAS} <> {_OFFLINE_HAS} THEN 'ttl_or_status' ELSE 'value_skew' END"
)
"""A mismatch's cause, from the event times and whether each side has a row (in this order:
an older served event is staleness whatever the statuses say)."""


class ReplayError(FeaturehubError, ValueError):
    """The replay cannot run as asked (no logged rows, bad window or sample)."""


def replay(
    store: FeatureStore,
    feature_service: str,
    start: datetime,
    end: datetime,
    *,
    sample: float | None = None,
    monitoring: MonitoringConfig = MonitoringConfig(),
    examples: int = EXAMPLES,
    answered_by: ModelAnswers | None = None,
) -> ReplayResult:
    """Replay the rows `feature_service` served with served_at in [start, end) (naive times are
    UTC) through the offline join at their served_at and compare value by value; with
    `answered_by`, only the rows that model version answered (never shadow rows).

    `sample` (0 < sample <= 1) keeps that share of entity keys, chosen by a hash of the key so
    the same keys are kept in every run. Each feature is judged by `monitoring` (featurehub.yaml's
    `monitoring:`) with its `Field(skew=...)` over it: floats match within a relative
    `float_tolerance`, other types exactly; the mismatches of each cause may be up to
    `max_<cause>_rate` of its rows. Raises ReplayError when the window holds no logged row.
    """
    start, end = _window(start, end)
    service = store.get_feature_service(feature_service)
    projections = store.catalog().resolve(service)
    views: list[ViewQuery] = []
    features: list[ServedFeature] = []
    key_types: dict[str, ValueType] = {}
    thresholds: dict[str, MonitoringConfig] = {}
    for projection in projections:
        view = projection.view
        relation = store.offline_store.relation(view)
        if relation is None:
            raise ReplayError(
                f"feature view {view.name!r} has no offline data to replay against; "
                f"materialize it first: featurehub materialize START END --views {view.name}"
            )
        views.append(ViewQuery.of(projection, relation))
        fields = {field.name: field for field in view.schema}
        features += [ServedFeature(view.name, f, fields[f].dtype) for f in projection.features]
        for name in projection.features:
            thresholds[f"{view.name}:{name}"] = judged_by(monitoring, fields[name].skew)
        for entity in view.entities:
            for key in entity.join_keys:
                key_types.setdefault(key, entity.key_types.get(key, types.Int64))
    root = store.config.serving_log_root
    files = log_files(root, service.name, start, end)
    if not files:
        why = f"no log file of those days under {root}"
        raise ReplayError(_no_rows(service.name, start, end, why, answered_by))
    con = connect(store.repo_path)
    try:
        return replay_log(
            con,
            files,
            service.name,
            views,
            key_types,
            features,
            start,
            end,
            sample=sample,
            monitoring=monitoring,
            per_feature=thresholds,
            examples=examples,
            answered_by=answered_by,
        )
    finally:
        con.close()


def replay_log(
    con: duckdb.DuckDBPyConnection,
    files: Sequence[Path],
    service: str,
    views: Sequence[ViewQuery],
    key_types: dict[str, ValueType],
    features: Sequence[ServedFeature],
    start: datetime,
    end: datetime,
    *,
    sample: float | None = None,
    monitoring: MonitoringConfig = MonitoringConfig(),
    per_feature: Mapping[str, MonitoringConfig] | None = None,
    examples: int = EXAMPLES,
    answered_by: ModelAnswers | None = None,
) -> ReplayResult:
    """`replay` on given log files and view queries (as `get_historical_features` builds
    them): the whole computation, without a FeatureStore. `per_feature` thresholds judge the
    features they name (`view:feature`); the others are judged by `monitoring`."""
    start, end = _window(start, end)
    if sample is not None and not 0 < sample <= 1:
        raise ReplayError(f"sample must be a fraction in (0, 1], not {sample}; e.g. 0.1")
    judged = [
        (per_feature or {}).get(f"{feature.view}:{feature.feature}", monitoring)
        for feature in features
    ]
    served = read_served_rows(con, files, key_types, features, start, end, sample, answered_by)
    if served.num_rows == 0:
        where = "no row in the window" if sample is None else f"no row kept by sample={sample}"
        raise ReplayError(_no_rows(service, start, end, where, answered_by))
    with_events = [replace(v, features=(*v.features, EVENT_TIMESTAMP)) for v in views]
    joined = point_in_time_join(
        con, served, with_events, timestamp_column=SERVED_AT, full_feature_names=True
    )
    name = f"__replay_{id(joined)}"
    con.register(name, joined)
    buckets = Buckets.of(start, end)
    try:
        results = tuple(
            _compare(con, name, i, view, feature, list(key_types), judged[i], examples, buckets)
            for i, (view, feature) in enumerate(zip(view_numbers(features), features, strict=True))
        )
    finally:
        con.unregister(name)
    return ReplayResult(
        feature_service=service,
        start=start,
        end=end,
        sample=sample,
        float_tolerance=monitoring.float_tolerance,
        max_stale_rate=monitoring.max_stale_rate,
        rows=served.num_rows,
        features=results,
    )


def _window(start: datetime, end: datetime) -> tuple[datetime, datetime]:
    start, end = as_utc(start), as_utc(end)
    if not start < end:
        raise ReplayError(f"the window's start {start} must be before its end {end}")
    return start, end


def _no_rows(
    service: str, start: datetime, end: datetime, why: str, answered_by: ModelAnswers | None
) -> str:
    if answered_by is not None:
        return (
            f"nothing to replay for {answered_by} in [{start.isoformat()}, {end.isoformat()}): "
            f"{why} answered by it (its rows are those it answered on feature service "
            f"{service!r} as production, canary, A/B or pinned; shadow answers are not "
            "returned, so not checked); widen the window, or check another version"
        )
    return (
        f"nothing to replay for feature service {service!r} in [{start.isoformat()}, "
        f"{end.isoformat()}): {why}; widen the window (or the sample), or check that the "
        "serving log's root in featurehub.yaml is where this service is logged"
    )


def _q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _compare(
    con: duckdb.DuckDBPyConnection,
    table: str,
    index: int,
    view: int,
    feature: ServedFeature,
    keys: list[str],
    thresholds: MonitoringConfig,
    examples: int,
    buckets: Buckets,
) -> FeatureReplay:
    """One feature's figures from the joined table: the served columns of feature `index`
    and of its view (number `view`), and the offline ones, counted per time bucket in one
    pass (a GROUP BY of at most 60 buckets: the timeline), the totals summed from those."""
    kind = feature.value_type.name
    tolerance = thresholds.float_tolerance
    offline = _q(f"{feature.view}__{feature.feature}")
    if kind == "Bytes":
        offline = f"to_base64({offline})"  # the log holds bytes as base64
    elif kind in _FLOATS:
        offline = f"{offline}::DOUBLE"
    key_columns = ", ".join(_q(key) for key in keys)
    named = (
        f"SELECT {key_columns}, {SERVED_AT}, {REQUEST_ID}, {ROW}, "
        f"{served_status(view)} AS status, {served_value(index)} AS served, "
        f"{offline} AS offline, {served_event(view)} AS served_event, "
        f"{_q(f'{feature.view}__{EVENT_TIMESTAMP}')} AS offline_event FROM {table} "
        f"WHERE {served_status(view)} IS NOT NULL"
    )
    if kind in _FLOATS:  # JSON has no NaN nor infinity: the log holds null for them
        equal = (
            "CASE WHEN served IS NULL OR offline IS NULL THEN served IS NULL AND (offline IS "
            "NULL OR NOT isfinite(offline)) ELSE served = offline OR (isfinite(offline) AND "
            f"abs(served - offline) <= {tolerance!r} * greatest(abs(served), abs(offline))) END"
        )
    else:
        equal = "served IS NOT DISTINCT FROM offline"
    outcome = (
        f"CASE WHEN {_ONLINE_HAS} AND {_OFFLINE_HAS} THEN (CASE WHEN {equal} THEN 'match' "
        f"ELSE 'value' END) WHEN {_ONLINE_HAS} THEN 'offline_missing' WHEN {_OFFLINE_HAS} "
        "THEN 'served_missing' ELSE 'match' END"
    )
    difference = smape = "NULL::DOUBLE"
    if kind in _NUMBERS:
        a, b = "served::DOUBLE", "offline::DOUBLE"
        finite = f"{_ONLINE_HAS} AND {_OFFLINE_HAS} AND isfinite({a}) AND isfinite({b})"
        difference = f"CASE WHEN {finite} THEN abs({a} - {b}) END"
        smape = (
            f"CASE WHEN {finite} THEN (CASE WHEN {a} = 0 AND {b} = 0 THEN 0.0 ELSE "
            f"2 * abs({a} - {b}) / (abs({a}) + abs({b})) END) END"
        )
    rows = (
        f"(SELECT *, CASE WHEN outcome <> 'match' THEN {_CAUSE} END AS cause FROM "
        f"(SELECT *, {outcome} AS outcome, {difference} AS difference, {smape} AS smape "
        f"FROM ({named})))"
    )
    counts = ", ".join(f"count(*) FILTER (cause = '{c}')" for c in CAUSES)
    groups = con.execute(
        f"SELECT {buckets.sql(SERVED_AT)} AS bucket, count(*), count(*) FILTER (outcome = "
        f"'value'), count(*) FILTER (outcome = 'served_missing'), count(*) FILTER (outcome = "
        f"'offline_missing'), {counts}, sum(difference), count(difference), sum(smape), "
        f"count(smape) FROM {rows} GROUP BY bucket"
    ).fetchall()
    per_bucket = np.zeros((buckets.count, 4 + len(CAUSES)), dtype=np.int64)
    sums = np.zeros(4)  # of differences, their count, of SMAPEs, their count
    for bucket, *figures in groups:  # one group per time bucket with a row: at most 60
        per_bucket[bucket] = figures[: per_bucket.shape[1]]
        sums += [value or 0 for value in figures[per_bucket.shape[1] :]]
    compared, values, served_missing, offline_missing, *by_cause = (
        int(total) for total in per_bucket.sum(axis=0)
    )
    mad = sums[0] / sums[1] if sums[1] else None
    mean_smape = sums[2] / sums[3] if sums[3] else None
    timeline = Timeline(
        start=buckets.start,
        bucket_seconds=buckets.width_us / 1e6,
        rows=[int(count) for count in per_bucket[:, 0]],
        causes={c: [int(n) for n in per_bucket[:, 4 + i]] for i, c in enumerate(CAUSES)},
    )
    lags: np.ndarray = np.zeros(0, dtype=np.int64)
    if by_cause[CAUSES.index(STALE)]:
        lags = np.asarray(
            con.execute(
                f"SELECT epoch_us(offline_event) - epoch_us(served_event) AS lag FROM {rows} "
                f"WHERE cause = '{STALE}'"
            ).fetchnumpy()["lag"]
        )
    shown = []
    if any(by_cause) and examples > 0:
        shown = con.execute(
            f"SELECT {key_columns}, {SERVED_AT}, cause, status, served, offline, served_event, "
            f"offline_event FROM {rows} WHERE cause IS NOT NULL ORDER BY {SERVED_AT}, "
            f"{REQUEST_ID}, {ROW} LIMIT {int(examples)}"
        ).fetchall()
    return FeatureReplay(
        view=feature.view,
        feature=feature.feature,
        value_type=kind,
        rows_compared=int(compared),
        value_mismatches=int(values),
        served_missing=int(served_missing),
        offline_missing=int(offline_missing),
        causes=dict(zip(CAUSES, by_cause, strict=True)),
        mean_absolute_difference=None if mad is None else float(mad),
        smape=None if mean_smape is None else float(mean_smape),
        lag=lag_summary(lags),
        examples=tuple(_example(row, len(keys), keys) for row in shown),
        timeline=timeline,
        lag_histogram=lag_histogram(lags),
        thresholds=thresholds,
    )


def lag_summary(lags_us: np.ndarray) -> LagSummary | None:
    """Min, nearest-rank median and 95th percentile, and max of lags in microseconds."""
    if lags_us.size == 0:
        return None
    ordered = np.sort(np.asarray(lags_us, dtype=np.int64))

    def rank(q: float) -> float:
        position = max(int(np.ceil(q * ordered.size)), 1) - 1
        return float(ordered[position]) / 1e6

    return LagSummary(
        count=int(ordered.size),
        min_seconds=float(ordered[0]) / 1e6,
        median_seconds=rank(0.5),
        p95_seconds=rank(0.95),
        max_seconds=float(ordered[-1]) / 1e6,
    )


def _example(row: tuple[object, ...], key_count: int, keys: list[str]) -> MismatchExample:
    served_at, cause, status, served, offline, served_event_at, offline_event_at = row[key_count:]
    return MismatchExample(
        keys=dict(zip(keys, row[:key_count], strict=True)),
        served_at=served_at,  # type: ignore[arg-type]
        cause=str(cause),
        served_status=str(status),
        served_value=served,
        offline_value=offline,
        served_event_timestamp=served_event_at,  # type: ignore[arg-type]
        offline_event_timestamp=offline_event_at,  # type: ignore[arg-type]
    )
