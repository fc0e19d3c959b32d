"""COMMAND DOCS, COMMAND INFO and COMMAND GETKEYS against a real redis-server 7.0, byte for
byte in RESP2 and RESP3, for every command and subcommand respkv and Redis both have.

Our replies come from the handlers, encoded as our server sends them. Redis lists a
container's subcommands (CONFIG GET, CLIENT ID...) in its hash table's order, which
changes from run to run, and respkv has fewer of them: a container is compared without
its subcommands, each subcommand on its own (``COMMAND DOCS config|get``).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from redis_diff import RawConnection

import respkv.commands  # noqa: F401  (registers every command)
from respkv.commands.docs import capture, redis_references
from respkv.commands.server import reported_flags
from respkv.commands.subcommands import subcommand
from respkv.commands.table import COMMANDS, Command
from respkv.protocol.reply import Reply, RespError, encode


def _both_have() -> dict[str, Command]:
    """Full name -> table entry, for every visible command and subcommand Redis has."""
    found = {}
    for name, cmd in COMMANDS.items():
        if cmd.internal:
            continue
        found[name] = cmd
        for sub_name, sub in cmd.subcommands.items():
            if not sub.internal:
                found[f"{name}|{sub_name}"] = sub
    redis = redis_references()
    return {name: cmd for name, cmd in found.items() if name in redis}


BOTH = _both_have()
NAMES = sorted(BOTH)


# Where respkv's flags are not Redis 7.0's, on purpose: COMMAND INFO then differs in
# the flags and in the ACL categories they imply, and in nothing else. Any other
# command must report Redis' flags exactly.
FLAGS_DIFFER = {
    "pfcount": "a write here: it stores the count it computes, through the log",
    "object|help": "runs as a read of the keyspace, as the other OBJECT subcommands",
}


def _flags_differ(name: str) -> bool:
    return name in FLAGS_DIFFER


def test_only_the_listed_commands_differ_in_flags() -> None:
    differ = {name for name in NAMES
              if set(reported_flags(BOTH[name])) != set(redis_references()[name].flags)}
    assert differ == set(FLAGS_DIFFER)


def ours(*args: bytes) -> Reply:
    """COMMAND ... as the server runs it (it needs neither the server nor the session)."""
    try:
        return subcommand(None, None, [b"COMMAND", *args])  # type: ignore[arg-type]
    except RespError as error:
        return error


@pytest.fixture(scope="module", params=[False, True], ids=["resp2", "resp3"])
def redis(redis_port: int, request: pytest.FixtureRequest) -> Iterator[RawConnection]:
    conn = RawConnection(redis_port, 0, resp3=request.param)
    yield conn
    conn.close()


def _typed(raw: bytes, resp3: bool) -> object:
    """redis-server's reply with its RESP types kept (sets, simple strings), to be
    encoded again by our encoder after a field is left out: the same bytes as long as
    nothing is (checked here), so comparing encodings compares redis-server's bytes."""
    reply = capture.parse_typed(raw)[0]
    assert encode(reply, resp3) == raw
    return reply


def _drop_field(fields: object, name: str) -> object:
    """A map without one field; in RESP2 a map is a flat array of pairs."""
    if isinstance(fields, dict):
        return {k: v for k, v in fields.items() if k != name}
    assert isinstance(fields, list)
    pairs = list(zip(fields[::2], fields[1::2], strict=True))
    return [item for key, value in pairs if key != name for item in (key, value)]


def _docs_fields(reply: object) -> object:
    """The one command's docs in a COMMAND DOCS reply."""
    if isinstance(reply, dict):
        (fields,) = reply.values()
        return fields
    assert isinstance(reply, list) and len(reply) == 2
    return reply[1]


# -- COMMAND DOCS ----------------------------------------------------------------------


@pytest.mark.parametrize("name", NAMES)
def test_docs_like_redis(redis: RawConnection, name: str) -> None:
    theirs = redis.call(b"COMMAND", b"DOCS", name.encode())
    mine = ours(b"DOCS", name.encode())
    if not BOTH[name].subcommands:
        assert encode(mine, redis.resp3) == theirs
        return
    ours_fields = _drop_field(_docs_fields(mine), "subcommands")
    theirs_fields = _drop_field(_docs_fields(_typed(theirs, redis.resp3)), "subcommands")
    assert encode(ours_fields, redis.resp3) == encode(theirs_fields, redis.resp3)


@pytest.mark.parametrize("name", sorted(n for n, c in BOTH.items() if c.subcommands))
def test_docs_of_a_container_list_its_subcommands(redis: RawConnection, name: str) -> None:
    """Each of the table's subcommands, as COMMAND DOCS config|get would answer it."""
    mine = ours(b"DOCS", name.encode())
    listed = _docs_fields(mine)["subcommands"]
    visible = [s for s in BOTH[name].subcommands.values() if not s.internal]
    assert list(listed) == [f"{name}|{s.name}" for s in visible]
    for full, fields in listed.items():
        alone = ours(b"DOCS", full.encode())
        assert encode(alone, redis.resp3) == encode({full: fields}, redis.resp3)


def test_docs_of_several_and_unknown_commands(redis: RawConnection) -> None:
    args = (b"DOCS", b"get", b"no-such-command", b"Set", b"config|get", b"config|nope")
    assert encode(ours(*args), redis.resp3) == redis.call(b"COMMAND", *args)


def test_docs_of_everything_has_every_visible_command() -> None:
    everything = ours(b"DOCS")
    assert list(everything) == [n for n, c in COMMANDS.items() if not c.internal]
    assert everything["set"] == ours(b"DOCS", b"set")["set"]
    assert everything["config"]["subcommands"]["config|get"]["arguments"][0]["name"] == \
        "parameter"


# -- COMMAND INFO ----------------------------------------------------------------------

# COMMAND INFO's fields: name, arity, flags, first, last, step, ACL categories, tips,
# key specs, subcommands.
FLAGS, CATEGORIES, SUBCOMMANDS = 2, 6, 9


def _info_without(entry: list, fields: tuple[int, ...]) -> list:
    return [None if i in fields else value for i, value in enumerate(entry)]


@pytest.mark.parametrize("name", NAMES)
def test_info_like_redis(redis: RawConnection, name: str) -> None:
    theirs = redis.call(b"COMMAND", b"INFO", name.encode())
    mine = ours(b"INFO", name.encode())
    flags_differ = _flags_differ(name)
    if not BOTH[name].subcommands and not flags_differ:
        assert encode(mine, redis.resp3) == theirs
        return
    # Left out: a container's subcommands (compared one by one), flags that differ.
    left_out = (SUBCOMMANDS,) if BOTH[name].subcommands else ()
    if flags_differ:
        left_out += (FLAGS, CATEGORIES)
    (their_entry,) = _typed(theirs, redis.resp3)
    (my_entry,) = mine
    assert encode(_info_without(my_entry, left_out), redis.resp3) == \
        encode(_info_without(their_entry, left_out), redis.resp3)
    if not flags_differ:
        assert encode(my_entry[FLAGS], redis.resp3) == encode(their_entry[FLAGS], redis.resp3)


@pytest.mark.parametrize("name", sorted(n for n, c in BOTH.items() if c.subcommands))
def test_info_of_a_container_lists_its_subcommands(redis: RawConnection, name: str) -> None:
    (entry,) = ours(b"INFO", name.encode())
    visible = [s for s in BOTH[name].subcommands.values() if not s.internal]
    assert [sub[0] for sub in entry[SUBCOMMANDS]] == [f"{name}|{s.name}" for s in visible]
    for sub in entry[SUBCOMMANDS]:
        assert encode(ours(b"INFO", sub[0].encode()), redis.resp3) == \
            encode([sub], redis.resp3)


@pytest.mark.parametrize("name", ["lmpop", "blmpop", "sintercard", "zunionstore",
                                  "zinterstore", "zdiffstore", "zunion", "zinter", "zdiff",
                                  "zintercard", "zmpop"])
def test_movable_keys_have_redis_keynum_specs(redis: RawConnection, name: str) -> None:
    """The key specs of commands whose keys an argument counts are Redis' keynum ones
    (compared alone too: a command whose flags differ, BLMPOP, still has Redis' specs)."""
    (entry,) = ours(b"INFO", name.encode())
    (their_entry,) = _typed(redis.call(b"COMMAND", b"INFO", name.encode()), redis.resp3)
    assert any(spec["find_keys"]["type"] == "keynum" for spec in entry[8])
    assert encode(entry[8], redis.resp3) == encode(their_entry[8], redis.resp3)


def test_info_of_several_and_unknown_commands(redis: RawConnection) -> None:
    args = (b"INFO", b"get", b"no-such-command", b"MSET", b"object|encoding", b"lmpop")
    assert encode(ours(*args), redis.resp3) == redis.call(b"COMMAND", *args)


def test_list_by_acl_category(redis: RawConnection) -> None:
    """ACL categories from Redis' data: the @keyspace commands respkv and Redis both have
    (Redis lists subcommands too, "object|encoding"; respkv's COMMAND LIST does not)."""
    mine = set(ours(b"LIST", b"FILTERBY", b"ACLCAT", b"keyspace"))
    theirs = set(capture.parse_typed(
        redis.call(b"COMMAND", b"LIST", b"FILTERBY", b"ACLCAT", b"keyspace"))[0])
    assert mine == {n for n in theirs if n in BOTH and "|" not in n}


def test_the_data_file_is_what_redis_server_says(redis_port: int) -> None:
    """The shipped redis-7.0.json rebuilds redis-server's COMMAND DOCS and COMMAND INFO
    of every Redis command, byte for byte (what the capture checks before writing)."""
    entries = {ref.name: {"docs": dict(ref.docs), "info": {
        "arity": ref.arity, "flags": list(ref.flags), "keys": list(ref.keys or ()),
        "acl_categories": list(ref.acl_categories), "tips": list(ref.tips),
        "key_specs": list(ref.key_specs)}} for ref in redis_references().values()}
    capture.check(entries, redis_port)


# -- COMMAND GETKEYS -------------------------------------------------------------------

GETKEYS = [
    ("LMPOP", "2", "a", "b", "LEFT"),
    ("LMPOP", "1", "a", "RIGHT", "COUNT", "3"),
    ("BLMPOP", "0", "3", "a", "b", "c", "LEFT"),
    ("SINTERCARD", "2", "a", "b"),
    ("SINTERCARD", "3", "a", "b", "c", "LIMIT", "1"),
    ("ZUNIONSTORE", "dest", "2", "a", "b"),
    ("ZINTERSTORE", "dest", "2", "a", "b", "WEIGHTS", "1", "2"),
    ("ZDIFFSTORE", "dest", "1", "a"),
    ("ZUNION", "2", "a", "b", "WITHSCORES"),
    ("ZINTER", "1", "a"),
    ("ZDIFF", "2", "a", "b"),
    ("ZINTERCARD", "2", "a", "b", "LIMIT", "5"),
    ("ZMPOP", "2", "a", "b", "MIN"),
    ("MSET", "a", "1", "b", "2"),
    ("GET", "k"),
    ("OBJECT", "ENCODING", "k"),
    ("RENAME", "a", "b"),
    ("WATCH", "a", "b"),
    ("BLPOP", "a", "b", "0"),
    # keys counted by an argument that counts none, too many, or is no number
    ("LMPOP", "0", "a", "LEFT"),
    ("LMPOP", "5", "a", "LEFT"),
    ("LMPOP", "x", "a", "LEFT"),
    ("LMPOP", "-1", "a", "LEFT"),
    ("SINTERCARD", "+1", "a"),
    ("SINTERCARD", " 2", "a", "b"),
    ("ZUNIONSTORE", "dest", "-1", "a"),
    ("ZUNIONSTORE", "dest", "5", "a", "b"),
    ("ZINTERSTORE", "dest", "0", "a"),
    ("ZDIFFSTORE", "dest", "x", "a"),
    ("ZUNION", "3", "a", "b"),
    ("BLMPOP", "0", "9", "a", "LEFT"),
    # no keys: shard channels are not keys to GETKEYS, though the table places them
    ("SSUBSCRIBE", "ch"),
    ("SPUBLISH", "ch", "m"),
    ("CONFIG", "GET", "x"),
    # errors
    ("NOPE", "k"),
    ("ECHO", "a"),
    ("GET", "a", "b"),
    ("OBJECT", "NOPE", "k"),
    ("OBJECT", "HELP", "x"),
    ("OBJECT", "ENCODING"),
]


@pytest.mark.parametrize("call", GETKEYS, ids=" ".join)
def test_getkeys_like_redis(redis: RawConnection, call: tuple[str, ...]) -> None:
    args = [b"GETKEYS", *(a.encode() for a in call)]
    assert encode(ours(*args), redis.resp3) == redis.call(b"COMMAND", *args)
