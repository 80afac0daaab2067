"""Value types of features and join keys, and how they map to Arrow.

A declared type is compatible with a source column when the column can be read as that type
without losing information (int32 -> Int64 is fine, int64 -> Int32 is not). `apply` checks this
against the source schema so a wrong type is found before any data is computed.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone

import pyarrow as pa


@dataclass(frozen=True)
class ValueType:
    """A featurehub value type: a name users write and the Arrow type data is stored as."""

    name: str
    arrow: pa.DataType

    def __repr__(self) -> str:
        return self.name

    def accepts(self, column: pa.DataType) -> bool:
        """True when a source column of Arrow type `column` can be stored as this type."""
        if pa.types.is_dictionary(column):
            column = column.value_type
        if pa.types.is_null(column):
            return True
        check = _ACCEPTS.get(self.name)
        return bool(check and check(column))


Int32 = ValueType("Int32", pa.int32())
Int64 = ValueType("Int64", pa.int64())
Float32 = ValueType("Float32", pa.float32())
Float64 = ValueType("Float64", pa.float64())
String = ValueType("String", pa.string())
Bool = ValueType("Bool", pa.bool_())
Bytes = ValueType("Bytes", pa.binary())
Timestamp = ValueType("Timestamp", pa.timestamp("us", tz="UTC"))

_SMALL_INTS = (pa.int8(), pa.int16(), pa.int32(), pa.uint8(), pa.uint16())
_ACCEPTS = {
    "Int32": lambda t: t in (*_SMALL_INTS[:3], pa.uint8(), pa.uint16()),
    "Int64": lambda t: t in (*_SMALL_INTS, pa.int64(), pa.uint32()),
    "Float32": lambda t: t in (pa.float16(), pa.float32(), pa.int8(), pa.int16(), pa.uint8()),
    "Float64": lambda t: pa.types.is_floating(t) or (pa.types.is_integer(t) and t.bit_width <= 32),
    "String": lambda t: pa.types.is_string(t) or pa.types.is_large_string(t),
    "Bool": pa.types.is_boolean,
    "Bytes": lambda t: pa.types.is_binary(t) or pa.types.is_large_binary(t),
    "Timestamp": lambda t: pa.types.is_timestamp(t) or pa.types.is_date(t),
}

ALL_TYPES: dict[str, ValueType] = {
    t.name: t for t in (Int32, Int64, Float32, Float64, String, Bool, Bytes, Timestamp)
}


def from_name(name: str) -> ValueType:
    """The type called `name` ("Int64"), as stored in the registry."""
    try:
        return ALL_TYPES[name]
    except KeyError:
        known = ", ".join(ALL_TYPES)
        raise ValueError(f"unknown value type {name!r}; known types: {known}") from None


def from_arrow(arrow_type: pa.DataType) -> ValueType | None:
    """The narrowest featurehub type that accepts an Arrow column type, or None."""
    for candidate in (Bool, Int32, Int64, Float32, Float64, String, Bytes, Timestamp):
        if candidate.accepts(arrow_type) and not pa.types.is_null(arrow_type):
            return candidate
    return None


def as_utc(moment: datetime) -> datetime:
    """An aware UTC datetime. Naive ones are UTC (featurehub's rule, and what SQLite returns
    for what featurehub stored)."""
    if moment.tzinfo is None:
        return moment.replace(tzinfo=timezone.utc)
    return moment.astimezone(timezone.utc)
