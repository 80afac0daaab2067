"""The lifecycle rules: what a promotion, rollback, archive or alias changes, and stages.

Stages (None, Staging, Production, Archived) are a view over aliases, as MLflow has them
since 2.9: a version is in Production while it holds the `production` alias, in Staging
while it holds `staging`, Archived once archived (promotion archives the production version
it replaces), None otherwise. Any other alias (`champion`) is a name and nothing more.

These functions only decide: each takes the model's state, read under its lock, and returns
the changes to make or raises ModelError (nothing changes). `featurehub.registry.models`
applies the changes and records each in the history.
"""

from __future__ import annotations

from featurehub.definitions.names import check_name
from featurehub.errors import DefinitionError
from featurehub.registry.models import LifecycleChange, LifecycleState, ModelError

PRODUCTION = "production"
STAGING = "staging"
ARCHIVED = "archived"
STAGES = {"staging": STAGING, "production": PRODUCTION}
# Not settable with `models alias`: stages move through promote, rollback and archive.
RESERVED_ALIASES = (PRODUCTION, STAGING, ARCHIVED, "latest")


def stage_of(state: LifecycleState, version: int) -> str:
    if state.aliases.get(PRODUCTION) == version:
        return "Production"
    if state.aliases.get(STAGING) == version:
        return "Staging"
    if version in state.archived:
        return "Archived"
    return "None"


def stage_alias(stage: str) -> str:
    """The alias behind a stage name given by a user (`production`, `Staging`)."""
    alias = STAGES.get(stage.lower())
    if alias is None:
        raise ModelError(f"unknown stage {stage!r}; promote to staging or production")
    return alias


def _check_version(state: LifecycleState, name: str, version: int) -> None:
    if version not in state.versions:
        known = ", ".join(map(str, sorted(state.versions)))
        raise ModelError(f"model {name!r} has no version {version}; its versions are {known}")


def _unarchived(state: LifecycleState, version: int) -> list[LifecycleChange]:
    if version in state.archived:
        return [LifecycleChange("unarchive", ARCHIVED, None, version)]
    return []


def promote(state: LifecycleState, name: str, version: int, stage: str) -> list[LifecycleChange]:
    """Give `version` the stage's alias. To production: the version it replaces is archived
    and the promoted one leaves staging. An archived version comes back."""
    _check_version(state, name, version)
    alias = stage_alias(stage)
    current = state.aliases.get(alias)
    if current == version:
        raise ModelError(f"{name} version {version} is already in {alias}; nothing to do")
    if alias == STAGING and state.aliases.get(PRODUCTION) == version:
        raise ModelError(
            f"{name} version {version} is in production; it cannot move back to staging. "
            f"Promote another version to production, or: featurehub models rollback {name}"
        )
    changes = _unarchived(state, version)
    changes.append(LifecycleChange("promote", alias, version, current))
    if alias == PRODUCTION:
        if state.aliases.get(STAGING) == version:
            changes.append(LifecycleChange("remove", STAGING, None, version))
        if current is not None and current not in state.archived:
            changes.append(LifecycleChange("archive", ARCHIVED, current, None))
    return changes


def rollback_target(state: LifecycleState, name: str) -> tuple[int, int]:
    """(production now, the version it replaced when it was promoted)."""
    current = state.aliases.get(PRODUCTION)
    if current is None:
        raise ModelError(f"model {name!r} has no production version; nothing to roll back")
    replaced = [previous for version, previous in state.promotions if version == current]
    target = replaced[-1] if replaced else None
    if target is None:
        raise ModelError(
            f"{name} version {current} replaced no production version when it was promoted; "
            "there is nothing to roll back to. Promote another version instead"
        )
    return current, target


def rollback(state: LifecycleState, name: str) -> list[LifecycleChange]:
    """Production goes back to the version the current one replaced; the current one is
    archived. Repeated, it walks back through the promotions."""
    current, target = rollback_target(state, name)
    changes = _unarchived(state, target)
    changes.append(LifecycleChange("rollback", PRODUCTION, target, current))
    if state.aliases.get(STAGING) == target:
        changes.append(LifecycleChange("remove", STAGING, None, target))
    changes.append(LifecycleChange("archive", ARCHIVED, current, None))
    return changes


def archive(state: LifecycleState, name: str, version: int) -> list[LifecycleChange]:
    """Archive a version that is not in production; it loses every alias it holds."""
    _check_version(state, name, version)
    if state.aliases.get(PRODUCTION) == version:
        raise ModelError(
            f"{name} version {version} is in production; promote another version to "
            f"production (or: featurehub models rollback {name}), then archive it"
        )
    if version in state.archived:
        raise ModelError(f"{name} version {version} is already archived; nothing to do")
    held = sorted(alias for alias, holder in state.aliases.items() if holder == version)
    changes = [LifecycleChange("remove", alias, None, version) for alias in held]
    changes.append(LifecycleChange("archive", ARCHIVED, version, None))
    return changes


def check_alias(alias: str) -> str:
    try:
        check_name("alias", alias)
    except DefinitionError as exc:
        raise ModelError(str(exc)) from None
    if alias.lower() in RESERVED_ALIASES:
        raise ModelError(
            f"alias {alias!r} is reserved: stages move with `featurehub models promote`, "
            "`rollback` and `archive`; choose another alias (e.g. champion)"
        )
    return alias


def set_alias(state: LifecycleState, name: str, alias: str, version: int) -> list[LifecycleChange]:
    """Point a free-form alias (`champion`) at a version; it leaves the version it held."""
    check_alias(alias)
    _check_version(state, name, version)
    current = state.aliases.get(alias)
    if current == version:
        raise ModelError(f"{name}@{alias} is already version {version}; nothing to do")
    return [LifecycleChange("alias", alias, version, current)]
