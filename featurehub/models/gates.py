"""The gate a version passes on its way to production, and the report of what it found.

Two kinds of checks. The metrics configured under `models.gates` in featurehub.yaml: per
metric a minimum, a maximum, or a maximum drop against the current production version. And
what featurehub knows itself: the feature service still serves the signature the model was
registered with; each of its views is materialized, its last run did not fail, its online
data is whole, and its data reaches within the view's ttl of now (older values would be
served as expired); and, when a skew check judging the candidate ran, the newest one passed
(`SkewCheckLog.latest_judging`: a check of every row the service served, or of the
candidate's own rows, e.g. as a canary; not a check of another version's rows).
Every check runs, so a refusal lists every problem at once, each with its figures.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from datetime import datetime

from featurehub.config import MetricGate
from featurehub.definitions.catalog import Catalog
from featurehub.errors import NotFoundError
from featurehub.models.signature import input_differences, service_inputs
from featurehub.monitoring.status import ViewStatus
from featurehub.registry.models import ModelError, ModelVersion
from featurehub.registry.skew_checks import SkewCheck


@dataclass(frozen=True)
class GateCheck:
    name: str  # "metric accuracy", "feature service", "view driver_stats", "skew check"
    passed: bool
    detail: str  # the figures


@dataclass(frozen=True)
class GateReport:
    checks: list[GateCheck]

    @property
    def passed(self) -> bool:
        return all(check.passed for check in self.checks)

    @property
    def failures(self) -> list[GateCheck]:
        return [check for check in self.checks if not check.passed]

    def to_list(self) -> list[dict[str, object]]:
        return [asdict(check) for check in self.checks]


class GateRefusedError(ModelError):
    """Promotion to production refused by the gate; `report` has every check."""

    def __init__(self, version: ModelVersion, report: GateReport) -> None:
        self.report = report
        lines = "\n".join(f"  - {c.name}: {c.detail}" for c in report.failures)
        super().__init__(
            f"{version.name} version {version.version} did not pass the production gate "
            f"({len(report.failures)} of {len(report.checks)} checks failed), nothing was "
            f"changed:\n{lines}\nFix these, or override with --force --reason TEXT (recorded)"
        )


def metric_checks(
    candidate: ModelVersion, production: ModelVersion | None, gates: Mapping[str, MetricGate]
) -> list[GateCheck]:
    checks = []
    for metric, gate in sorted(gates.items()):
        name = f"metric {metric}"
        value = candidate.metrics.get(metric)
        if value is None:
            checks.append(GateCheck(name, False, "not recorded for this version (--metric)"))
            continue
        if gate.min is not None:
            ok = value >= gate.min
            checks.append(GateCheck(name, ok, f"{value:g} {'>=' if ok else '<'} min {gate.min:g}"))
        if gate.max is not None:
            ok = value <= gate.max
            checks.append(GateCheck(name, ok, f"{value:g} {'<=' if ok else '>'} max {gate.max:g}"))
        if gate.max_drop is not None:
            checks.append(_drop_check(name, metric, value, gate.max_drop, production))
    return checks


def _drop_check(
    name: str, metric: str, value: float, max_drop: float, production: ModelVersion | None
) -> GateCheck:
    if production is None:
        return GateCheck(name, True, "no production version to compare with")
    current = production.metrics.get(metric)
    if current is None:
        return GateCheck(
            name, True, f"production version {production.version} has no {metric} to compare"
        )
    drop = current - value
    ok = drop <= max_drop
    return GateCheck(
        name,
        ok,
        f"{value:g} against production version {production.version}'s {current:g}: a drop "
        f"of {drop:g}, {'within' if ok else 'beyond'} max_drop {max_drop:g}",
    )


def service_check(candidate: ModelVersion, catalog: Catalog) -> GateCheck:
    name = f"feature service {candidate.feature_service}"
    try:
        current = service_inputs(catalog, candidate.feature_service)
    except NotFoundError:
        return GateCheck(name, False, "is not registered any more (featurehub apply)")
    differences = input_differences(candidate.signature, current)
    if differences:
        return GateCheck(
            name, False, "no longer serves the model's signature: " + "; ".join(differences)
        )
    return GateCheck(name, True, f"serves the model's {len(current)} features")


def view_checks(
    candidate: ModelVersion,
    catalog: Catalog,
    statuses: Mapping[str, ViewStatus],
    materialized_until: Mapping[str, datetime],
    now: datetime,
) -> list[GateCheck]:
    try:
        projections = catalog.resolve(catalog.feature_service(candidate.feature_service))
    except NotFoundError:
        return []
    checks = []
    for projection in projections:
        view = catalog.feature_view(projection.view.name)
        name = f"view {view.name}"
        status, until = statuses.get(view.name), materialized_until.get(view.name)
        if until is None:
            command = f"featurehub materialize START END --views {view.name}"
            checks.append(GateCheck(name, False, f"was never materialized: {command}"))
        elif status is not None and status.problem:
            checks.append(GateCheck(name, False, status.problem))
        elif view.ttl is not None and now - until > view.ttl:
            age = now - until
            checks.append(
                GateCheck(
                    name,
                    False,
                    f"is stale: materialized up to {until:%Y-%m-%d %H:%M} UTC, "
                    f"{age.total_seconds() / 3600:,.1f} h ago, beyond its ttl of "
                    f"{view.ttl.total_seconds() / 3600:g} h: featurehub materialize-incremental",
                )
            )
        else:
            checks.append(GateCheck(name, True, f"materialized up to {until:%Y-%m-%d %H:%M} UTC"))
    return checks


def skew_check(newest: SkewCheck | None, service: str) -> GateCheck | None:
    """The gate's view of the newest skew check judging the candidate
    (`store.skew_checks.latest_judging`), when one ran."""
    if newest is None:
        return None
    whose = "the service's rows"
    if newest.model is not None:
        whose = f"the rows of {newest.model} version {newest.model_version}"
    when = f"{newest.checked_at:%Y-%m-%d %H:%M}"
    if newest.passed:
        return GateCheck("skew check", True, f"the newest ({when}, of {whose}) passed")
    failed = "; ".join(f"{f.feature} ({f.check}): {f.figure}" for f in newest.failed_features)
    return GateCheck(
        "skew check",
        False,
        f"the newest ({when}, check {newest.id}, of {whose}) failed: {failed}; see "
        f"featurehub skew history {service}",
    )
