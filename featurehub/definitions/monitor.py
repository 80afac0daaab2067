"""A feature service's monitor: when its skew check runs on a schedule, over which window,
against which training dataset, or for which model version (`model="NAME@production"`: the
alias is resolved at each run, so the check follows promotions and rollbacks). Thresholds
are not here: they stay per feature (`Field(skew=...)`) and in featurehub.yaml's
`monitoring:`, so a scheduled check judges exactly as `featurehub skew` does."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from featurehub.definitions.feature_view import check_schedule
from featurehub.definitions.names import check_name
from featurehub.errors import DefinitionError


@dataclass(frozen=True)
class Monitor:
    """Check the service's serving log every `schedule` tick over the `window` that ends at
    the tick; `against` names a saved training dataset to compare distributions with (None:
    the replay only); `model` (a model reference, e.g. `NAME@production`) checks instead the
    rows the version it names at that run answered, against its training set; `sample`
    replays that share of entity keys (None: all of them)."""

    schedule: str
    window: timedelta
    against: str | None = None
    sample: float | None = None
    model: str | None = None

    def checked(self, owner: str) -> Monitor:
        """This monitor, or a DefinitionError naming `owner` (the service) and the fix.
        Checked by the service rather than here, so the message can say whose monitor."""
        where = f"{owner}: monitor"
        if not isinstance(self.schedule, str):
            raise DefinitionError(
                f"{where} needs a schedule: a cron expression such as '0 * * * *' or @hourly"
            )
        check_schedule(where, self.schedule)
        if not isinstance(self.window, timedelta) or self.window <= timedelta(0):
            raise DefinitionError(
                f"{where}: window {self.window!r} must be a positive datetime.timedelta, "
                "e.g. window=timedelta(hours=24)"
            )
        if self.against is not None:
            check_name(f"{where}: training dataset", self.against)
        if self.model is not None:
            self._check_model(where)
        if self.sample is not None and (
            isinstance(self.sample, bool)
            or not isinstance(self.sample, (int, float))
            or not 0.0 < self.sample <= 1.0
        ):
            raise DefinitionError(
                f"{where}: sample {self.sample!r} must be a share of entity keys in (0, 1], "
                "or None to replay every key"
            )
        return self

    def _check_model(self, where: str) -> None:
        # Imported here: the models package reads definitions, not the other way round.
        from featurehub.models.references import parse_reference
        from featurehub.registry.models import ModelError

        if self.against is not None:
            raise DefinitionError(
                f"{where}: give against= or model=, not both: a model's check compares with "
                f"the training set it was registered with (drop against={self.against!r})"
            )
        try:
            parse_reference(self.model)  # type: ignore[arg-type]
        except ModelError as exc:
            raise DefinitionError(f"{where}: model: {exc}") from None

    def to_spec(self) -> dict[str, Any]:
        spec: dict[str, Any] = {
            "schedule": self.schedule,
            "window_seconds": self.window.total_seconds(),
            "against": self.against,
            "sample": self.sample,
        }
        if self.model is not None:  # only when set: older registries have no such key
            spec["model"] = self.model
        return spec

    @classmethod
    def from_spec(cls, spec: dict[str, Any]) -> Monitor:
        return cls(
            schedule=spec["schedule"],
            window=timedelta(seconds=spec["window_seconds"]),
            against=spec.get("against"),
            sample=spec.get("sample"),
            model=spec.get("model"),
        )
