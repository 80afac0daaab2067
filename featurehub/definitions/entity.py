"""Entities: the things features describe, identified by one or more join keys."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from featurehub import types
from featurehub.definitions.names import check_name
from featurehub.errors import DefinitionError


@dataclass(frozen=True, eq=True)
class Entity:
    """An entity such as a driver (join key `driver_id`) or a route (two join keys).

    `value_type`, when given, is the type of every join key and is checked against each
    source at apply time; when omitted, `apply` reads each key's type from the sources and
    records it in `key_types`, which online look-ups check entity keys against.
    """

    name: str
    join_keys: list[str] = field(default_factory=list)
    value_type: types.ValueType | None = None
    description: str = ""
    owner: str = ""
    tags: dict[str, str] = field(default_factory=dict)
    key_types: dict[str, types.ValueType] = field(default_factory=dict)

    def __post_init__(self) -> None:
        check_name("entity", self.name)
        keys = list(self.join_keys) or [self.name]
        object.__setattr__(self, "join_keys", keys)
        object.__setattr__(self, "tags", dict(self.tags))
        for key in keys:
            check_name(f"entity {self.name!r} join key", key)
        if len(set(keys)) != len(keys):
            raise DefinitionError(f"entity {self.name!r}: join_keys {keys} repeat a key")
        key_types = dict(self.key_types)
        if self.value_type is not None:
            key_types = {key: self.value_type for key in keys}
        object.__setattr__(self, "key_types", key_types)

    def with_key_types(self, key_types: dict[str, types.ValueType]) -> Entity:
        """This entity with its join keys' types recorded (as `apply` infers them)."""
        known = {k: key_types[k] for k in self.join_keys if k in key_types}
        return dataclasses.replace(self, key_types=known)

    def __hash__(self) -> int:
        return hash(("entity", self.name))

    def to_spec(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "join_keys": list(self.join_keys),
            "value_type": self.value_type.name if self.value_type else None,
            "key_types": {k: self.key_types[k].name for k in self.join_keys if k in self.key_types},
            "description": self.description,
            "owner": self.owner,
            "tags": dict(sorted(self.tags.items())),
        }

    @classmethod
    def from_spec(cls, spec: dict[str, Any]) -> Entity:
        value_type = spec.get("value_type")
        return cls(
            name=spec["name"],
            join_keys=list(spec["join_keys"]),
            value_type=types.from_name(value_type) if value_type else None,
            description=spec.get("description", ""),
            owner=spec.get("owner", ""),
            tags=dict(spec.get("tags", {})),
            key_types={k: types.from_name(t) for k, t in spec.get("key_types", {}).items()},
        )
