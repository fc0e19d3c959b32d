"""Short fuzz runs of the request parser (the long ones: benchmarks/fuzz.py), and the
inputs fuzzing found, each with the reply Redis 7.0 gives it."""

from __future__ import annotations

import socket
import time

import hiredis
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from respkv.protocol.parser import ProtocolError, RequestParser
from respkv.protocol.reply import RespError, encode
from testsupport import fuzz_targets as ft

FUZZ = settings(max_examples=600, deadline=None, derandomize=True, database=None)
cuts = st.lists(st.integers(0, 1000), max_size=4)

# Pieces of requests, valid and not, for hypothesis to string together.
PIECES = [b"*", b"$", b"%", b"~", b">", b"+", b":", b"-", b"\r\n", b"\n", b"\r", b"0", b"1",
          b"2", b"-1", b"99999999", b"3000000000", b"PING", b"ECHO", b"a", b'"', b"'", b" ",
          b"\\x41", *ft.request_corpus()]


@FUZZ
@given(st.binary(max_size=300), cuts)
def test_random_bytes(data: bytes, at: list[int]) -> None:
    ft.parse_request(data, at)


@FUZZ
@given(st.lists(st.sampled_from(PIECES), max_size=24).map(b"".join), cuts)
def test_strings_of_request_pieces(data: bytes, at: list[int]) -> None:
    ft.parse_request(data, at)


# Inputs fuzzing found: where the reads were cut changed the requests or the error.
FOUND_SPLIT = [
    b"*-1\r\n*0\r\n*1\r\n$4\r\nPING\r\n",  # "*-1" split: the null request was misread
    b"*2\r\nc\r\n",  # hiredis refused before the bad line ended: Redis waits for it
    b"*5\r\n$4\r\nMSxxxxxxxx\r\n",
    b"*2\r\n$3\r\nGET\r\n99999999$1\r\nk\r\n",
    b"*6\r\r\nSADD\r\n$1\r\ns\r\n$1\r\na\r\n",  # "\r\r\n": hiredis refuses, int() took it
    b"*8\r\n$4\nHSET\r\n$1\r\nh\r\n",  # a bare \n ending a header
    b"*0005\r\nhello\r\n",  # leading zeros
    b"~2\r\n$3\r\nGET\r\n$1\r\nk\r\n",  # a top-level set: inline, not hiredis'
    b"%1\r\n*2\r\n$1\r\na\r\n%1\r\n$1\r\nb\r\nZ1\r\nc\r\n",
    b"*-5\r\n*1\r\n$4\r\nPING\r\n",
    b"\n*1\r\n$4\r\nPING\r\n",  # whole, the request after an empty line was split inline
]


@pytest.mark.parametrize("data", FOUND_SPLIT)
def test_every_single_cut_reads_the_same(data: bytes) -> None:
    for cut in range(1, len(data)):
        ft.parse_request(data, [cut])


def parse(data: bytes) -> tuple[list[list[bytes]], str | None]:
    parsed = ft.parse_request(data, [])
    return parsed.frames, parsed.error


# How Redis 7.0 reads these (checked against redis-server below): the requests it
# runs, then the error it closes with.
REDIS_READS = [
    # a simple string element: hiredis returns it as bytes, as a bulk; Redis refuses it
    (b"*3\r\n$4\r\nECHO\r\n$1\r\ns\r\n+$1\r\na\r\n", [], "expected '$', got '+'"),
    # a map keyed by an array: hiredis raised TypeError out of the parser
    (b"*1\r\n%1\r\n*0\r\n:1\r\n", [], "expected '$', got '%'"),
    # the requests before a bad one run (the huge count used to stop them too)
    (b"*2\r\n$4\r\nECHO\r\n$1\r\nc\r\n*3000000000\r\n", [[b"ECHO", b"c"]],
     "invalid multibulk length"),
    (b"%1\r\n*3000000000\r\n", [[b"%1"]], "invalid multibulk length"),
    (b"*-5\r\n*1\r\n$4\r\nPING\r\n", [[b"PING"]], None),  # no arguments: ignored
    (b"*-0\r\n", [], "invalid multibulk length"),
    (b"*0005\r\n", [], "invalid multibulk length"),
    (b"*1\r\n$04\r\nPING\r\n", [], "invalid bulk length"),
    (b"*1\r\n$+4\r\nPING\r\n", [], "invalid bulk length"),
    (b"*2\r\n$4\nECHO\r\n$1\r\nc\r\n", [], "invalid bulk length"),
    (b"~2\r\n$3\r\nGET\r\n", [[b"~2"], [b"$3"], [b"GET"]], None),  # inline, as Redis
    (b"\n*1\r\n$4\r\nPING\r\n", [[b"PING"]], None),  # an empty inline line, then RESP
]


@pytest.mark.parametrize(("data", "frames", "error"), REDIS_READS)
def test_found_inputs_read_as_redis_reads_them(data: bytes, frames: list[list[bytes]],
                                               error: str | None) -> None:
    assert parse(data) == (frames, None if error is None else f"ERR Protocol error: {error}")


@pytest.mark.parametrize("data", [
    b"*1\r\n*99999999\r\n",
    b"%1\r\n*3000000000\r\n",  # a top-level map with a huge array in it: 22 GB
    b"*2\r\n$4\r\na\r\n%1\r*99999999\r\n\n$1\r\nb",  # after a bulk's two unchecked bytes
    b"*1\r\n" + b"*999999\r\n" * 7,
])
def test_a_huge_count_inside_a_request_allocates_nothing(data: bytes) -> None:
    watch = ft.MemoryWatch(limit=64 << 20)
    ft.parse_request(data, [])
    ft.parse_request(data, [len(data) // 2])
    watch.check(data)


def test_a_refused_frame_waits_for_the_end_of_its_bad_line() -> None:
    """As Redis: "*2\\r\\nc" is answered once the line "c" has ended, with its text."""
    parser = RequestParser()
    assert parser.feed(b"*2\r\nc") == []
    with pytest.raises(ProtocolError, match="expected '\\$', got 'c'"):
        parser.feed(b"\r\n")


def _redis_answers(port: int, data: bytes, replies: int, closes: bool) -> list[object]:
    """What redis-server answers ``data``: its replies, having closed if ``closes``."""
    reader = hiredis.Reader()
    got: list[object] = []
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(data)
        deadline = time.monotonic() + 5
        closed = False
        while (len(got) < replies or (closes and not closed)) and time.monotonic() < deadline:
            chunk = sock.recv(65536)
            closed = not chunk
            reader.feed(chunk)
            while (reply := reader.gets()) is not False:
                got.append(reply)
            if closed:
                break
        assert closed == closes, f"redis-server {'did not close' if closes else 'closed'}"
    return got


@pytest.mark.parametrize(("data", "frames", "error"), REDIS_READS)
def test_redis_reads_the_found_inputs_so(redis_port: int, data: bytes,
                                        frames: list[list[bytes]], error: str | None) -> None:
    """The table above, checked against redis-server itself."""
    got = _redis_answers(redis_port, data, len(frames) + (error is not None), error is not None)
    assert len(got) == len(frames) + (error is not None)
    if error is not None:
        assert str(got[-1]) == f"ERR Protocol error: {error}"


def test_a_byte_that_is_not_utf8_is_quoted_back_raw(redis_port: int) -> None:
    """Found by fuzzing a connection: '\\xcb' came back as the two bytes of U+00CB."""
    data = b"*2\r\n\xcb1\r\nc\r\n"
    _, error = parse(data)
    assert error is not None
    with socket.create_connection(("127.0.0.1", redis_port), timeout=5) as sock:
        sock.sendall(data)
        redis_says = b"".join(iter(lambda: sock.recv(65536), b""))
    assert encode(RespError(error), False) == redis_says == (
        b"-ERR Protocol error: expected '$', got '\xcb'\r\n")
