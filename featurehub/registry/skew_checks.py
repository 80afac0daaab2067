"""The history of skew checks in the registry: one row per `featurehub skew` / `check_skew`.

A check is recorded once it has a verdict (a check that could not run records nothing), with
what a scheduler, a chart or a model gate needs without re-running it: the service, the
window, the dataset compared against, the model version whose rows were checked (none: every
row of the service), whether it passed, which features failed and why, and the whole result
as its documented JSON (docs/skew-checks.md). Rows are never updated.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

import sqlalchemy as sa

from featurehub.errors import FeaturehubError, NotFoundError, did_you_mean
from featurehub.registry.tables import registry_objects, skew_checks
from featurehub.types import as_utc


class SkewHistoryError(FeaturehubError, ValueError):
    """The history cannot be read as asked (a limit that is not positive)."""


@dataclass(frozen=True)
class FailedFeature:
    """A feature that crossed a threshold in one check, and the figures that did."""

    feature: str  # view:feature
    check: str  # "replay" or "distribution"
    figure: str  # e.g. "value_skew 2 of 12 rows (16.67%) > max_value_skew_rate 0"

    def to_dict(self) -> dict[str, str]:
        return {"feature": self.feature, "check": self.check, "figure": self.figure}


@dataclass(frozen=True)
class SkewCheck:
    """One recorded skew check. `rows_served`: the logged rows replayed (the sample's rows
    when sampled); `result`: `SkewReport.to_dict()`; `model` and `model_version`: the model
    version whose rows were checked (`featurehub skew --model`), None for the service's."""

    id: int
    feature_service: str
    window_start: datetime
    window_end: datetime
    dataset: str | None
    model: str | None
    model_version: int | None
    sample: float | None
    passed: bool
    rows_served: int
    failed_features: tuple[FailedFeature, ...]
    result: dict[str, Any]
    checked_at: datetime

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "feature_service": self.feature_service,
            "window_start": self.window_start.isoformat(),
            "window_end": self.window_end.isoformat(),
            "dataset": self.dataset,
            "model": self.model,
            "model_version": self.model_version,
            "sample": self.sample,
            "passed": self.passed,
            "rows_served": self.rows_served,
            "failed_features": [failed.to_dict() for failed in self.failed_features],
            "checked_at": self.checked_at.isoformat(),
            "result": self.result,
        }


class SkewCheckLog:
    """The recorded skew checks of one project."""

    def __init__(self, engine: sa.Engine, project: str) -> None:
        self._engine = engine
        self._project = project

    def record(
        self,
        *,
        feature_service: str,
        window_start: datetime,
        window_end: datetime,
        dataset: str | None,
        sample: float | None,
        passed: bool,
        rows_served: int,
        failed_features: tuple[FailedFeature, ...],
        result: dict[str, Any],
        model: str | None = None,
        model_version: int | None = None,
        checked_at: datetime | None = None,
    ) -> SkewCheck:
        """Record one check (one insert); `checked_at` defaults to now. `model` and
        `model_version` go together: the check of that version's rows."""
        if (model is None) != (model_version is None):
            raise SkewHistoryError("a check of a model's rows names both its model and version")
        values = dict(
            project=self._project,
            feature_service=feature_service,
            window_start=as_utc(window_start),
            window_end=as_utc(window_end),
            dataset=dataset,
            model=model,
            model_version=None if model_version is None else str(model_version),
            sample=sample,
            passed=passed,
            rows_served=rows_served,
            failed_features=json.dumps([failed.to_dict() for failed in failed_features]),
            result=json.dumps(result, default=str),
            checked_at=as_utc(checked_at or datetime.now(timezone.utc)),
        )
        insert = skew_checks.insert().values(**values).returning(skew_checks.c.id)
        with self._engine.begin() as conn:
            key = conn.execute(insert).scalar_one()
        return _check_of({**values, "id": key})

    def history(
        self,
        feature_service: str,
        limit: int = 20,
        *,
        model: str | None = None,
        model_version: int | None = None,
    ) -> list[SkewCheck]:
        """The service's checks, newest first, at most `limit`; with `model` (and
        `model_version`), only the checks of that model's (version's) rows. A service that is
        neither registered nor ever checked is a NotFoundError naming the ones that are."""
        if limit < 1:
            raise SkewHistoryError(f"limit must be 1 or more, not {limit}")
        conditions = [
            skew_checks.c.project == self._project,
            skew_checks.c.feature_service == feature_service,
        ]
        if model is not None:
            conditions.append(skew_checks.c.model == model)
        if model_version is not None:
            conditions.append(skew_checks.c.model_version == str(model_version))
        query = (
            sa.select(skew_checks).where(*conditions).order_by(skew_checks.c.id.desc()).limit(limit)
        )
        with self._engine.connect() as conn:
            found = [_check_of(row) for row in conn.execute(query).mappings()]
        if not found:
            self._check_known(feature_service)
        return found

    def latest(self, feature_service: str) -> SkewCheck | None:
        """The service's newest check, or None if it was never checked."""
        found = self.history(feature_service, limit=1)
        return found[0] if found else None

    def latest_judging(self, feature_service: str, model: str, version: int) -> SkewCheck | None:
        """The newest check that judges `model` `version` (what the model gate reads): one of
        that version's own rows, or one of every row of the service (no model). Checks of the
        service's other model versions are left out: they compare those versions' traffic
        with their own training sets (a production version drifting from its old training set
        is a reason to promote a retrained candidate, not to refuse it)."""
        query = (
            sa.select(skew_checks)
            .where(
                skew_checks.c.project == self._project,
                skew_checks.c.feature_service == feature_service,
                sa.or_(
                    skew_checks.c.model.is_(None),
                    sa.and_(
                        skew_checks.c.model == model,
                        skew_checks.c.model_version == str(version),
                    ),
                ),
            )
            .order_by(skew_checks.c.id.desc())
            .limit(1)
        )
        with self._engine.connect() as conn:
            found = conn.execute(query).mappings().first()
        return None if found is None else _check_of(found)

    def checked_until(self, feature_service: str, model: str | None = None) -> datetime | None:
        """The latest window end of the service's recorded checks of the same rows (None:
        never checked): those of `model`'s versions, or with no model those of the whole
        service. A monitor's tick at or before it is done (featurehub.monitoring.monitors);
        a check of other rows (one model's, or the service's) does not count for it."""
        same_rows = skew_checks.c.model.is_(None) if model is None else skew_checks.c.model == model
        query = sa.select(sa.func.max(skew_checks.c.window_end)).where(
            skew_checks.c.project == self._project,
            skew_checks.c.feature_service == feature_service,
            same_rows,
        )
        with self._engine.connect() as conn:
            found = conn.execute(query).scalar_one_or_none()
        return None if found is None else as_utc(found)

    def _check_known(self, feature_service: str) -> None:
        services = sa.select(registry_objects.c.name).where(
            registry_objects.c.project == self._project,
            registry_objects.c.kind == "feature_service",
        )
        checked = (
            sa.select(skew_checks.c.feature_service)
            .where(skew_checks.c.project == self._project)
            .distinct()
        )
        with self._engine.connect() as conn:
            names = sorted({row[0] for row in conn.execute(services)})
            names += sorted({row[0] for row in conn.execute(checked)} - set(names))
        if feature_service in names:
            return
        hint = did_you_mean(feature_service, names) or (
            " Feature services: " + ", ".join(names) + "." if names else ""
        )
        raise NotFoundError(
            f"no feature service named {feature_service!r} in project {self._project!r}, and "
            f"no skew check of one.{hint} List them with: featurehub list services"
        )


def _check_of(row: Any) -> SkewCheck:
    return SkewCheck(
        id=int(row["id"]),
        feature_service=row["feature_service"],
        window_start=as_utc(row["window_start"]),
        window_end=as_utc(row["window_end"]),
        dataset=row["dataset"],
        model=row["model"],
        model_version=None if row["model_version"] is None else int(row["model_version"]),
        sample=row["sample"],
        passed=bool(row["passed"]),
        rows_served=int(row["rows_served"]),
        failed_features=tuple(FailedFeature(**f) for f in json.loads(row["failed_features"])),
        result=json.loads(row["result"]),
        checked_at=as_utc(row["checked_at"]),
    )
