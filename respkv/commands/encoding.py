"""The encoding names OBJECT ENCODING reports, by Redis 7.0's rules and thresholds.

respkv keeps one representation per type; the name is what Redis would use for a
value of this size and content (the thresholds are the node's CONFIG settings),
so tools that look at it see familiar answers. Unlike Redis, the answer follows
the current contents: a collection that shrinks back reports the compact name.
"""

from __future__ import annotations

from dataclasses import dataclass

from respkv.config import Config
from respkv.state.values import HashValue, ListValue, SetValue, ZSetValue

_EMBSTR_LIMIT = 44  # bytes: Redis' OBJ_ENCODING_EMBSTR_SIZE_LIMIT
_INT64_MIN, _INT64_MAX = -(1 << 63), (1 << 63) - 1


@dataclass
class Thresholds:
    hash_max_listpack_entries: int = 128
    hash_max_listpack_value: int = 64
    set_max_intset_entries: int = 512
    zset_max_listpack_entries: int = 128
    zset_max_listpack_value: int = 64


THRESHOLDS = Thresholds()


def configure(config: Config) -> None:
    """Take the thresholds from the node's config (at start-up and after CONFIG SET)."""
    for name in vars(THRESHOLDS):
        setattr(THRESHOLDS, name, getattr(config, name))


def is_int64(raw: bytes) -> bool:
    """A string Redis stores as an integer: canonical decimal form, in range."""
    if not raw or len(raw) > 20:
        return False
    digits = raw[1:] if raw[:1] == b"-" else raw
    if not digits.isdigit() or (digits[:1] == b"0" and len(raw) > 1):
        return False
    return _INT64_MIN <= int(raw) <= _INT64_MAX


def encoding_of(value: object) -> str:
    limits = THRESHOLDS
    if type(value) is bytes:
        if is_int64(value):
            return "int"
        # PFADD builds its strings raw, whatever their length; the encoding is read
        # from the contents, so a value with HyperLogLog's magic counts as one.
        if len(value) <= _EMBSTR_LIMIT and value[:4] != b"HYLL":
            return "embstr"
        return "raw"
    if type(value) is ListValue:
        return "quicklist"
    if type(value) is SetValue:
        small = len(value) <= limits.set_max_intset_entries
        return "intset" if small and all(map(is_int64, value.members)) else "hashtable"
    if type(value) is HashValue:
        fits = len(value) <= limits.hash_max_listpack_entries and all(
            len(field) <= limits.hash_max_listpack_value
            and len(item) <= limits.hash_max_listpack_value
            for field, item in value.fields.items())
        return "listpack" if fits else "hashtable"
    if type(value) is ZSetValue:
        fits = len(value) <= limits.zset_max_listpack_entries and all(
            len(member) <= limits.zset_max_listpack_value for member in value.scores)
        return "listpack" if fits else "skiplist"
    raise TypeError(f"no encoding for {type(value).__name__}")
