"""The table entries: arity, flags and key positions as redis-server 7.0.15's COMMAND INFO;
summary, since and family as its COMMAND DOCS; every visible command documented."""

from __future__ import annotations

import pytest

import respkv.commands  # noqa: F401  (registers every command)
from respkv.commands import docs
from respkv.commands.table import COMMANDS, Command, Kind

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


# -- documentation: the table against the data files of respkv.commands.docs -----------


def _visible_entries() -> list[tuple[str, Command]]:
    """(full name, entry) of every command and subcommand clients can see."""
    found = []
    for name, cmd in COMMANDS.items():
        if not cmd.internal:
            found.append((name, cmd))
            found += [(f"{name}|{sub_name}", sub) for sub_name, sub in cmd.subcommands.items()
                      if not sub.internal]
    return found


VISIBLE = _visible_entries()


@pytest.mark.parametrize("name", [n for n, _ in VISIBLE])
def test_documented(name: str) -> None:
    """Every command COMMAND DOCS lists is documented: by Redis 7.0 for Redis' commands,
    by respkv.json for the others."""
    ref = docs.reference(name)
    assert ref is not None, f"{name}: neither Redis 7.0 nor respkv.json documents it"
    assert ref.docs.get("summary") and ref.docs.get("since") and ref.docs.get("group")


@pytest.mark.parametrize("name", sorted(n for n, _ in VISIBLE if n in docs.redis_references()))
def test_table_agrees_with_redis_docs(name: str) -> None:
    """Summary, since and family (COMMAND DOCS' group) are the table's where it gives
    them (else COMMAND DOCS takes Redis'): they must be Redis' own. A command's since
    must be right even where it is the default; a subcommand registered without one
    (CLIENT ID: its module's helper takes none) gets Redis'."""
    cmd = dict(VISIBLE)[name]
    redis = docs.redis_references()[name].docs
    assert cmd.family == redis["group"]
    if cmd.summary:
        assert cmd.summary == redis["summary"]
    if cmd.since_given or "|" not in name:
        assert cmd.since == redis["since"]


def test_respkv_docs_are_for_respkv_commands() -> None:
    """respkv.json documents only commands of the table that Redis 7.0 does not have."""
    visible = dict(VISIBLE)
    for name, ref in docs.respkv_references().items():
        assert name not in docs.redis_references(), f"{name}: Redis documents it already"
        assert name in visible, f"{name}: no such command in the table"
        assert ref.docs["group"] == visible[name].family
        if visible[name].summary:
            assert ref.docs["summary"] == visible[name].summary


def test_redis_data_is_redis_7_0() -> None:
    refs = docs.redis_references()
    assert len(refs) > 300 and all(ref.has_info for ref in refs.values())
    set_docs = refs["set"].docs
    assert [a["name"] for a in set_docs["arguments"]] == [
        "key", "value", "condition", "get", "expiration"]
    assert refs["lmpop"].key_specs[0]["find_keys"] == {
        "type": "keynum", "spec": {"keynumidx": 0, "firstkey": 1, "keystep": 1}}


@pytest.mark.parametrize(("call", "keys"), [
    ((b"lmpop", b"2", b"a", b"b", b"LEFT"), [b"a", b"b"]),
    ((b"blmpop", b"0", b"1", b"a", b"LEFT"), [b"a"]),
    ((b"sintercard", b"2", b"a", b"b", b"LIMIT", b"1"), [b"a", b"b"]),
    ((b"zunionstore", b"d", b"2", b"a", b"b"), [b"d", b"a", b"b"]),
    ((b"zinter", b"1", b"a", b"WITHSCORES"), [b"a"]),
    ((b"lmpop", b"3", b"a", b"LEFT"), []),
])
def test_movable_key_positions(call: tuple[bytes, ...], keys: list[bytes]) -> None:
    assert list(COMMANDS[call[0].decode()].keys(list(call))) == keys
