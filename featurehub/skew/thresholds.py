"""Skew thresholds per feature: `Field(..., skew={...})` over featurehub.yaml's `monitoring:`.

One vocabulary: a feature's `skew` keys are the `monitoring:` keys (MonitoringConfig), and
the defaults are only there. A feature is judged by the `monitoring:` section with its own
keys put over it (`judged_by`); the keys are checked when the definition is made
(`checked_thresholds`), so a typo fails at `plan`, not at the first check.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Annotated, Any

from pydantic import ConfigDict, TypeAdapter, ValidationError

from featurehub.config import MonitoringConfig
from featurehub.errors import DefinitionError, did_you_mean

REPLAY_KEYS = (
    "float_tolerance",
    "max_stale_rate",
    "max_value_skew_rate",
    "max_ttl_or_status_rate",
    "max_unexplained_rate",
)
"""The keys the replay judges a feature by."""

DRIFT_KEYS = {
    "number": ("psi_warn", "psi_fail", "null_rate_shift_fail", "min_rows"),
    "category": ("js_warn", "js_fail", "null_rate_shift_fail", "min_rows"),
}
"""The keys the distribution check judges a feature of each kind by."""

_WARN_FAIL = (("psi_warn", "psi_fail"), ("js_warn", "js_fail"))
_STRICT = ConfigDict(strict=True)  # 0.1, not "0.1" nor True: a definition says what it means


def accepted_keys() -> list[str]:
    """The threshold keys of `monitoring:` (its `alerts:` is where events go, not a
    threshold)."""
    return [key for key in MonitoringConfig.model_fields if key != "alerts"]


def checked_thresholds(owner: str, given: Any) -> dict[str, float | int]:
    """`given` as a plain dict of `monitoring:` keys, each value of the key's type and range;
    a DefinitionError naming `owner`, the key and the accepted keys otherwise."""
    accepted = accepted_keys()
    if not isinstance(given, Mapping):
        raise DefinitionError(
            f"{owner}: skew must be a dict of thresholds such as {{'psi_fail': 0.1}}, not "
            f"{given!r}; accepted keys: {', '.join(accepted)}"
        )
    checked: dict[str, float | int] = {}
    for key, value in given.items():
        info = MonitoringConfig.model_fields.get(key) if key in accepted else None
        if info is None:
            raise DefinitionError(
                f"{owner}: skew threshold {key!r} is not a monitoring key."
                + did_you_mean(str(key), accepted)
                + f" Accepted keys: {', '.join(accepted)}"
            )
        form: Any = Annotated[info.annotation, info]  # the key's type and range (ge, le)
        adapter: TypeAdapter[Any] = TypeAdapter(form, config=_STRICT)
        try:
            checked[key] = adapter.validate_python(value)
        except ValidationError as exc:
            why = exc.errors()[0]["msg"]
            raise DefinitionError(
                f"{owner}: skew threshold {key!r} = {value!r} is invalid ({why}); it takes "
                f"{_kind(info.annotation)}, like monitoring.{key} in featurehub.yaml"
            ) from None
    for warn, fail in _WARN_FAIL:
        if warn in checked and fail in checked and checked[warn] > checked[fail]:
            raise DefinitionError(
                f"{owner}: skew threshold {warn} {checked[warn]} is above {fail} "
                f"{checked[fail]}; a warning must come at or before the failure"
            )
    return dict(sorted(checked.items()))


def judged_by(monitoring: MonitoringConfig, own: Mapping[str, float | int]) -> MonitoringConfig:
    """The thresholds of a feature: `monitoring:` with the feature's own keys over it. A
    feature that sets only the fail (warn) level of a pair moves the other level with it
    when they would cross: `psi_fail: 0.05` fails at 0.05, and warns there too."""
    if not own:
        return monitoring
    merged = {**monitoring.model_dump(), **own}
    for warn, fail in _WARN_FAIL:
        if merged[warn] > merged[fail]:
            if fail in own:
                merged[warn] = merged[fail]
            else:
                merged[fail] = merged[warn]
    return MonitoringConfig.model_validate(merged)


def of_keys(thresholds: MonitoringConfig, keys: Iterable[str]) -> dict[str, float | int]:
    """The named thresholds, for a result's JSON (what a feature was judged by)."""
    return {key: getattr(thresholds, key) for key in keys}


def _kind(annotation: Any) -> str:
    return "a whole number" if annotation is int else "a number"
