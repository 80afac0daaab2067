"""The difference between the repo and the registry: what `plan` shows and `apply` does.

Specs are compared field by field. Lists of named items (a view's schema, a service's
features) are compared by name, so adding one feature is one line, not a rewritten list.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from featurehub.definitions.catalog import KINDS, Specs

Action = Literal["create", "update", "delete"]


@dataclass(frozen=True)
class FieldChange:
    path: str
    old: Any
    new: Any


@dataclass(frozen=True)
class ObjectChange:
    kind: str
    name: str
    action: Action
    fields: list[FieldChange] = field(default_factory=list)
    spec: dict[str, Any] | None = None  # the new spec; None for a delete


@dataclass(frozen=True)
class Plan:
    """Every change `apply` would make, and which of them break consumers."""

    changes: list[ObjectChange]
    breaking: list[str]
    # Views whose stored data no longer fits them (deleted, or re-keyed with --force):
    # apply hides their offline data and clears their online rows.
    reset_views: list[str] = field(default_factory=list)

    @property
    def has_changes(self) -> bool:
        return bool(self.changes)

    def counts(self) -> dict[str, int]:
        return {a: sum(c.action == a for c in self.changes) for a in ("create", "update", "delete")}


def _keyed(value: Any) -> Any:
    """Lists of dicts that all have a name or view key become dicts keyed by it."""
    if isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
        for key in ("name", "view"):
            if all(key in v for v in value):
                return {v[key]: {k: x for k, x in v.items() if k != key} for v in value}
    return value


def diff_specs(old: Any, new: Any, path: str = "") -> list[FieldChange]:
    old, new = _keyed(old), _keyed(new)
    if isinstance(old, dict) and isinstance(new, dict):
        changes = []
        for key in list(old) + [k for k in new if k not in old]:
            sub = f"{path}.{key}" if path else str(key)
            if key not in new:
                if old[key] is not None:  # a field added to specs later reads as None
                    changes.append(FieldChange(sub, old[key], None))
            elif key not in old:
                if new[key] is not None:
                    changes.append(FieldChange(sub, None, new[key]))
            else:
                changes.extend(diff_specs(old[key], new[key], sub))
        return changes
    return [] if old == new else [FieldChange(path, old, new)]


def _breaking(kind: str, name: str, old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """Changes that would make stored data or trained models wrong without anyone noticing."""
    found = []
    if kind == "feature_view":
        if old["entities"] != new["entities"]:
            found.append(
                f"feature view {name!r}: entities change {old['entities']} -> {new['entities']}; "
                "data already materialized is keyed by the old entities. Create a new view "
                "(a new name) instead, or apply with --force and re-materialize"
            )
        old_types = {f["name"]: f["dtype"] for f in old["schema"]}
        for feature in new["schema"]:
            before = old_types.get(feature["name"])
            if before is not None and before != feature["dtype"]:
                found.append(
                    f"feature view {name!r}: feature {feature['name']!r} changes type {before} "
                    f"-> {feature['dtype']}; models trained on it expect {before}. Add a feature "
                    "with a new name instead, or apply with --force and re-materialize"
                )
    if kind == "entity" and old["join_keys"] != new["join_keys"]:
        found.append(
            f"entity {name!r}: join keys change {old['join_keys']} -> {new['join_keys']}; every "
            "view of this entity is keyed by the old keys. Create a new entity instead, or "
            "apply with --force and re-materialize its views"
        )
    return found


def compute_plan(current: Specs, desired: Specs) -> Plan:
    changes: list[ObjectChange] = []
    breaking: list[str] = []
    reset: list[str] = []
    for kind in KINDS:
        old_objects, new_objects = current.get(kind, {}), desired.get(kind, {})
        for name in sorted(set(old_objects) | set(new_objects)):
            old, new = old_objects.get(name), new_objects.get(name)
            if old is None:
                changes.append(ObjectChange(kind, name, "create", spec=new))
            elif new is None:
                changes.append(ObjectChange(kind, name, "delete"))
                if kind == "feature_view":
                    reset.append(name)
            else:
                fields = diff_specs(old, new)
                if fields:
                    changes.append(ObjectChange(kind, name, "update", fields, spec=new))
                    found = _breaking(kind, name, old, new)
                    breaking.extend(found)
                    if found and kind == "feature_view":
                        reset.append(name)
    return Plan(changes, breaking, reset)
