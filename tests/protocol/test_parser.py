"""The request parser alone: the same requests whatever the reads' boundaries, inline
pipelines split at once, and what it holds of an incomplete request."""

from __future__ import annotations

import hiredis
import pytest

from respkv.protocol.parser import MAX_INLINE, ProtocolError, RequestParser

STREAM = (b"PING\r\nSET \"a b\" 'c d'\n\r\n" + hiredis.pack_command(("ECHO", "x" * 300))
          + b"GET k\r\n*2\r\n$4\r\nECHO\r\n$2\r\n\r\n\r\n" + b"ECHO \"q\\x41\"\r\n")
EXPECTED = [[b"PING"], [b"SET", b"a b", b"c d"], [b"ECHO", b"x" * 300], [b"GET", b"k"],
            [b"ECHO", b"\r\n"], [b"ECHO", b"qA"]]


def parse_in_pieces(data: bytes, size: int) -> list[list[bytes]]:
    parser = RequestParser()
    frames: list[list[bytes]] = []
    for i in range(0, len(data), size):
        frames += parser.feed(data[i : i + size])
    assert parser.pending == 0
    return frames


@pytest.mark.parametrize("size", [1, 2, 3, 7, 64, 1000])
def test_same_requests_whatever_the_reads(size: int) -> None:
    assert parse_in_pieces(STREAM, size) == EXPECTED


def test_inline_pipeline_in_one_read() -> None:
    parser = RequestParser()
    assert parser.feed(b"PING\r\n" * 1000 + b"ECHO a\r\n" + b"INCR n\n" * 10 + b"GET") == (
        [[b"PING"]] * 1000 + [[b"ECHO", b"a"]] + [[b"INCR", b"n"]] * 10)
    assert parser.pending == 3
    assert parser.feed(b" k\r\n") == [[b"GET", b"k"]]


def test_bad_line_in_a_pipeline_keeps_the_requests_before_it() -> None:
    with pytest.raises(ProtocolError) as caught:
        RequestParser().feed(b"PING\r\nECHO \"open\r\nPING\r\n")
    assert caught.value.frames == [[b"PING"]]  # type: ignore[attr-defined]
    assert caught.value.reply_text == "ERR Protocol error: unbalanced quotes in request"


def test_trickled_inline_line_grows_until_its_limit() -> None:
    parser = RequestParser()
    parser.feed(b"E")
    for _ in range(MAX_INLINE - 1):
        assert parser.feed(b"a") == []
    assert parser.pending == MAX_INLINE
    with pytest.raises(ProtocolError, match="too big inline request"):
        parser.feed(b"a")


def test_held_counts_a_request_whole() -> None:
    """``pending`` is the incomplete request; ``held`` also the one a read completed,
    as Redis' query buffer holds a request whole before it runs it."""
    request = hiredis.pack_command(("SET", "k", b"v" * 10_000))
    parser = RequestParser()
    assert parser.feed(request[:4000]) == []
    assert parser.pending == parser.held == 4000
    assert parser.feed(request[4000:] + b"*1\r\n$4\r\nPI") == [[b"SET", b"k", b"v" * 10_000]]
    assert parser.pending == 10
    assert parser.held == len(request)
    assert parser.feed(b"NG\r\n") == [[b"PING"]]
    assert parser.held == 10 + 4


def test_big_bulk_refused_before_its_payload() -> None:
    parser = RequestParser(max_bulk=1000)
    with pytest.raises(ProtocolError, match="invalid bulk length"):
        parser.feed(b"*2\r\n$3\r\nSET\r\n$1001\r\n")


def test_many_arguments_across_reads() -> None:
    args = [b"RPUSH", b"k", *(b"%d" % i for i in range(50_000))]
    assert parse_in_pieces(hiredis.pack_command(tuple(args)), 65536) == [args]
