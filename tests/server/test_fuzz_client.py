"""Short fuzz runs of a whole client connection (the long ones: benchmarks/fuzz.py):
bytes in, replies out, one reply per request and Redis' error and a close for bad
bytes, no exception out of data_received, no hang, and the keyspace and the log
untouched unless a write command was parsed."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from testsupport import fuzz_targets as ft
from testsupport.ports import free_port

FUZZ = settings(max_examples=300, deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture,
                                       HealthCheck.too_slow])
cuts = st.lists(st.integers(0, 1000), max_size=3)
PIECES = [b"*", b"$", b"%", b"+", b":", b"\r\n", b"\n", b"1", b"2", b"3", b"-1", b"99999999",
          b" ", b'"', *ft.request_corpus()]


@pytest.fixture(scope="module")
def harness() -> Iterator[ft.ClientHarness]:
    with ft.client_harness(free_port()) as made:
        yield made


@FUZZ
@given(st.binary(max_size=200) | st.lists(st.sampled_from(PIECES), max_size=12).map(b"".join),
       cuts)
def test_garbage_and_requests(harness: ft.ClientHarness, data: bytes, at: list[int]) -> None:
    harness.run(data, at)


def test_the_corpus_runs(harness: ft.ClientHarness) -> None:
    """The checks see real traffic: writes that change the keyspace, reads, errors."""
    outcomes = [harness.run(data, [3]) for data in ft.request_corpus()]
    assert sum(o.wrote for o in outcomes) >= 8
    assert sum(o.requests for o in outcomes) >= 20
    assert sum(o.skipped for o in outcomes) == 1  # "$5\r\nhello": inline HELLO, not run


def test_a_write_is_seen_by_the_state_check(harness: ft.ClientHarness) -> None:
    """The harness would notice a change: a SET parsed changes the log and the keys."""
    before = harness._state()
    harness.run(ft.resp("SET", "seen", "1"))
    assert harness._state() != before  # the SET, then the FLUSHALL after it
