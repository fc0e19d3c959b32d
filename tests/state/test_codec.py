"""The value codec: what it writes reads back exactly, and nothing else reads at all."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from respkv.state.codec import (
    CodecError,
    all_item_records,
    decode_value,
    encode_header,
    encode_value,
    load_items,
)
from respkv.state.values import Collection, HashValue, ListValue, SetValue, ZSetValue

expiries = st.one_of(st.none(), st.integers(-(1 << 63), (1 << 63) - 1))


@given(st.binary(max_size=300), expiries)
def test_round_trip(value: bytes, expire_at: int | None) -> None:
    assert decode_value(encode_value(value, expire_at)) == (value, expire_at)


@given(st.binary(min_size=0, max_size=60), expiries, st.data())
@settings(max_examples=300)
def test_any_damage_is_refused(value: bytes, expire_at: int | None, data: st.DataObject) -> None:
    blob = bytearray(encode_value(value, expire_at))
    where = data.draw(st.integers(0, len(blob) - 1))
    blob[where] ^= data.draw(st.integers(1, 255))
    with pytest.raises(CodecError):
        decode_value(bytes(blob))
    cut = data.draw(st.integers(0, len(blob) - 1))
    with pytest.raises(CodecError):
        decode_value(bytes(encode_value(value, expire_at)[:cut]))


@given(st.binary(max_size=200))
def test_arbitrary_bytes_are_refused(blob: bytes) -> None:
    with pytest.raises(CodecError):
        decode_value(blob)


def test_python_serialized_objects_are_refused() -> None:
    # What an older respkv stored: the marker of Python's object serialization.
    for blob in (b"\x80\x05\x95\x05\x00\x00\x00\x00\x00\x00\x00C\x01x\x94.", b"\x80\x04K\x05."):
        with pytest.raises(CodecError):
            decode_value(blob)


def test_only_known_types_are_encoded() -> None:
    for value in (1, "text", [b"a"], None, bytearray(b"x")):
        with pytest.raises(CodecError):
            encode_value(value)


# -- collections ---------------------------------------------------------------------

members = st.lists(st.binary(max_size=12), max_size=12, unique=True)


def collections() -> st.SearchStrategy:
    scores = st.floats(allow_nan=False)
    return st.one_of(
        st.dictionaries(st.binary(max_size=8), st.binary(max_size=8), min_size=1,
                        max_size=10).map(HashValue),
        st.lists(st.binary(max_size=8), min_size=1, max_size=10).map(ListValue),
        members.filter(bool).map(SetValue),
        st.dictionaries(st.binary(max_size=8), scores, min_size=1, max_size=10).map(ZSetValue),
    )


@given(collections(), expiries)
def test_collections_round_trip_whole(value: Collection, expire_at: int | None) -> None:
    decoded, at = decode_value(encode_value(value, expire_at))
    assert decoded == value and at == expire_at
    if isinstance(value, SetValue | ListValue):  # the order is part of the state
        assert list(decoded.members if isinstance(value, SetValue) else decoded.items) == \
            list(value.members if isinstance(value, SetValue) else value.items)


@given(collections(), expiries, st.randoms())
def test_collections_round_trip_as_items(value: Collection, expire_at: int | None,
                                         rng: random.Random) -> None:
    key = b"key"
    header, at = decode_value(encode_header(value, expire_at))
    assert at == expire_at and len(header) == 0
    records = list(all_item_records(key, value))
    rng.shuffle(records)  # the store hands them back in any order
    load_items(key, header, records)
    assert header == value
    if isinstance(value, SetValue):
        assert header.members == value.members


@given(collections(), st.data())
@settings(max_examples=200)
def test_damaged_or_moved_items_are_refused(value: Collection, data: st.DataObject) -> None:
    records = list(all_item_records(b"key", value))
    header = decode_value(encode_header(value))[0]
    with pytest.raises(CodecError):
        load_items(b"other", header, records)  # rows moved under another key
    where = data.draw(st.integers(0, len(records) - 1))
    item, blob = records[where]
    damaged = bytearray(blob)
    damaged[data.draw(st.integers(0, len(blob) - 1))] ^= data.draw(st.integers(1, 255))
    records[where] = (item, bytes(damaged))
    with pytest.raises(CodecError):
        load_items(b"key", decode_value(encode_header(value))[0], records)


def test_incomplete_collections_are_refused() -> None:
    value = SetValue([b"a", b"b", b"c"])
    records = list(all_item_records(b"s", value))
    with pytest.raises(CodecError, match="positions"):
        load_items(b"s", SetValue(), records[1:])  # a member missing: a gap in the order
    listed = ListValue([b"x", b"y", b"z"])
    rows = list(all_item_records(b"l", listed))
    with pytest.raises(CodecError, match="gap"):
        load_items(b"l", ListValue(), [rows[0], rows[2]])
    with pytest.raises(CodecError, match="no members"):
        load_items(b"h", HashValue(), [])
    with pytest.raises(CodecError, match="empty"):
        decode_value(encode_value(HashValue()))
