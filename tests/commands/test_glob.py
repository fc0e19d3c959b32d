"""Glob matching, against answers a real redis-server 7.0.15 gave to KEYS."""

from __future__ import annotations

import pytest

from respkv.commands.glob import stringmatch


@pytest.mark.parametrize(
    ("pattern", "string", "matches"),
    [
        (b'**', b'', False),
        (b'', b'', True),
        (b'?', b'', False),
        (b'h?llo', b'hello', True),
        (b'h?llo', b'hllo', False),
        (b'h*llo', b'hllo', True),
        (b'h*llo', b'heeeello', True),
        (b'h[ae]llo', b'hello', True),
        (b'h[ae]llo', b'hillo', False),
        (b'h[^e]llo', b'hallo', True),
        (b'h[^e]llo', b'hello', False),
        (b'h[a-b]llo', b'hbllo', True),
        (b'h[b-a]llo', b'hallo', True),
        (b'h\\*llo', b'h*llo', True),
        (b'h\\*llo', b'hello', False),
        (b'\\', b'\\', True),
        (b'a\\', b'a\\', True),
        (b'[', b'[', False),
        (b'[', b'a', False),
        (b'[^', b'x', True),
        (b'[^', b'', False),
        (b'[abc', b'c', True),
        (b'[abc', b'cx', False),
        (b'[a-]', b'b', False),
        (b'[a-]', b']', True),
        (b'[a-]', b'-', False),
        (b'[]]', b']', False),
        (b'[]]', b'x', False),
        (b'[\\]]', b']', True),
        (b'[\\', b'\\', True),
        (b'[a\\-z]', b'-', True),
        (b'[a\\-z]', b'b', False),
        (b'[a-\xff]', b'b', False),
        (b'[a-\xff]', b'\x01', True),
        (b'[a-\xff]', b'\xff', True),
        (b'[a-\xff]', b'\x80', False),
        (b'[\x80-\x90]', b'\x85', True),
        (b'[^\x80-\x90]', b'\x85', False),
        (b'*a', b'aaa', True),
        (b'*a*', b'bab', True),
        (b'a*b*c', b'abbbc', True),
        (b'a*b*c', b'acb', False),
        (b'*?', b'x', True),
        (b'*?', b'', False),
        (b'?*', b'x', True),
        (b'a*', b'a', True),
        (b'a**', b'a', True),
        (b'a*?', b'a', False),
        (b'*\\', b'x\\', True),
        (b'\\a', b'a', True),
        (b'k\x00*', b'k\x00\r\n', True),
        (b'[\x00]', b'\x00', True),
        (b'[[]', b'[', True),
        (b'[^]', b']', True),
        (b'[^]]', b'a', False),
        (b'[-a]', b'-', True),
        (b'[a-c-e]', b'd', False),
        (b'[a-c-e]', b'-', True),
        (b'[z-a]', b'm', True),
    ],
)
def test_like_redis(pattern: bytes, string: bytes, matches: bool) -> None:
    assert stringmatch(pattern, string) is matches


def test_empty_string_matches_only_empty_pattern() -> None:
    # Redis' loop never runs on b"": KEYS * finds the empty key only by its shortcut.
    assert stringmatch(b"", b"")
    assert not stringmatch(b"*", b"")


@pytest.mark.parametrize(
    ("stars", "trailing", "matches"),
    [(999, False, True), (1000, False, True), (1001, False, False), (1001, True, True),
     (1002, True, False)],
)
def test_nesting_limit(stars: int, trailing: bool, matches: bool) -> None:
    """Redis gives up past 1000 nested '*' (CVE-2022-36021); a last '*' needs no nesting."""
    pattern = b"a*" * stars + (b"" if trailing else b"b")
    string = b"a" * stars + (b"" if trailing else b"b")
    assert stringmatch(pattern, string) is matches


def test_long_pattern_is_fast() -> None:
    # Exponential with naive backtracking; linear-ish here.
    assert not stringmatch(b"a*" * 30 + b"b", b"a" * 5000)
