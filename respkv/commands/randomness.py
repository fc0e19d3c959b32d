"""Randomness a write command may use inside apply (SPOP, SRANDMEMBER in a script...).

Apply must be a pure function of (state, entry), so a write's random choices come
from a generator seeded by the entry itself (its time and arguments): every node
draws the same members. Reads may use any randomness; this is for writes.
"""

from __future__ import annotations

import hashlib
import random


def entry_random(args: list[bytes], now: int) -> random.Random:
    digest = hashlib.blake2b(b"%d" % now, digest_size=8)
    for arg in args:
        digest.update(b"%d:" % len(arg))
        digest.update(arg)
    return random.Random(int.from_bytes(digest.digest(), "little"))
