"""A feature service's monitor: when its skew check runs on a schedule, over which window,
against which training dataset. Thresholds are not here: they stay per feature
(`Field(skew=...)`) and in featurehub.yaml's `monitoring:`, so a scheduled check judges
exactly as `featurehub skew` does."""

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
    the replay only); `sample` replays that share of entity keys (None: all of them)."""

    schedule: str
    window: timedelta
    against: str | None = None
    sample: float | None = None

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

    def to_spec(self) -> dict[str, Any]:
        return {
            "schedule": self.schedule,
            "window_seconds": self.window.total_seconds(),
            "against": self.against,
            "sample": self.sample,
        }

    @classmethod
    def from_spec(cls, spec: dict[str, Any]) -> Monitor:
        return cls(
            schedule=spec["schedule"],
            window=timedelta(seconds=spec["window_seconds"]),
            against=spec.get("against"),
            sample=spec.get("sample"),
        )
