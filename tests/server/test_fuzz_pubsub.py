"""Short fuzz runs of the pub/sub messages peers send (BROADCAST frames of the Raft
port), and the payloads fuzzing found."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from testsupport import fuzz_targets as ft

FUZZ = settings(max_examples=500, deadline=None, derandomize=True, database=None)
PIECES = [b"*", b"$", b"%", b"-", b":", b"\r\n", b"1", b"3", b"99999999",
          *ft.broadcast_corpus()]


@FUZZ
@given(st.binary(max_size=200) | st.lists(st.sampled_from(PIECES), max_size=12).map(b"".join))
def test_peer_payloads(data: bytes) -> None:
    ft.broadcast_payload(data)


def test_a_published_message_is_delivered() -> None:
    assert [ft.broadcast_payload(data) for data in ft.broadcast_corpus()] == [1, 1, 1, 0, 0]


@pytest.mark.parametrize("data", [
    b"*3\r\n$1\r\nc\r\n$4\r\nnews\r\n-$5\r\nhello\r\n",  # an error as the message
    b"*3\r\n$1\r\nc\r\n-1$43\r\n$1\r\nc\r\n$4\r\nnews\r\n$5\r\nhello\r\n",  # ... the channel
    b"*1\r\n%1\r\n%1\r\n*0\r\n:1\r\n",  # a map keyed by a map: TypeError
])
def test_what_fuzzing_found_is_refused_as_malformed(data: bytes) -> None:
    """These raised TypeError out of the transport; now the documented ValueError,
    on which the transport closes the peer's link (a rate-limited log line)."""
    assert ft.broadcast_payload(data) == 0


@pytest.mark.parametrize("data", [b"*99999999\r\n", b"*999999993\r\n$1\r\nc\r\n"])
def test_a_huge_count_allocates_nothing(data: bytes) -> None:
    """hiredis reserved 0.8 and 7 GB for these."""
    watch = ft.MemoryWatch(limit=16 << 20)
    assert ft.broadcast_payload(data) == 0
    watch.check(data)
