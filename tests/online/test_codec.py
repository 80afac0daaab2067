"""The shared byte layout: write-side (Arrow) and read-side (Python) key encodings agree."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from featurehub import Field
from featurehub import types as t
from featurehub.online import codec
from featurehub.online.codec import LayoutCache, encode_key, latest_rows
from tests.online import make_rows, make_view

KEY_TYPES = {
    "k_int": (t.Int64, st.integers(-(2**63), 2**63 - 1)),
    "k_int32": (t.Int32, st.integers(-(2**31), 2**31 - 1)),
    "k_str": (t.String, st.text(max_size=6)),
    "k_bytes": (t.Bytes, st.binary(max_size=6)),
    "k_bool": (t.Bool, st.booleans()),
    "k_time": (
        t.Timestamp,
        st.datetimes(
            min_value=datetime(1900, 1, 1),
            max_value=datetime(2200, 1, 1),
            timezones=st.just(timezone.utc),
        ),
    ),
    "k_float": (t.Float64, st.floats(allow_nan=False)),
}


@settings(max_examples=60, deadline=None)
@given(
    names=st.lists(st.sampled_from(sorted(KEY_TYPES)), min_size=1, max_size=3, unique=True),
    data=st.data(),
)
def test_column_and_value_encodings_of_keys_agree(names: list[str], data: st.DataObject) -> None:
    view = make_view(keys=[(name, KEY_TYPES[name][0]) for name in names])
    row_keys = data.draw(
        st.lists(
            st.tuples(*[KEY_TYPES[name][1] for name in names]), min_size=1, max_size=5, unique=True
        )
    )
    table = make_rows(view, [dict(zip(names, key, strict=True)) for key in row_keys])
    _, encoded = latest_rows(view, table, b"pre:")
    expected = [b"pre:" + encode_key(key) for key in row_keys]
    assert encoded == expected


def test_keys_of_different_types_or_splits_never_collide() -> None:
    keys = [(12,), ("12",), (b"12",), (True,), (1,), (1.0,), (12, "3"), (1, "23"), ("1", "23")]
    encoded = [encode_key(key) for key in keys]
    assert len(set(encoded)) == len(keys)
    assert encode_key((12, "3")) == b"i12s1:3"


def test_unicode_keys_use_their_byte_length() -> None:
    view = make_view(keys=[("city", t.String), ("n", t.Int64)])
    _, encoded = latest_rows(view, make_rows(view, [{"city": "zü", "n": 1}]))
    assert encoded == [b"s3:z\xc3\xbci1"] == [encode_key(("zü", 1))]


FIXED_WIDTH = [
    Field("a", t.Int64),
    Field("b", t.Float32),
    Field("c", t.Bool),
    Field("d", t.Int32),
    Field("e", t.Float64),
    Field("f", t.Timestamp),
]


@pytest.mark.parametrize("case", ["plain", "nulls", "missing", "other_schema", "short"])
def test_numpy_and_struct_decoders_agree(case: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Reads of many fixed-width rows decode with numpy unless a null, a missing key, another
    schema's row or a short value sends them to the struct path; both give the same values."""
    view = make_view(schema=FIXED_WIDTH)
    rows = [
        {"driver_id": k, "event": k, "a": -(2**62) + k, "b": k / 3, "c": k % 3 == 0}
        | {"d": -k, "e": k * 1e300, "f": datetime(2026, 1, 1, k % 24, tzinfo=timezone.utc)}
        for k in range(50)
    ]
    if case == "nulls":
        rows[7] = {"driver_id": 7, "event": 7}
    layout = LayoutCache().get(view)
    values: list[bytes | None] = list(layout.pack(latest_rows(view, make_rows(view, rows))[0]))
    if case == "missing":
        values[3] = None
    elif case == "other_schema":  # same width, another name: another layout fingerprint
        other = make_view(schema=[Field("z", t.Int64), *FIXED_WIDTH[1:]])
        values[9] = LayoutCache().get(other).pack(latest_rows(other, make_rows(other, rows))[0])[9]
    elif case == "short":
        values[11] = b"short"
    features = ["f", "c", "a", "e", "b", "d"]
    read = layout.decoder(features)(values)
    monkeypatch.setattr(codec, "NUMPY_ROWS", 10**9)
    assert read == layout.decoder(features)(values)
    assert {type(v) for v in read.values["c"] if v is not None} == {bool}
    assert {type(v) for v in read.values["f"] if v is not None} == {datetime}
    if case == "plain":
        assert read.values["a"][0] == -(2**62) and read.values["e"][49] == 49e300
