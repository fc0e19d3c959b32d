"""Short fuzz runs of the Raft port (the long ones: benchmarks/fuzz.py): its accepting
side before and after the handshake, its dialing side against a peer that answers
garbage, and the frames and messages it reads; plus the inputs fuzzing found."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from respkv.raft.codec import encode_message
from respkv.raft.messages import Message, MessageType
from respkv.raft.types import Entry, EntryKind
from respkv.replication import transport as raft_port
from testsupport import fuzz_targets as ft

FUZZ = settings(max_examples=300, deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture,
                                       HealthCheck.too_slow])
cuts = st.lists(st.integers(0, 2000), max_size=3)


@pytest.fixture(scope="module")
def harness() -> Iterator[ft.InboundHarness]:
    with ft.inbound_harness() as made:
        yield made


def frames_from(corpus: list[bytes]) -> st.SearchStrategy[bytes]:
    """A corpus entry with bytes flipped, cut short, or followed by others."""
    @st.composite
    def build(draw: st.DrawFn) -> bytes:
        data = bytearray(draw(st.sampled_from(corpus)))
        for _ in range(draw(st.integers(0, 3))):
            if data:
                data[draw(st.integers(0, len(data) - 1))] = draw(st.integers(0, 255))
        data = data[: draw(st.integers(0, len(data)))] if draw(st.booleans()) else data
        return bytes(data) + draw(st.binary(max_size=20))
    return build()


@FUZZ
@given(st.binary(max_size=400) | frames_from(ft.handshake_corpus()), cuts)
def test_garbage_before_the_handshake_reaches_nothing(harness: ft.InboundHarness,
                                                      data: bytes, at: list[int]) -> None:
    harness.run(data, at, authenticated=False)


@FUZZ
@given(st.binary(max_size=400) | frames_from(ft.frame_corpus()), cuts)
def test_garbage_after_the_handshake_changes_the_core_only_by_valid_messages(
        harness: ft.InboundHarness, data: bytes, at: list[int]) -> None:
    harness.run(data, at, authenticated=True)


@FUZZ
@given(st.binary(max_size=300) | frames_from(ft.dial_corpus()), cuts)
def test_the_dialer_refuses_any_answer_without_the_secret(data: bytes, at: list[int]) -> None:
    ft.dial_handshake(data, at)


@FUZZ
@given(st.binary(max_size=300) | frames_from(ft.frame_corpus()), cuts)
def test_the_frame_reader_ends_on_garbage(data: bytes, at: list[int]) -> None:
    ft.read_frames(data, at)


def test_the_valid_frames_all_arrive(harness: ft.InboundHarness) -> None:
    """The harness's corpus is valid: its messages and its snapshot arrive."""
    outcome = harness.run(b"".join(ft.frame_corpus()[:8]), authenticated=True)
    assert len(outcome.delivered) == 8
    outcome = harness.run(ft.frame_corpus()[-2], [7, 50], authenticated=True)
    assert [m.from_ for m in outcome.snapshots] == [ft.PEER]


@pytest.mark.parametrize("sender", ["n3", "n2", ""])
def test_a_snapshot_end_naming_another_sender_is_refused(harness: ft.InboundHarness,
                                                         sender: str) -> None:
    """Found by fuzzing: n1's link could hand its group a snapshot said to be n3's."""
    snap = next(m for m in ft.message_corpus() if m.snapshot is not None)
    snap.from_ = sender
    outcome = harness.run(ft.snapshot_stream(snap), authenticated=True)
    assert outcome.snapshots == [] and outcome.closed


@pytest.mark.parametrize("kind", [MessageType.APP, MessageType.HEARTBEAT_RESP])
def test_a_snapshot_end_carrying_another_message_is_refused(harness: ft.InboundHarness,
                                                            kind: MessageType) -> None:
    """Found by fuzzing: an APP with a snapshot meta was handed over as a snapshot."""
    snap = next(m for m in ft.message_corpus() if m.snapshot is not None)
    snap.type = kind
    outcome = harness.run(ft.snapshot_stream(snap), authenticated=True)
    assert outcome.snapshots == [] and outcome.closed


def test_a_removed_notice_that_is_not_an_object_closes_the_link(
        harness: ft.InboundHarness) -> None:
    outcome = harness.run(raft_port.frame(raft_port.REMOVED, json.dumps([1]).encode()),
                          authenticated=True)
    assert outcome.closed and harness.endpoint.removed == []


@pytest.mark.parametrize("entries", [
    (Entry(2, 9, EntryKind.NORMAL, b"SET k v"),),  # not right after index 3
    (Entry(2, 4, EntryKind.CONF_CHANGE, b"\x53\x00\x02n4"),),  # no such change
    (Entry(2, 4, EntryKind.CONF_CHANGE, b"\x01\xff"),),  # cut short
])
def test_a_message_the_core_would_fail_on_closes_the_link(harness: ft.InboundHarness,
                                                          entries: tuple[Entry, ...]) -> None:
    """Found by fuzzing: the core raised on these (LogError, struct.error) with the
    undecodable conf change already in its log; the link now closes before it."""
    message = Message(MessageType.APP, group=ft.GROUP, from_=ft.PEER, to=ft.SELF, term=2,
                      index=3, log_term=1, entries=entries, commit=3)
    outcome = harness.run(raft_port.frame(raft_port.MSG, encode_message(message)),
                          authenticated=True)
    assert outcome.closed and outcome.delivered == []
    assert harness.endpoint.state() == harness.genesis
