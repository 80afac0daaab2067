"""Which version answers which entity row: arms from a salted hash of the entity key.

A row's bucket is the first 8 bytes of sha256(salt NUL key), as an unsigned big-endian
integer, modulo 10,000, where the key is the JSON array of the row's join-key values in the
service's join-key order (`[1001]`, `[1001, "a"]`). The salt is the model's name: a key stays
in one arm across server processes and restarts, and across policy changes of the same
percent, while two models split their keys independently. Python's `hash()` is salted per
process and never used.

Arms are per row: a request with several entity rows may be answered by two versions, and
the answer says which version answered each row. A row goes to the other version of a canary
or A/B policy when its bucket is below `percent * 100`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any

import orjson

from featurehub.registry.traffic import AB, CANARY, SHADOW, Route

BUCKETS = 10_000

PRODUCTION = "production"
CANARY_ARM = "canary"
SHADOW_ARM = "shadow"
A_ARM = "a"
B_ARM = "b"
PINNED = "pinned"
"""Arms: production (no split), canary/production, a (production)/b, shadow (logged only),
pinned (the request named its version)."""


def bucket(salt: str, key: Sequence[Any]) -> int:
    """The bucket, 0 to 9,999, of an entity key (its join-key values) under `salt`."""
    digest = hashlib.sha256(salt.encode() + b"\x00" + orjson.dumps(list(key))).digest()
    return int.from_bytes(digest[:8], "big") % BUCKETS


def assign(model: str, route: Route, keys: Sequence[Sequence[Any]]) -> tuple[list[int], list[str]]:
    """The version and arm of each entity row (`keys`: each row's join-key values) under
    `route`; the production version must exist."""
    production = route.production
    assert production is not None
    policy = route.policy
    count = len(keys)
    if not splits(route):
        return [production] * count, [PRODUCTION] * count
    assert policy.version is not None and policy.percent is not None
    threshold = policy.percent * (BUCKETS / 100)
    other, stay = (CANARY_ARM, PRODUCTION) if policy.policy == CANARY else (B_ARM, A_ARM)
    versions: list[int] = []
    arms: list[str] = []
    for key in keys:
        if bucket(model, key) < threshold:
            versions.append(policy.version)
            arms.append(other)
        else:
            versions.append(production)
            arms.append(stay)
    return versions, arms


def splits(route: Route) -> bool:
    """Whether a row's arm depends on its key (a canary or A/B of another version than
    production): otherwise every row is production's, and the keys need not be built."""
    policy = route.policy
    return policy.policy in (CANARY, AB) and policy.version != route.production


def shadow_version(route: Route) -> int | None:
    """The version that also predicts every row, unseen, under a shadow policy."""
    policy = route.policy
    if policy.policy != SHADOW or policy.version == route.production:
        return None
    return policy.version
