"""The value codec: what it writes reads back exactly, and nothing else reads at all."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from respkv.state.codec import CodecError, decode_value, encode_value

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
