"""Redis' glob matching (util.c stringmatchlen), byte for byte.

Supported: ``*``, ``?``, ``[abc]``, ``[^abc]``, ``[a-z]`` (reversed ranges
too), and ``\\`` escapes, with Redis' quirks kept: an unterminated ``[`` class
runs to the end of the pattern, range bounds compare as signed C chars, and a
pattern needing more than 1000 nested ``*`` never matches (Redis' guard), and
the empty string matches only the empty pattern (KEYS/SCAN special-case "*").

Written as the usual backtrack-to-last-star loop instead of Redis' recursion:
both give the same answers (Redis' skipLongerMatches makes its recursion
behave exactly so), and this one needs no Python stack.
"""

from __future__ import annotations

_STAR, _QMARK, _LBRACKET, _RBRACKET = 0x2A, 0x3F, 0x5B, 0x5D
_BACKSLASH, _CARET, _DASH = 0x5C, 0x5E, 0x2D
_MAX_NESTING = 1000


def _signed(byte: int) -> int:
    """A byte as C's (signed) char, as Redis compares range bounds."""
    return byte - 256 if byte > 127 else byte


def _at(pattern: bytes, i: int) -> int:
    """pattern[i], or the NUL that ends an sds when i is past the end."""
    return pattern[i] if i < len(pattern) else 0


def _match_class(pattern: bytes, p: int, char: int) -> tuple[bool, int]:
    """Match one char against the class whose '[' is at p.

    Returns (matched, index of the last pattern byte the class used).
    """
    end = len(pattern)
    p += 1
    negate = _at(pattern, p) == _CARET
    if negate:
        p += 1
    matched = False
    while True:
        if _at(pattern, p) == _BACKSLASH and end - p >= 2:
            p += 1
            if pattern[p] == char:
                matched = True
        elif _at(pattern, p) == _RBRACKET:
            break
        elif p >= end:
            p -= 1  # unterminated: the class ends with the pattern
            break
        elif end - p >= 3 and pattern[p + 1] == _DASH:
            low, high = _signed(pattern[p]), _signed(pattern[p + 2])
            if low > high:
                low, high = high, low
            p += 2
            if low <= _signed(char) <= high:
                matched = True
        elif pattern[p] == char:
            matched = True
        p += 1
    return matched != negate, p


def _match_one(pattern: bytes, p: int, char: int) -> tuple[bool, int]:
    """Match one non-star pattern element at p; returns (matched, next p)."""
    head = pattern[p]
    if head == _QMARK:
        return True, p + 1
    if head == _LBRACKET:
        matched, last = _match_class(pattern, p, char)
        return matched, last + 1
    if head == _BACKSLASH and len(pattern) - p >= 2:
        p += 1
    return pattern[p] == char, p + 1


def stringmatch(pattern: bytes, string: bytes) -> bool:
    """True if ``string`` matches the glob ``pattern`` as Redis KEYS/SCAN MATCH."""
    if not string:
        return not pattern  # Redis' loop never runs: even "*" misses b""
    p = s = 0
    plen, slen = len(pattern), len(string)
    star_p = star_s = -1
    stars = 0
    while s < slen:
        if p < plen and pattern[p] == _STAR:
            while p + 1 < plen and pattern[p + 1] == _STAR:
                p += 1
            if p + 1 == plen:
                return True
            stars += 1
            if stars > _MAX_NESTING:
                return False
            star_p, star_s = p, s
            p += 1
            continue
        if p < plen:
            matched, next_p = _match_one(pattern, p, string[s])
            if matched:
                p, s = next_p, s + 1
                continue
        if star_p < 0:
            return False
        star_s += 1  # let the last star swallow one more byte
        p, s = star_p + 1, star_s
    while p < plen and pattern[p] == _STAR:
        p += 1
    return p == plen
