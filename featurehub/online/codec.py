"""The bytes both online stores keep: encoded entity keys and packed feature rows.

Entity key: each join-key value carries a type tag and delimits itself, so the int 12 and the
string "12" differ and a composite key never reads two ways:

    int -> b"i12"   str -> b"s2:12" (UTF-8 byte length, ":")   bytes -> b"b3:" + raw
    bool -> b"B1"/b"B0"   float -> b"f" + 8 bytes IEEE   datetime -> b"d" + microseconds (UTC)

Row value, little-endian, one `struct`, so a read of many keys decodes the fixed part of all
rows in one `struct.iter_unpack` (writes pack it column-wise with the same numpy dtype):

    event_us q | created_us q | layout I | null bitmap (ceil(n/8) bytes, bit i = feature i)
    | per feature: Int64 q, Int32 i, Float64 d, Float32 f, Bool ?, Timestamp q (us),
      String/Bytes I (byte length) | String/Bytes contents, in feature order

`layout` is a CRC of the view's feature names and types. A row written under another schema is
never misread: reads treat it as absent and any write replaces it.

Why not orjson: for 10 Float64/Int64 features, orjson.loads of a {name: value} object takes
1.5 us against 2.5 us for a struct unpack + dict per row (and far less per row for the columnar
decode here), but JSON turns NaN and inf into null, has no bytes, and repeats the names in every
value (214 bytes against 102 per row in Redis memory).
"""

from __future__ import annotations

import numbers
import struct
import zlib
from collections.abc import Callable, Sequence
from datetime import datetime, timezone
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from featurehub.definitions import FeatureView
from featurehub.errors import DefinitionError, did_you_mean
from featurehub.offline.base import CREATED_TIMESTAMP, EVENT_TIMESTAMP, offline_schema
from featurehub.online.base import EPOCH, MICROSECOND, ColumnarRead, EntityKey

_HEADER = "<qqI"  # event_us, created_us, layout
_STRUCT_CODES = {
    "Int64": "q",
    "Int32": "i",
    "Float64": "d",
    "Float32": "f",
    "Bool": "?",
    "Timestamp": "q",
    "String": "I",
    "Bytes": "I",
}
_NUMPY_CODES = {"q": "<i8", "i": "<i4", "d": "<f8", "f": "<f4", "?": "u1", "I": "<u4"}
_VARIABLE = frozenset({"String", "Bytes"})

ColumnDecoder = Callable[[Sequence[bytes | None]], ColumnarRead]
# From this many keys, a read of fixed-width rows decodes with numpy (one call per column)
# rather than struct (one tuple per row); below it numpy's per-call cost is larger.
NUMPY_ROWS = 32


# -- entity keys -------------------------------------------------------------------------------


def encode_key(key: EntityKey) -> bytes:
    """The bytes of one entity key (a tuple of join-key values)."""
    if len(key) == 1:
        value = key[0]
        return b"i%d" % value if type(value) is int else _encode_value(value)
    return b"".join([_encode_value(value) for value in key])


def encode_keys(keys: Sequence[EntityKey], prefix: bytes = b"") -> list[bytes]:
    """`prefix + encode_key(key)` of every key; one %-format per key for single int keys."""
    try:
        values = [value for (value,) in keys]
    except ValueError:  # composite or empty keys
        return [prefix + encode_key(key) for key in keys]
    if values and set(map(type, values)) == {int}:
        template = prefix.replace(b"%", b"%%") + b"i%d"
        return [template % value for value in values]
    return [prefix + encode_key(key) for key in keys]


def _encode_value(value: Any) -> bytes:
    kind = type(value)
    if kind is int:
        return b"i%d" % value
    if kind is str:
        raw = value.encode()
        return b"s%d:%s" % (len(raw), raw)
    if value is None:
        return b"n"  # writes skip null keys, so this never matches a stored row
    if isinstance(value, (bool, np.bool_)):
        return b"B1" if value else b"B0"
    if isinstance(value, str):
        return _encode_value(str(value))
    if isinstance(value, numbers.Integral):
        return b"i%d" % int(value)
    if isinstance(value, (bytes, bytearray, memoryview)):
        raw = bytes(value)
        return b"b%d:%s" % (len(raw), raw)
    if isinstance(value, (float, np.floating)):
        return b"f" + struct.pack(">d", value)
    if isinstance(value, datetime):
        aware = value if value.tzinfo else value.replace(tzinfo=timezone.utc)
        return b"d%d" % ((aware - EPOCH) // MICROSECOND)
    raise TypeError(
        f"entity key value {value!r} of type {kind.__name__} is not supported; "
        "join keys are int, str, bytes, bool, float or datetime"
    )


# -- writes ------------------------------------------------------------------------------------


def latest_rows(
    view: FeatureView, table: pa.Table, prefix: bytes = b""
) -> tuple[pa.Table, list[bytes]]:
    """The newest row per entity key by (event, created), the later row winning an exact tie,
    and each row's encoded key after `prefix`. Rows with a null join key are dropped."""
    rows, keys = latest_rows_arrow(view, table, prefix)
    return rows, keys.to_pylist()


def latest_rows_arrow(
    view: FeatureView, table: pa.Table, prefix: bytes = b""
) -> tuple[pa.Table, pa.BinaryArray]:
    """`latest_rows` with the keys as one Arrow array: the Redis store frames them for the wire
    without a Python object per key."""
    table = _normalize(view, table)
    if view.join_keys:
        parts: list[pa.Array | pa.Scalar] = [_binary(prefix)]
        for key in view.join_keys:
            parts.extend(_key_parts(table.column(key)))
        encoded = _one_chunk(pc.binary_join_element_wise(*parts, _binary(b"")))
    else:  # a view without entities holds one row
        encoded = pa.array([prefix] * table.num_rows, pa.binary())
    if len(pc.unique(encoded)) == len(encoded):
        return table, encoded  # every key once: nothing to drop
    # rank = a row's position in (event, created) order; the stable sort places the later row
    # of an exact tie later. The newest row of a key is the one of highest rank.
    order = pc.sort_indices(
        table, sort_keys=[(EVENT_TIMESTAMP, "ascending"), (CREATED_TIMESTAMP, "ascending")]
    ).to_numpy()
    rank = np.empty(len(order), np.int64)
    rank[order] = np.arange(len(order))
    ranked = pa.table({"key": encoded, "rank": rank})
    newest = ranked.group_by("key", use_threads=False).aggregate([("rank", "max")])
    rows = order[newest.column("rank_max").to_numpy()]
    return table.take(rows), _one_chunk(newest.column("key"))


def _one_chunk(array: pa.Array | pa.ChunkedArray) -> pa.BinaryArray:
    if isinstance(array, pa.ChunkedArray):
        array = array.combine_chunks() if array.num_chunks else pa.array([], pa.binary())
    return array


def _key_parts(column: pa.ChunkedArray) -> list[pa.Array | pa.Scalar]:
    """`_encode_value` of a whole column, as pieces to concatenate (Arrow kernels, no Python
    loop for the usual key types)."""
    kind = column.type
    if pa.types.is_integer(kind):
        return [_binary(b"i"), _as_binary(pc.cast(column, pa.string()))]
    if pa.types.is_string(kind) or pa.types.is_large_string(kind) or pa.types.is_binary(kind):
        tag = b"b" if pa.types.is_binary(kind) else b"s"
        length = pc.cast(pc.binary_length(column), pa.string())
        return [_binary(tag), _as_binary(length), _binary(b":"), _as_binary(column)]
    if pa.types.is_boolean(kind):
        return [pc.if_else(column, _binary(b"B1"), _binary(b"B0"))]
    if pa.types.is_timestamp(kind):
        micros = pc.cast(pc.cast(column, pa.timestamp("us", tz=kind.tz)), pa.int64())
        return [_binary(b"d"), _as_binary(pc.cast(micros, pa.string()))]
    return [pa.array([_encode_value(v) for v in column.to_pylist()], pa.binary())]


def _binary(value: bytes) -> pa.Scalar:
    return pa.scalar(value, pa.binary())


def _as_binary(column: pa.ChunkedArray | pa.Array) -> pa.ChunkedArray | pa.Array:
    return pc.cast(column, pa.binary())


def timestamps_us(table: pa.Table, column: str) -> np.ndarray:
    """A timestamp column as int64 microseconds since the epoch."""
    return pc.cast(table.column(column), pa.int64()).to_numpy()


def _normalize(view: FeatureView, table: pa.Table) -> pa.Table:
    schema = offline_schema(view)
    missing = [name for name in schema.names if name not in table.column_names]
    if missing:
        raise ValueError(
            f"online write of view {view.name!r}: columns {missing} are missing; "
            f"expected the offline_schema(view) columns {schema.names}"
        )
    columns = []
    for field in schema:
        column = table.column(field.name)
        if field.name not in view.join_keys and column.type != field.type:
            column = column.cast(field.type)  # keys keep their type: 12 and "12" must differ
        columns.append(column)
    table = pa.table(columns, names=schema.names)
    for name in (EVENT_TIMESTAMP, CREATED_TIMESTAMP):
        if table.column(name).null_count:
            raise ValueError(f"online write of view {view.name!r}: {name} has nulls")
    if any(table.column(key).null_count for key in view.join_keys):
        valid = [pc.is_valid(table.column(key)) for key in view.join_keys]
        mask = valid[0]
        for other in valid[1:]:
            mask = pc.and_(mask, other)
        table = table.filter(mask)
    return table


# -- layout ------------------------------------------------------------------------------------


class RowLayout:
    """How one view's rows are packed; builds decoders per requested feature list."""

    def __init__(self, view: FeatureView) -> None:
        self.view_name = view.name
        self.names = view.feature_names
        self.types = [field.dtype.name for field in view.schema]
        spec = ",".join(f"{n}:{t}" for n, t in zip(self.names, self.types, strict=True))
        self.fingerprint = zlib.crc32(spec.encode())
        self.null_bytes = (len(self.names) + 7) // 8
        codes = [_STRUCT_CODES[t] for t in self.types]
        self.struct = struct.Struct(f"{_HEADER}{self.null_bytes}s{''.join(codes)}")
        self.dtype = np.dtype(
            [("event", "<i8"), ("created", "<i8"), ("layout", "<u4")]
            + [("nulls", "u1", (self.null_bytes,))]
            + [(f"v{i}", _NUMPY_CODES[c]) for i, c in enumerate(codes)]
        )
        assert self.dtype.itemsize == self.struct.size
        self._decoders: dict[tuple[str, ...], ColumnDecoder] = {}

    def pack(self, table: pa.Table) -> list[bytes]:
        """The packed value of every row of a `latest_rows` table, built column-wise."""
        packed, variable = self._pack_columns(table)
        if not variable:
            size = self.struct.size
            blob = packed.tobytes()
            return [blob[start : start + size] for start in range(0, len(blob), size)]
        joined: list[bytes] = self._join(packed, variable).to_pylist()
        return joined

    def pack_array(self, table: pa.Table) -> pa.BinaryArray:
        """`pack` as one Arrow array, without a Python object per row."""
        packed, variable = self._pack_columns(table)
        return self._join(packed, variable)

    def _pack_columns(self, table: pa.Table) -> tuple[np.ndarray, list[pa.Array]]:
        """The fixed part of every row (one numpy record each) and the variable-length
        features' contents as binary columns, in feature order."""
        rows = table.num_rows
        packed = np.zeros(rows, self.dtype)
        packed["event"] = timestamps_us(table, EVENT_TIMESTAMP)
        packed["created"] = timestamps_us(table, CREATED_TIMESTAMP)
        packed["layout"] = self.fingerprint
        nulls = packed["nulls"]
        variable: list[pa.Array] = []
        for i, (name, kind) in enumerate(zip(self.names, self.types, strict=True)):
            column = table.column(name).combine_chunks()
            if column.null_count:
                is_null = column.is_null().to_numpy(zero_copy_only=False).astype(np.uint8)
                nulls[:, i >> 3] |= is_null << (i & 7)
            if kind in _VARIABLE:
                binary = pc.cast(column, pa.binary()).fill_null(b"")
                variable.append(binary)
                packed[f"v{i}"] = pc.binary_length(binary).to_numpy()
            elif kind == "Timestamp":
                packed[f"v{i}"] = pc.cast(column, pa.int64()).fill_null(0).to_numpy()
            else:
                fill = False if kind == "Bool" else 0
                packed[f"v{i}"] = column.fill_null(fill).to_numpy(zero_copy_only=False)
        return packed, variable

    def _join(self, packed: np.ndarray, variable: list[pa.Array]) -> pa.BinaryArray:
        size = self.struct.size
        buffer = pa.py_buffer(packed.view(np.uint8))
        fixed = pa.FixedSizeBinaryArray.from_buffers(pa.binary(size), len(packed), [None, buffer])
        if not variable:
            return fixed.cast(pa.binary())
        return pc.binary_join_element_wise(fixed.cast(pa.binary()), *variable, _binary(b""))

    def decoder(self, features: Sequence[str]) -> ColumnDecoder:
        """A function from the stored values of several keys (None for a missing key) to their
        `ColumnarRead` of `features`; a value written under another schema, or too short to be
        a row, reads as missing. Cached: building one costs more than a read."""
        key = tuple(features)
        found = self._decoders.get(key)
        if found is None:
            found = self._decoders[key] = self._build_decoder(key)
        return found

    def _build_decoder(self, features: tuple[str, ...]) -> ColumnDecoder:
        index = {name: i for i, name in enumerate(self.names)}
        for name in features:
            if name not in index:
                raise DefinitionError(
                    f"feature view {self.view_name!r} has no feature {name!r}."
                    + did_you_mean(name, self.names)
                )
        size = self.struct.size
        unpack_from = self.struct.unpack_from
        fingerprint = self.fingerprint
        no_nulls = bytes(self.null_bytes)
        variable = [i for i, kind in enumerate(self.types) if kind in _VARIABLE]
        # per requested feature: (name, index in the view, kind, index among variable or -1)
        plan = [
            (
                name,
                index[name],
                self.types[index[name]],
                variable.index(index[name]) if index[name] in variable else -1,
            )
            for name in features
        ]
        wants_variable = any(slot >= 0 for *_, slot in plan)

        iter_unpack = self.struct.iter_unpack
        fixed_only = not variable
        dtype = self.dtype
        numpy_plan = [(name, f"v{i}", kind) for name, i, kind, _ in plan]

        def by_numpy(found: Sequence[bytes | None]) -> ColumnarRead | None:
            """Every key found, each value exactly one row of this schema, no nulls: one numpy
            record per row and one `tolist` per column; else None (the general path)."""
            try:
                joined = b"".join(found)  # type: ignore[arg-type]
            except TypeError:  # a None: a key without a row
                return None
            if len(joined) != size * len(found) or min(map(len, found)) != size:  # type: ignore[arg-type]
                return None
            rows = np.frombuffer(joined, dtype)
            if rows["nulls"].any() or not (rows["layout"] == fingerprint).all():
                return None
            columns: dict[str, list[Any]] = {}
            for name, field, kind in numpy_plan:
                if kind == "Bool":
                    columns[name] = rows[field].astype(bool).tolist()
                elif kind == "Timestamp":
                    columns[name] = [EPOCH + MICROSECOND * us for us in rows[field].tolist()]
                else:  # Python int and float (Float32 widened exactly), as struct gives
                    columns[name] = rows[field].tolist()
            return ColumnarRead(rows["event"].tolist(), rows["created"].tolist(), columns)

        def decode(found: Sequence[bytes | None]) -> ColumnarRead:
            total = len(found)
            if fixed_only and total >= NUMPY_ROWS:
                read = by_numpy(found)
                if read is not None:
                    return read
            positions: Sequence[int] = range(total)
            present: list[bytes] = found  # type: ignore[assignment]
            records: list[tuple[Any, ...]] | None = None
            if fixed_only and total:  # usually every key found, each value exactly one row
                values: list[bytes] = found  # type: ignore[assignment]
                try:
                    joined = b"".join(values)
                except TypeError:  # a None: a key without a row
                    pass
                else:  # all rows of exactly one struct: unpacked in one C call
                    if len(joined) == size * total and min(map(len, values)) == size:
                        records = list(iter_unpack(joined))
            if records is None:
                positions = [
                    i for i, value in enumerate(found) if value is not None and len(value) >= size
                ]  # a value too short is not a row: as absent
                present = [found[i] for i in positions]  # type: ignore[misc]
                records = [unpack_from(value) for value in present]
            if not records:
                return _empty(features, total)
            fields = list(zip(*records))  # noqa: B905 (one tuple per struct field)
            if fields[2].count(fingerprint) != len(records):  # another schema's rows: absent
                kept = [j for j, layout in enumerate(fields[2]) if layout == fingerprint]
                if not kept:
                    return _empty(features, total)
                positions = [positions[j] for j in kept]
                present = [present[j] for j in kept]
                fields = list(zip(*[records[j] for j in kept]))  # noqa: B905
            nulls = fields[3]
            masks = (
                []
                if nulls.count(no_nulls) == len(nulls)
                else [
                    (j, int.from_bytes(bits, "little"))
                    for j, bits in enumerate(nulls)
                    if bits != no_nulls
                ]
            )
            spans = _spans([fields[4 + i] for i in variable], size) if wants_variable else []
            columns: dict[str, list[Any]] = {}
            for name, i, kind, slot in plan:
                if slot >= 0:
                    column = _variable(kind, present, spans[slot])
                elif kind == "Timestamp":
                    column = [EPOCH + MICROSECOND * us for us in fields[4 + i]]
                else:  # struct gives Python int, float (Float32 widened exactly) and bool
                    column = list(fields[4 + i])
                for j, mask in masks:
                    if mask >> i & 1:
                        column[j] = None
                columns[name] = column
            return _place(list(fields[0]), list(fields[1]), columns, positions, total)

        return decode


def _spans(lengths: list[Sequence[int]], size: int) -> list[tuple[list[int], list[int]]]:
    """Per variable-length feature (in feature order), each row's start and end offsets of its
    contents, which follow the fixed part in feature order; `lengths` as stored."""
    starts = [size] * len(lengths[0])
    spans = []
    for column in lengths:
        ends = [start + length for start, length in zip(starts, column)]  # noqa: B905
        spans.append((starts, ends))
        starts = ends
    return spans


def _variable(kind: str, present: list[bytes], span: tuple[list[int], list[int]]) -> list[Any]:
    starts, ends = span
    if kind == "String":
        return [value[a:b].decode() for value, a, b in zip(present, starts, ends)]  # noqa: B905
    return [bytes(value[a:b]) for value, a, b in zip(present, starts, ends)]  # noqa: B905


def _place(
    event: list[Any],
    created: list[Any],
    columns: dict[str, list[Any]],
    positions: Sequence[int],
    total: int,
) -> ColumnarRead:
    """The read of `total` keys from the columns of the rows found at `positions`."""
    if len(positions) == total:
        return ColumnarRead(event, created, columns)
    return ColumnarRead(
        _scatter(event, positions, total),
        _scatter(created, positions, total),
        {name: _scatter(column, positions, total) for name, column in columns.items()},
    )


def _scatter(column: list[Any], positions: Sequence[int], total: int) -> list[Any]:
    """A list of `total` Nones with `column[j]` at `positions[j]`."""
    out: list[Any] = [None] * total
    for position, value in zip(positions, column):  # noqa: B905 (same length)
        out[position] = value
    return out


def _empty(features: Sequence[str], total: int) -> ColumnarRead:
    return ColumnarRead([None] * total, [None] * total, {name: [None] * total for name in features})


class LayoutCache:
    """RowLayout per view, keyed by name and checked by identity: a refreshed catalog brings
    new view objects (possibly a changed schema), which must not reuse a stale layout."""

    def __init__(self) -> None:
        self._layouts: dict[str, tuple[FeatureView, RowLayout]] = {}

    def get(self, view: FeatureView) -> RowLayout:
        entry = self._layouts.get(view.name)
        if entry is not None and entry[0] is view:
            return entry[1]
        layout = RowLayout(view)
        self._layouts[view.name] = (view, layout)
        return layout
