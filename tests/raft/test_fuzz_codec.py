"""Short fuzz runs of the Raft message codec (the long ones: benchmarks/fuzz.py):
decode_message raises CodecError and nothing else, and what it decodes encodes back
to the same message."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from respkv.raft.codec import (
    F_ENTS,
    VERSION,
    CodecError,
    check_message,
    decode_message,
    encode_message,
)
from respkv.raft.messages import Message, MessageType
from respkv.raft.types import Entry, EntryKind
from testsupport import fuzz_targets as ft

FUZZ = settings(max_examples=1000, deadline=None, derandomize=True, database=None)


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    """A valid encoding with bytes changed, inserted or cut off."""
    data = bytearray(draw(st.sampled_from(ft.codec_corpus())))
    for _ in range(draw(st.integers(1, 4))):
        pos = draw(st.integers(0, len(data)))
        action = draw(st.sampled_from(["set", "insert", "cut"]))
        if action == "set" and pos < len(data):
            data[pos] = draw(st.integers(0, 255))
        elif action == "insert":
            data[pos:pos] = draw(st.binary(min_size=1, max_size=4))
        else:
            del data[pos:]
    return bytes(data)


@FUZZ
@given(st.binary(max_size=200))
def test_random_bytes(data: bytes) -> None:
    ft.decode_raft_message(data)


@settings(FUZZ, max_examples=400)
@given(mutated())
def test_mutated_messages(data: bytes) -> None:
    ft.decode_raft_message(data)


def test_the_corpus_decodes() -> None:
    assert all(ft.decode_raft_message(data) is not None for data in ft.codec_corpus())


def test_a_promised_four_billion_entries_cost_what_the_bytes_do() -> None:
    head = struct.pack("<BBBQQQQQ", VERSION, 1, F_ENTS, 1, 1, 1, 1, 0)
    names = b"".join(struct.pack("<H", 2) + name for name in (b"g0", b"n1", b"n2"))
    data = head + names + struct.pack("<I", 0) + struct.pack("<IQ", 0xFFFFFFFF, 2)
    data += struct.pack("<QBI", 1, 0, 0xFFFFFFFF)  # and the first claims 4 GB of data
    watch = ft.MemoryWatch(limit=16 << 20)
    assert ft.decode_raft_message(data) is None
    watch.check(data)


def test_check_message_passes_what_a_leader_sends() -> None:
    for message in ft.message_corpus():
        check_message(message)


@pytest.mark.parametrize("message", [
    Message(MessageType.APP, index=3, entries=(Entry(1, 5, EntryKind.NORMAL, b""),)),
    Message(MessageType.HEARTBEAT, index=3, entries=(Entry(1, 4, EntryKind.NORMAL, b""),)),
    Message(MessageType.APP, index=3, entries=(Entry(1, 4, EntryKind.CONF_CHANGE, b"\x09"),)),
    Message(MessageType.APP, index=3,
            entries=(Entry(1, 4, EntryKind.CONF_CHANGE, b"\x01\x00\x02\xff\xfe"),)),
])
def test_check_message_refuses_what_the_core_would_fail_on(message: Message) -> None:
    assert decode_message(encode_message(message)).entries == list(message.entries)  # carried
    with pytest.raises(CodecError):
        check_message(message)
