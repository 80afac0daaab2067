"""Which values an entity key may hold: one rule for the Python SDK and the feature server, so
a key one accepts is a key the other accepts, and an answer never depends on the way asked.

- Int64 and Int32 keys take integers (NumPy's too, never bools) in the 64-bit signed range,
  the type every store keeps them as: a larger one could never match a stored row.
- String keys take str, Bytes keys bytes; a key of unknown type takes any of those, and a
  Bool, Float or Timestamp key any value.
- Null is not a key (the online SDK and the server refuse it; an offline entity row with a
  null key gets null features, docs/point-in-time.md rule 1).

No coercion: "12" is not 12, so a string id against an integer key is an error rather than a
silent "not found".
"""

from __future__ import annotations

import numbers
from collections.abc import Sequence
from typing import cast

import numpy as np

from featurehub import types

INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1

_INTEGER_KEYS = frozenset({types.Int64.name, types.Int32.name})
_OTHER_KEYS: dict[str, type] = {types.String.name: str, types.Bytes.name: bytes}
# The exact types a whole column may have to pass without a per-value check (a set of types
# costs one C loop; a value check per row costs ten times more on the server's hot path).
_PLAIN: dict[str | None, frozenset[type]] = {
    types.Int64.name: frozenset({int}),
    types.Int32.name: frozenset({int}),
    types.String.name: frozenset({str}),
    types.Bytes.name: frozenset({bytes}),
    None: frozenset({int, str, bytes}),
}
_INT = {int}


def is_integer_key(expected: types.ValueType | None) -> bool:
    return expected is not None and expected.name in _INTEGER_KEYS


def is_integer(value: object) -> bool:
    """An int or a NumPy integer; bools (Python's or NumPy's) are not integers here."""
    return isinstance(value, numbers.Integral) and not isinstance(value, (bool, np.bool_))


def accepts(expected: types.ValueType | None, value: object) -> bool:
    """True when `value` may be looked up as a key of type `expected` (None: unknown)."""
    if value is None:
        return False
    if is_integer(value):
        in_range = INT64_MIN <= int(value) <= INT64_MAX  # type: ignore[call-overload]
        return in_range and (expected is None or expected.name not in _OTHER_KEYS)
    if expected is None:
        return isinstance(value, (str, bytes))
    if expected.name in _INTEGER_KEYS:
        return False
    kind = _OTHER_KEYS.get(expected.name)
    return kind is None or isinstance(value, kind)  # Bool, Float, Timestamp keys: any value


def first_refused(expected: types.ValueType | None, column: Sequence[object]) -> int | None:
    """The position of the first value of `column` that `accepts` refuses, or None."""
    plain = _PLAIN.get(expected.name if expected is not None else None)
    kinds = set(map(type, column))
    if plain is not None and plain.issuperset(kinds):
        ints = cast("Sequence[int]", column if kinds == _INT else _ints(column))
        if not ints or (min(ints) >= INT64_MIN and max(ints) <= INT64_MAX):
            return None
    for index, value in enumerate(column):
        if not accepts(expected, value):
            return index
    return None


def _ints(column: Sequence[object]) -> list[int]:
    return [value for value in column if type(value) is int]


def describe(expected: types.ValueType | None) -> str:
    """What keys of type `expected` are, for messages: '64-bit integers', 'strings', ..."""
    if expected is None:
        return "64-bit integers, strings or bytes"
    if expected.name in _INTEGER_KEYS:
        return "64-bit integers"
    if expected.name == types.String.name:
        return "strings"
    if expected.name == types.Bytes.name:
        return "bytes"
    return f"{expected.name} values"
