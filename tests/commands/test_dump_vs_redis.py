"""DUMP and RESTORE against a real redis-server 7.0: payloads move both ways.

Values are made on redis-server with its own commands, small and large so that each
of its encodings is hit (int, raw and LZF strings; listpack quicklists; intsets and
hashtable sets; listpack and skiplist sorted sets; listpack and hashtable hashes),
DUMPed there and RESTOREd into our keyspace; and the other way, our DUMP is RESTOREd
into redis-server. Contents are compared with LRANGE / SMEMBERS / ZRANGE WITHSCORES /
HGETALL on redis' side and the values in our keyspace, in order where Redis' is
definite. Strings' payloads are byte-identical to redis-server's; replies of DUMP and
RESTORE (errors included) are diffed byte for byte with ``differ``.

Where we part from redis-server: it accepts, without sanitize-dump-payload, some
corrupt payloads (duplicate fields, odd listpacks, unsorted intsets) that we refuse as
it does with sanitize-dump-payload yes; and it loads streams, which we have no type for.
"""

from __future__ import annotations

import random
import struct
from collections.abc import Iterator

import pytest
from commands_support import BINARY, NOW, call, to_bytes
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from redis_diff import Differ, RawConnection, parse
from test_dump import binary_double, listpack, payload, rlen, rstr

from respkv.commands.dump import dump_payload
from respkv.protocol.reply import OK as OURS_OK
from respkv.state.keyspace import Keyspace
from respkv.state.values import HashValue, ListValue, SetValue, ZSetValue

OK = b"OK"  # as redis-server answers (parsed); ours is the reply value OURS_OK


class Redis:
    """A connection to redis-server's db 2 (the differ uses 0 and 1), parsed replies."""

    def __init__(self, port: int) -> None:
        self.connection = RawConnection(port, 2, resp3=False)

    def __call__(self, *args: object) -> object:
        return parse(self.connection.call(*[to_bytes(a) for a in args]))

    def value(self, key: bytes) -> object:
        """The value at ``key`` as respkv's type, read with redis' own commands."""
        kind = self("TYPE", key)
        if kind == b"string":
            return self("GET", key)
        if kind == b"list":
            return ListValue(self("LRANGE", key, 0, -1))
        if kind == b"set":
            return SetValue(self("SMEMBERS", key))
        if kind == b"zset":
            flat = self("ZRANGE", key, 0, -1, "WITHSCORES")
            return ZSetValue({m: float(s) for m, s in zip(flat[::2], flat[1::2], strict=True)})
        if kind == b"hash":
            flat = self("HGETALL", key)
            return HashValue(dict(zip(flat[::2], flat[1::2], strict=True)))
        raise AssertionError(f"unexpected type {kind!r}")

    def encoding(self, key: bytes) -> bytes:
        return self("OBJECT", "ENCODING", key)


@pytest.fixture
def redis(redis_port: int) -> Iterator[Redis]:
    connection = Redis(redis_port)
    connection("FLUSHDB")
    try:
        yield connection
    finally:
        connection.connection.close()


def same(ours: object, theirs: object, redis: Redis, key: bytes,
         made: bool = False) -> None:
    """Equal contents; and where ours was read from redis' payload (not ``made`` by the
    test), equal order where Redis' is definite (intsets, listpack hashes) and scores
    bit for bit (-0.0 is not 0.0; Redis itself stores an integral score in a listpack as
    an integer, so a made -0.0 may come back 0)."""
    assert ours == theirs
    encoding = redis.encoding(key)
    if isinstance(ours, HashValue) and encoding == b"listpack":
        assert list(ours.fields.items()) == list(theirs.fields.items())
    if isinstance(ours, ZSetValue):
        assert list(ours.ordered) == list(theirs.ordered)
    if made:
        return
    if isinstance(ours, SetValue) and encoding == b"intset":
        assert ours.members == theirs.members
    if isinstance(ours, ZSetValue):
        assert {m: struct.pack("<d", s) for m, s in ours.scores.items()} == \
            {m: struct.pack("<d", s) for m, s in theirs.scores.items()}


def both_ways(redis: Redis, key: bytes) -> object:
    """``key`` (made on redis) DUMPed there and RESTOREd here, then our DUMP of it
    RESTOREd there under another name: each copy must hold what redis' key holds."""
    theirs = redis.value(key)
    db = Keyspace()
    assert call(db, "RESTORE", key, 0, redis("DUMP", key), now=NOW) == OURS_OK
    ours = db.data[key]
    same(ours, theirs, redis, key)
    ours_payload = call(db, "DUMP", key, now=NOW)
    assert redis("RESTORE", b"copy", 0, ours_payload) == OK
    same(ours, redis.value(b"copy"), redis, b"copy")
    redis("DEL", b"copy")
    return ours


def members(n: int, prefix: bytes = b"m") -> list[bytes]:
    return [prefix + b"%d" % i for i in range(n)]


def flat(pairs: dict[bytes, object]) -> list[object]:
    return [x for member, score in pairs.items() for x in (score, member)]


# (name, commands run on redis to make key k, the RDB type its DUMP must have)
ENCODINGS = [
    ("int string", [("SET", "k", "12345")], 0),
    ("raw string", [("SET", "k", BINARY)], 0),
    ("lzf string", [("SET", "k", b"abcd" * 100)], 0),
    ("long raw string", [("SET", "k", random.Random(1).randbytes(20000))], 0),
    ("appended int string", [("SET", "k", "12"), ("APPEND", "k", "34")], 0),
    ("small list", [("RPUSH", "k", "a", "1", "-300", BINARY, "")], 18),
    ("long list", [("RPUSH", "k", *members(20000))], 18),
    ("list of big items", [("RPUSH", "k", *(b"%d" % i * 3000 for i in range(10)))], 18),
    ("intset", [("SADD", "k", "3", "1", "-2", "70000", "-9223372036854775808")], 11),
    ("big intset", [("SADD", "k", *(b"%d" % (i * 7) for i in range(500)))], 11),
    ("hashtable set", [("SADD", "k", "a", "1", BINARY)], 2),
    ("big set", [("SADD", "k", *members(3000))], 2),
    ("listpack zset", [("ZADD", "k", "1", "a", "2.5", "b", "-inf", "c", "inf", "d", "-0", "e",
                        "1e-300", "f", "123456789012", "g", "0.1", BINARY)], 17),
    ("skiplist zset", [("ZADD", "k", *flat({m: i / 7 for i, m in enumerate(members(300))}))],
     5),
    ("zset with a long member", [("ZADD", "k", "1", b"x" * 100, "2", "y")], 5),
    ("listpack hash", [("HSET", "k", "f", "v", "n", "1", BINARY, "", "z", "-5")], 16),
    ("big hash", [("HSET", "k", *(x for m in members(1000) for x in (m, m * 2)))], 4),
    ("hash with a long value", [("HSET", "k", "f", b"v" * 100, "g", "1")], 4),
]


@pytest.mark.parametrize(("commands", "rdb_type"), [c[1:] for c in ENCODINGS],
                         ids=[c[0] for c in ENCODINGS])
def test_every_encoding_both_ways(redis: Redis, commands: list[tuple], rdb_type: int) -> None:
    for command in commands:
        redis(*command)
    assert redis("DUMP", "k")[0] == rdb_type  # the encoding meant is the one hit
    both_ways(redis, b"k")


def test_lzf_compressed_nodes_and_blobs_are_read(redis: Redis) -> None:
    """Redis LZF-compresses a listpack or intset blob over 20 bytes that shrinks enough."""
    redis("RPUSH", "l", *([b"same"] * 100))
    redis("SADD", "s", "-9223372036854775808", *(b"%d" % i for i in range(100)))  # 8 bytes each
    redis("HSET", "h", *(x for i in range(50) for x in (b"f%d" % i, b"value")))
    for key in (b"l", b"s", b"h"):
        assert b"\xc3" in redis("DUMP", key)[:4]
        both_ways(redis, key)


def test_plain_quicklist_nodes(redis: Redis) -> None:
    """Plain nodes (one item each) are what Redis writes for huge items; hand-made here,
    since redis-server only makes them past 1 GB. redis-server and we read the same."""
    body = (b"\x12\x03\x01" + rstr(b"plain item") + b"\x02" + rstr(listpack([b"a", 7]))
            + b"\x01" + rstr(b"x" * 100))
    blob = payload(body)
    assert redis("RESTORE", "l", 0, blob) == OK
    db = Keyspace()
    assert call(db, "RESTORE", "l", 0, blob, now=NOW) == OURS_OK
    assert db.data[b"l"] == redis.value(b"l") == ListValue(
        [b"plain item", b"a", b"7", b"x" * 100])


def test_our_types_load_into_redis_compact_encodings(redis: Redis) -> None:
    """Our DUMP writes plain RDB types; redis-server makes its compact encodings of them."""
    cases = [
        (ListValue([b"a", b"1"]), b"quicklist"),
        (SetValue([b"3", b"1", b"2"]), b"intset"),
        (SetValue([b"a", b"1"]), b"hashtable"),
        (ZSetValue({b"a": 1.0, b"b": -0.0}), b"listpack"),
        (ZSetValue(dict.fromkeys(members(200), 1.5)), b"skiplist"),
        (HashValue({b"f": b"v"}), b"listpack"),
        (HashValue({m: b"v" for m in members(600)}), b"hashtable"),
    ]
    for i, (value, encoding) in enumerate(cases):
        key = b"k%d" % i
        assert redis("RESTORE", key, 0, dump_payload(value)) == OK
        assert redis.encoding(key) == encoding
        same(value, redis.value(key), redis, key, made=True)


def test_a_stream_is_refused(redis: Redis) -> None:
    redis("XADD", "st", "1-1", "f", "v")
    db = Keyspace()
    reply = call(db, "RESTORE", "st", 0, redis("DUMP", "st"), now=NOW)
    assert reply.text == "ERR Bad data format"
    assert not db.data


# -- byte for byte, with the differ ----------------------------------------------------


STRINGS = [
    b"", b"0", b"1", b"-1", b"127", b"128", b"-128", b"-129", b"32767", b"32768", b"-32769",
    b"2147483647", b"2147483648", b"-2147483648", b"-2147483649", b"9223372036854775807",
    b"-9223372036854775808", b"12345678901", b"-0", b"01", b"+1", b"1.5", b" 1", BINARY,
    b"a" * 20, b"a" * 21, b"a" * 22, b"ab" * 11, b"abcdefghijklmnopqrstuvwxyz" * 2,
    b"hello world, hello world, hello world", b"x" * 5000, bytes(range(256)) * 4,
    random.Random(2).randbytes(40), random.Random(3).randbytes(1000),
    b"".join(b"user:%d:name " % i for i in range(3000)),
]


def test_string_dumps_are_redis_bytes(differ: Differ) -> None:
    for value in STRINGS:
        differ("SET", "k", value)
        differ("DUMP", "k")


def test_string_dumps_after_append_and_incr(differ: Differ) -> None:
    differ("SET", "k", "10")
    differ("APPEND", "k", "5")
    differ("DUMP", "k")
    differ("INCRBY", "k", "1000000000000")
    differ("DUMP", "k")
    differ("SETRANGE", "k", 30, "x")
    differ("DUMP", "k")


def test_dump_of_missing_and_expired_keys(differ: Differ) -> None:
    differ("DUMP", "nope")
    differ("SET", "k", "v", "PXAT", 1)
    differ("DUMP", "k")


def test_restore_replies(differ: Differ) -> None:
    blob = payload(b"\x00" + rstr(b"hello"))
    differ("RESTORE", "k", 0, blob)
    differ("GET", "k")
    differ("RESTORE", "k", 0, blob)  # BUSYKEY
    differ("RESTORE", "k", -1, b"garbage")  # BUSYKEY comes first
    differ("RESTORE", "k", 0, blob, "BOGUS")  # then options: before the key
    differ("RESTORE", "k", 0, payload(b"\x00" + rstr(b"new")), "REPLACE")
    differ("GET", "k")
    differ("RESTORE", "t", 100000, blob)
    differ("TTL", "t")
    differ("RESTORE", "t", 0, blob, "REPLACE")
    differ("TTL", "t")
    differ("RESTORE", "a", 1, blob, "ABSTTL")  # long past: OK, nothing made
    differ("EXISTS", "a")
    differ("RESTORE", "k", 1, blob, "ABSTTL", "REPLACE")  # and the old key goes
    differ("EXISTS", "k")
    differ("RESTORE", "a", "9223372036854775807", blob)  # overflows into the past
    differ("EXISTS", "a")
    differ("RESTORE", "f", "4102444800000", blob, "ABSTTL")  # year 2100
    differ("EXPIRETIME", "f")


@pytest.mark.parametrize("args", [
    (-1,), ("x",), ("1.5",), ("",), (0, "IDLETIME", -1), (0, "IDLETIME", "x"),
    (0, "FREQ", 256), (0, "FREQ", -1), (0, "FREQ", "x"), (0, "IDLETIME"), (0, "FREQ"),
    (0, "IDLETIME", 1, "FREQ", 1), (0, "FREQ", 1, "IDLETIME", 1), (0, "REPLACE", "x"),
    (0, "IDLETIME", 5, "IDLETIME", 7), (0, "FREQ", 0, "FREQ", 255, "ABSTTL", "replace"),
    (0, "absttl", "idletime", 0),
])
def test_restore_options(differ: Differ, args: tuple) -> None:
    differ("RESTORE", "k", args[0], payload(b"\x00" + rstr(b"v")), *args[1:])
    differ("EXISTS", "k")


def test_restore_arity(differ: Differ) -> None:
    differ("RESTORE", "k", 0)
    differ("DUMP")
    differ("DUMP", "a", "b")


GOOD = b"\x00" + rstr(b"v")

BAD_PAYLOADS = [
    payload(GOOD, version=11), payload(GOOD)[:-1] + bytes([payload(GOOD)[-1] ^ 1]),
    b"", b"short", b"\x00" * 9, payload(GOOD)[:-2] + b"\x00\x00",
]

BAD_BODIES = [
    b"", b"\x08", b"\x16", b"\x0f" + rstr(b"x"), b"\x13" + rstr(b"x"), b"\x07" + rlen(1) + rlen(2),
    b"\x06" + rlen(1), b"\x00\xc4", b"\x00\xc3\x05\x03\x01ab", b"\x00\xc3\x04\x05\x01abc",
    b"\x00\xff", b"\x00\x80\x00\x01\x00\x00", b"\x01\x00", b"\x02\x00", b"\x04\x00",
    b"\x05\x00", b"\x11" + rstr(listpack([])), b"\x10" + rstr(listpack([])), b"\x12\x00",
    b"\x12\x01\x02" + rstr(listpack([])), b"\x02\x02" + rstr(b"a") + rstr(b"a"),
    b"\x05\x02" + rstr(b"m") + binary_double(1) + rstr(b"m") + binary_double(2),
    b"\x14" + rstr(listpack([b"a", b"a"])), b"\x05\x01" + rstr(b"m") + binary_double(float("nan")),
    b"\x03\x01" + rstr(b"m") + b"\xfd", b"\x10" + rstr(listpack([b"f"])),
    b"\x12\x01\x03" + rstr(listpack([b"a"])), b"\x12\x01\x02" + rstr(b"not a listpack"),
    b"\x0b" + rstr(b"\x02\0\0\0"), b"\x0a" + rstr(b"not a ziplist"),
    b"\x09" + rstr(b"\x01\x01f\xff"),
    b"\x02\x02" + rstr(b"a"), b"\x00" + rstr(b"v") + b"junk", b"\x00\xc3\x01\x00\x00",
]


def test_restore_bad_payloads(differ: Differ) -> None:
    for blob in BAD_PAYLOADS + [payload(body) for body in BAD_BODIES]:
        differ("RESTORE", "k", 0, blob, "REPLACE")
        differ("EXISTS", "k")
        differ("DEL", "k")


SANITIZED_ONLY = [  # what redis-server refuses only when it checks payloads in depth
    b"\x04\x02" + rstr(b"f") + rstr(b"1") + rstr(b"f") + rstr(b"2"),
    b"\x10" + rstr(listpack([b"f", b"1", b"f", b"2"])),
    b"\x11" + rstr(listpack([b"m", 1, b"m", 2])),
    b"\x11" + rstr(listpack([b"m", 1, b"n"])),
    b"\x0b" + rstr(b"\x02\0\0\0\x02\0\0\0\x02\0\x01\0"),
]


def test_corrupt_payloads_as_sanitizing_redis(differ: Differ) -> None:
    differ.resp2.call(b"CONFIG", b"SET", b"sanitize-dump-payload", b"yes")
    try:
        for body in SANITIZED_ONLY:
            differ("RESTORE", "k", 0, payload(body))
            differ("EXISTS", "k")
    finally:
        differ.resp2.call(b"CONFIG", b"SET", b"sanitize-dump-payload", b"no")


# -- random values, both ways --------------------------------------------------------------

ITEMS = st.one_of(
    st.binary(max_size=12),
    st.integers(-(1 << 63), (1 << 63) - 1).map(lambda i: b"%d" % i),
    st.integers(-300, 300).map(lambda i: b"%d" % i),
    st.builds(lambda unit, n: unit * n, st.binary(min_size=1, max_size=4), st.integers(1, 40)),
)
SCORES = st.one_of(st.floats(allow_nan=False), st.integers(-1000, 1000).map(float))

VALUES = st.one_of(
    st.tuples(st.just("string"), ITEMS),
    st.tuples(st.just("list"), st.lists(ITEMS, min_size=1, max_size=40)),
    st.tuples(st.just("set"), st.lists(ITEMS, min_size=1, max_size=40, unique=True)),
    st.tuples(st.just("set"), st.lists(st.integers(-(1 << 63), (1 << 63) - 1).map(
        lambda i: b"%d" % i), min_size=1, max_size=40, unique=True)),
    st.tuples(st.just("zset"), st.dictionaries(ITEMS, SCORES, min_size=1, max_size=40)),
    st.tuples(st.just("hash"), st.dictionaries(ITEMS, ITEMS, min_size=1, max_size=40)),
)


def make_on_redis(redis: Redis, kind: str, contents: object) -> object:
    """``contents`` written on redis at key ``r`` with its commands; and as our value."""
    if kind == "string":
        redis("SET", "r", contents)
        return contents
    if kind == "list":
        redis("RPUSH", "r", *contents)
        return ListValue(contents)
    if kind == "set":
        redis("SADD", "r", *contents)
        return SetValue(contents)
    if kind == "zset":
        redis("ZADD", "r", *(x for m, s in contents.items() for x in (repr(s), m)))
        return ZSetValue(dict(contents))
    redis("HSET", "r", *(x for pair in contents.items() for x in pair))
    return HashValue(dict(contents))


@settings(max_examples=400, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(VALUES)
def test_random_values_both_ways(redis: Redis, value: tuple[str, object]) -> None:
    redis("FLUSHDB")
    ours = make_on_redis(redis, *value)
    restored = both_ways(redis, b"r")  # redis' DUMP into ours, and back
    same(restored, ours, redis, b"r", made=True)
    db = Keyspace()
    db.set(b"mine", ours)  # and our own value's DUMP into redis
    assert redis("RESTORE", "fromours", 0, call(db, "DUMP", "mine", now=NOW)) == OK
    same(ours, redis.value(b"fromours"), redis, b"fromours", made=True)
    if value[0] == "string":
        assert call(db, "DUMP", "mine", now=NOW) == redis("DUMP", "r")
