"""The table entries: arity, flags and key positions as redis-server 7.0.15's COMMAND INFO."""

from __future__ import annotations

import pytest

import respkv.commands  # noqa: F401  (registers every command)
from respkv.commands.table import COMMANDS, Kind

# name: (arity, flags, (first key, last key, step)), from COMMAND INFO on Redis 7.0.15.
REDIS = {
    "get": (2, ('fast', 'readonly'), (1, 1, 1)),
    "set": (-3, ('denyoom', 'write'), (1, 1, 1)),
    "setnx": (3, ('denyoom', 'fast', 'write'), (1, 1, 1)),
    "setex": (4, ('denyoom', 'write'), (1, 1, 1)),
    "psetex": (4, ('denyoom', 'write'), (1, 1, 1)),
    "getset": (3, ('denyoom', 'fast', 'write'), (1, 1, 1)),
    "getdel": (2, ('fast', 'write'), (1, 1, 1)),
    "getex": (-2, ('fast', 'write'), (1, 1, 1)),
    "mget": (-2, ('fast', 'readonly'), (1, -1, 1)),
    "mset": (-3, ('denyoom', 'write'), (1, -1, 2)),
    "msetnx": (-3, ('denyoom', 'write'), (1, -1, 2)),
    "incr": (2, ('denyoom', 'fast', 'write'), (1, 1, 1)),
    "decr": (2, ('denyoom', 'fast', 'write'), (1, 1, 1)),
    "incrby": (3, ('denyoom', 'fast', 'write'), (1, 1, 1)),
    "decrby": (3, ('denyoom', 'fast', 'write'), (1, 1, 1)),
    "incrbyfloat": (3, ('denyoom', 'fast', 'write'), (1, 1, 1)),
    "append": (3, ('denyoom', 'fast', 'write'), (1, 1, 1)),
    "strlen": (2, ('fast', 'readonly'), (1, 1, 1)),
    "getrange": (4, ('readonly',), (1, 1, 1)),
    "setrange": (4, ('denyoom', 'write'), (1, 1, 1)),
    "substr": (4, ('readonly',), (1, 1, 1)),
    "del": (-2, ('write',), (1, -1, 1)),
    "unlink": (-2, ('fast', 'write'), (1, -1, 1)),
    "exists": (-2, ('fast', 'readonly'), (1, -1, 1)),
    "type": (2, ('fast', 'readonly'), (1, 1, 1)),
    "rename": (3, ('write',), (1, 2, 1)),
    "renamenx": (3, ('fast', 'write'), (1, 2, 1)),
    "copy": (-3, ('denyoom', 'write'), (1, 2, 1)),
    "touch": (-2, ('fast', 'readonly'), (1, -1, 1)),
    "keys": (2, ('readonly',), (0, 0, 0)),
    "scan": (-2, ('readonly',), (0, 0, 0)),
    "randomkey": (1, ('readonly',), (0, 0, 0)),
    "dbsize": (1, ('fast', 'readonly'), (0, 0, 0)),
    "flushdb": (-1, ('write',), (0, 0, 0)),
    "flushall": (-1, ('write',), (0, 0, 0)),
    "expire": (-3, ('fast', 'write'), (1, 1, 1)),
    "pexpire": (-3, ('fast', 'write'), (1, 1, 1)),
    "expireat": (-3, ('fast', 'write'), (1, 1, 1)),
    "pexpireat": (-3, ('fast', 'write'), (1, 1, 1)),
    "ttl": (2, ('fast', 'readonly'), (1, 1, 1)),
    "pttl": (2, ('fast', 'readonly'), (1, 1, 1)),
    "persist": (2, ('fast', 'write'), (1, 1, 1)),
    "expiretime": (2, ('fast', 'readonly'), (1, 1, 1)),
    "pexpiretime": (2, ('fast', 'readonly'), (1, 1, 1)),
}


@pytest.mark.parametrize("name", sorted(REDIS))
def test_entry_like_redis(name: str) -> None:
    arity, flags, keys = REDIS[name]
    entry = COMMANDS[name]
    assert entry.arity == arity
    assert tuple(sorted(entry.flags)) == flags
    assert (entry.first_key, entry.last_key, entry.step) == keys
    assert entry.kind is (Kind.WRITE if "write" in flags else Kind.READ)
    assert entry.summary


def test_key_positions() -> None:
    assert list(COMMANDS["mset"].keys([b"mset", b"a", b"1", b"b", b"2"])) == [b"a", b"b"]
    assert list(COMMANDS["del"].keys([b"del", b"a", b"b"])) == [b"a", b"b"]
    assert list(COMMANDS["copy"].keys([b"copy", b"a", b"b", b"REPLACE"])) == [b"a", b"b"]
    assert list(COMMANDS["scan"].keys([b"scan", b"0"])) == []


@pytest.mark.parametrize(
    ("name", "family"),
    [("get", "string"), ("incrbyfloat", "string"), ("del", "generic"), ("ttl", "generic"),
     ("dbsize", "server"), ("flushall", "server")],
)
def test_families(name: str, family: str) -> None:
    assert COMMANDS[name].family == family
