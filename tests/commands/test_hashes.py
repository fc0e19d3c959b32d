"""Hash commands against Redis 7.0's behaviour (checked on a real redis-server 7.0.15)."""

from __future__ import annotations

import random
import time

import pytest
from commands_support import BINARY, NOW

from respkv.commands import hashes
from respkv.commands.table import COMMANDS
from respkv.protocol.reply import RespError, encode
from respkv.state.keyspace import Keyspace
from respkv.state.values import HashValue, ListValue
from respkv.state.views import KeyspaceDraft

WRONGTYPE = "WRONGTYPE Operation against a key holding the wrong kind of value"
NOT_INT = "ERR value is not an integer or out of range"
NOT_FLOAT = "ERR value is not a valid float"
SYNTAX = "ERR syntax error"


@pytest.fixture
def with_other(db):
    """A string and a list: keys of other types."""
    db.set(b"s", b"x")
    db.set(b"l", ListValue([b"a"]))
    return db


def stored(db: Keyspace, key: bytes) -> dict[bytes, bytes]:
    value = db.data[key]
    assert type(value) is HashValue
    return value.fields


# -- HSET / HMSET / HSETNX -------------------------------------------------------


def test_hset_counts_new_fields(run, db):
    assert run("HSET", "h", "a", "1", "b", "2") == 2
    assert run("HSET", "h", "a", "3", "c", "4", "c", "5") == 1
    assert stored(db, b"h") == {b"a": b"3", b"b": b"2", b"c": b"5"}
    assert list(stored(db, b"h")) == [b"a", b"b", b"c"]  # an update keeps its place


def test_hset_binary(run):
    assert run("HSET", BINARY, BINARY, b"") == 1
    assert run("HGET", BINARY, BINARY) == b""
    assert run("HSET", "h", "", "v") == 1
    assert run("HGET", "h", "") == b"v"


@pytest.mark.parametrize("name", ["HSET", "HMSET"])
def test_hset_arity(run, err, db, name):
    expected = f"ERR wrong number of arguments for '{name.lower()}' command"
    assert err(run(name, "h", "a")) == expected
    assert err(run(name, "h", "a", "1", "b")) == expected
    assert b"h" not in db.data


def test_hmset_replies_ok(run, db):
    assert run("HMSET", "h", "a", "1", "a", "2") == "OK"
    assert stored(db, b"h") == {b"a": b"2"}


def test_hsetnx(run, db):
    assert run("HSETNX", "h", "a", "1") == 1
    assert run("HSETNX", "h", "a", "2") == 0
    assert run("HSETNX", "h", "b", "2") == 1
    assert stored(db, b"h") == {b"a": b"1", b"b": b"2"}


@pytest.mark.parametrize(
    "args",
    [("HSET", "K", "a", "1"), ("HMSET", "K", "a", "1"), ("HSETNX", "K", "a", "1"),
     ("HDEL", "K", "a"), ("HINCRBY", "K", "a", "1"), ("HINCRBYFLOAT", "K", "a", "1"),
     ("HGET", "K", "a"), ("HMGET", "K", "a"), ("HEXISTS", "K", "a"),
     ("HSTRLEN", "K", "a"), ("HLEN", "K"), ("HKEYS", "K"), ("HVALS", "K"),
     ("HGETALL", "K"), ("HRANDFIELD", "K"), ("HRANDFIELD", "K", "0"),
     ("HRANDFIELD", "K", "-3", "WITHVALUES"), ("HSCAN", "K", "0")],
)
@pytest.mark.parametrize("key", ["s", "l"])
def test_wrongtype(run, err, with_other, args, key):
    argv = [key if a == "K" else a for a in args]
    assert err(run(*argv)) == WRONGTYPE


# -- HDEL ------------------------------------------------------------------------


def test_hdel(run, db):
    run("HSET", "h", "a", "1", "b", "2", "c", "3")
    assert run("HDEL", "h", "a", "x", "a") == 1
    assert run("HDEL", "nope", "a") == 0
    assert run("HDEL", "h", "b", "c", "d") == 2
    assert b"h" not in db.data  # an emptied hash is deleted


def test_hdel_order_after_reinsert(run):
    run("HSET", "h", "a", "1", "b", "2", "c", "3")
    run("HDEL", "h", "a")
    run("HSET", "h", "a", "9")
    assert run("HKEYS", "h") == [b"b", b"c", b"a"]


# -- HINCRBY / HINCRBYFLOAT ------------------------------------------------------


def test_hincrby(run, err, db):
    assert run("HINCRBY", "h", "n", "5") == 5
    assert run("HINCRBY", "h", "n", "-7") == -2
    assert run("HGET", "h", "n") == b"-2"
    run("HSET", "h", "max", "9223372036854775807", "x", "1.5", "z", "012", "sp", " 1")
    assert err(run("HINCRBY", "h", "max", "1")) == "ERR increment or decrement would overflow"
    assert run("HINCRBY", "h", "max", "-9223372036854775808") == -1
    for field in ("x", "z", "sp"):
        assert err(run("HINCRBY", "h", field, "1")) == "ERR hash value is not an integer"
    assert err(run("HINCRBY", "h", "n", "1.0")) == NOT_INT
    assert err(run("HINCRBY", "new", "n", "x")) == NOT_INT
    assert b"new" not in db.data


def test_hincrby_argument_checked_before_type(run, err, with_other):
    assert err(run("HINCRBY", "s", "a", "x")) == NOT_INT
    assert err(run("HINCRBYFLOAT", "s", "a", "x")) == NOT_FLOAT
    assert err(run("HINCRBYFLOAT", "s", "a", "inf")) == "ERR value is NaN or Infinity"


def test_hincrbyfloat(run, err, db):
    assert run("HINCRBYFLOAT", "h", "f", "10.5") == b"10.5"
    assert run("HINCRBYFLOAT", "h", "f", "0.1") == b"10.6"
    assert run("HINCRBYFLOAT", "h", "f", "-10.6") == b"0"
    assert run("HINCRBYFLOAT", "h", "g", "0x10") == b"16"
    assert run("HINCRBYFLOAT", "h", "g", "5.0e3") == b"5016"
    run("HSET", "h", "big", "1e4932", "inf", "-inf", "word", "abc", "sp", " 1")
    produce = "ERR increment would produce NaN or Infinity"
    assert err(run("HINCRBYFLOAT", "h", "big", "1e4932")) == produce
    assert err(run("HINCRBYFLOAT", "h", "inf", "1")) == produce
    for field in ("word", "sp"):
        assert err(run("HINCRBYFLOAT", "h", field, "1")) == "ERR hash value is not a float"
    for bad in ("nan", "1e5000", "abc", "", " 1"):
        assert err(run("HINCRBYFLOAT", "h", "f", bad)) == NOT_FLOAT
    assert err(run("HINCRBYFLOAT", "new", "f", "-inf")) == "ERR value is NaN or Infinity"
    assert b"new" not in db.data


def test_hincrbyfloat_long_double(run):
    # 80-bit long double: 0.1 + 0.2 is exact enough to print as 0.3
    assert run("HINCRBYFLOAT", "h", "f", "0.1") == b"0.1"
    assert run("HINCRBYFLOAT", "h", "f", "0.2") == b"0.3"
    assert run("HINCRBYFLOAT", "h", "tiny", "1e-4950") == b"0"


def test_counters_keep_ttl(run, db):
    run("HSET", "h", "a", "1")
    db.set_expire(b"h", NOW + 10_000)
    run("HINCRBY", "h", "a", "1")
    run("HINCRBYFLOAT", "h", "a", "1")
    run("HSET", "h", "b", "1")
    assert db.ttl_ms(b"h") == NOW + 10_000


# -- reads -----------------------------------------------------------------------


def test_reads_on_missing_key(run):
    assert run("HGET", "h", "a") is None
    assert run("HMGET", "h", "a", "b") == [None, None]
    assert run("HEXISTS", "h", "a") == 0
    assert run("HSTRLEN", "h", "a") == 0
    assert run("HLEN", "h") == 0
    assert run("HKEYS", "h") == []
    assert run("HVALS", "h") == []
    assert run("HGETALL", "h") == {}
    assert run("HRANDFIELD", "h") is None
    assert run("HRANDFIELD", "h", "5") == []
    assert run("HRANDFIELD", "h", "-5", "WITHVALUES") == []
    assert run("HSCAN", "h", "0") == [b"0", []]


def test_reads(run):
    run("HSET", "h", "a", "1", "b", "22", "c", "")
    assert run("HGET", "h", "b") == b"22"
    assert run("HMGET", "h", "c", "x", "a") == [b"", None, b"1"]
    assert run("HEXISTS", "h", "c") == 1
    assert run("HSTRLEN", "h", "b") == 2
    assert run("HSTRLEN", "h", "c") == 0
    assert run("HLEN", "h") == 3
    assert run("HKEYS", "h") == [b"a", b"b", b"c"]
    assert run("HVALS", "h") == [b"1", b"22", b""]
    assert run("HGETALL", "h") == {b"a": b"1", b"b": b"22", b"c": b""}


def test_hgetall_reply_is_a_copy(run, db):
    run("HSET", "h", "a", "1")
    reply = run("HGETALL", "h")
    run("HSET", "h", "b", "2")
    assert reply == {b"a": b"1"}


def test_expired_hash_is_absent(run, db):
    run("HSET", "h", "a", "1")
    db.set_expire(b"h", NOW + 100)
    later = NOW + 100
    assert run("HGET", "h", "a", now=later) is None
    assert run("HLEN", "h", now=later) == 0
    assert b"h" in db.data  # a read does not delete
    assert run("HSETNX", "h", "a", "2", now=later) == 1
    assert db.ttl_ms(b"h") is None  # a new hash, without the old TTL
    assert run("HGETALL", "h", now=later) == {b"a": b"2"}


# -- HRANDFIELD ------------------------------------------------------------------


def test_hrandfield_arguments(run, err):
    run("HSET", "h", "a", "1")
    assert err(run("HRANDFIELD", "h", "x")) == NOT_INT
    assert err(run("HRANDFIELD", "h", "1", "WITHVALUE")) == SYNTAX
    assert err(run("HRANDFIELD", "h", "1", "WITHVALUES", "x")) == SYNTAX
    assert err(run("HRANDFIELD", "nope", "-9223372036854775808")) == (
        "ERR value is out of range, value must between "
        "-9223372036854775807 and 9223372036854775807"
    )
    assert err(run("HRANDFIELD", "h", "4611686018427387904", "withvalues")) == (
        "ERR value is out of range"
    )
    assert err(run("HRANDFIELD", "h", "-4611686018427387904", "WITHVALUES")) == (
        "ERR value is out of range"
    )
    whole = run("HRANDFIELD", "h", "4611686018427387903", "WITHVALUES")
    assert encode(whole, resp3=False) == b"*2\r\n$1\r\na\r\n$1\r\n1\r\n"
    assert run("HRANDFIELD", "h", "9223372036854775807") == [b"a"]


def test_hrandfield_counts(run):
    fields = {b"f%d" % i: b"v%d" % i for i in range(20)}
    run("HSET", "h", *[x for item in fields.items() for x in item])
    assert run("HRANDFIELD", "h") in fields
    assert run("HRANDFIELD", "h", "0") == []
    assert run("HRANDFIELD", "h", "20") == list(fields)
    assert run("HRANDFIELD", "h", "100") == list(fields)
    for count in (1, 2, 7, 19):
        picked = run("HRANDFIELD", "h", str(count))
        assert len(picked) == len(set(picked)) == count
        assert set(picked) <= fields.keys()
    repeated = run("HRANDFIELD", "h", "-100")
    assert len(repeated) == 100 and set(repeated) <= fields.keys()
    reply = run("HRANDFIELD", "h", "-30", "WITHVALUES")
    pairs = list(zip(reply[::2], reply[1::2], strict=True)) if hashes.Pairs is None else reply
    assert len(pairs) == 30
    assert all(fields[f] == v for f, v in pairs)


def test_hrandfield_huge_negative_count_refused(run, err):
    run("HSET", "h", "a", "1")
    assert err(run("HRANDFIELD", "h", str(-hashes.MAX_REPEATED - 1))) == (
        "ERR value is out of range"
    )
    assert run("HRANDFIELD", "nope", "-9223372036854775807") == []


# -- HSCAN -----------------------------------------------------------------------


def test_hscan_arguments(run, err, with_other):
    run("HSET", "h", "a", "1")
    assert err(run("HSCAN", "h", "x")) == "ERR invalid cursor"
    assert err(run("HSCAN", "s", "x")) == "ERR invalid cursor"  # before WRONGTYPE
    assert err(run("HSCAN", "h", "0", "COUNT", "0")) == SYNTAX
    assert err(run("HSCAN", "h", "0", "COUNT", "x")) == NOT_INT
    assert err(run("HSCAN", "h", "0", "MATCH")) == SYNTAX
    assert err(run("HSCAN", "h", "0", "NOVALUES")) == SYNTAX
    assert err(run("HSCAN", "h", "0", "TYPE", "hash")) == SYNTAX
    assert run("HSCAN", "nope", "0", "COUNT", "0") == [b"0", []]  # options come later


def test_hscan_small_is_whole(run):
    run("HSET", "h", "a", "1", "b", "2", "", "e", "ab", "3")
    assert run("HSCAN", "h", "12345", "COUNT", "1") == [
        b"0", [b"a", b"1", b"b", b"2", b"", b"e", b"ab", b"3"]]
    assert run("HSCAN", "h", "0", "MATCH", "a*") == [b"0", [b"a", b"1", b"ab", b"3"]]
    assert run("HSCAN", "h", "0", "MATCH", "*") == run("HSCAN", "h", "0")


def scan_all(run, key: str, count: int, between=None) -> list[bytes]:
    fields, cursor = [], b"0"
    for _ in range(100_000):
        cursor, flat = run("HSCAN", key, cursor, "COUNT", str(count))
        fields += flat[::2]
        if between is not None:
            between()
        if cursor == b"0":
            return fields
    raise AssertionError("HSCAN never ended")


@pytest.mark.parametrize("count", [1, 10, 1000])
def test_hscan_big_hash_full_iteration(run, count):
    fields = [b"field:%d" % i for i in range(1000)]
    run("HSET", "h", *[x for f in fields for x in (f, b"v")])
    seen = scan_all(run, "h", count)
    assert sorted(seen) == sorted(fields)  # each once: no duplicates without changes


def test_hscan_long_value_makes_it_big(run):
    run("HSET", "h", "a", "x" * 65, *[x for i in range(50) for x in (b"f%d" % i, b"v")])
    cursor, _ = run("HSCAN", "h", "0", "COUNT", "5")
    assert cursor != b"0"


def test_hscan_misses_nothing_while_changing(run):
    rng = random.Random(7)
    steady = [b"steady:%d" % i for i in range(600)]
    run("HSET", "h", *[x for f in steady for x in (f, b"v")])
    counter = iter(range(10**9))

    def churn() -> None:
        for _ in range(20):
            run("HSET", "h", b"new:%d" % next(counter), "v")
        run("HDEL", "h", *rng.sample([b"new:%d" % i for i in range(100)], 10))

    assert set(scan_all(run, "h", 25, churn)) >= set(steady)


def test_scan_fields_ties_on_one_hash():
    # Two fields with one CRC-32 (a known collision), COUNT 1: neither is skipped.
    a, b = b"plumless", b"buckeroo"
    assert hashes.crc32(a) == hashes.crc32(b)
    fields = {a: b"1", b: b"2", b"other": b"3"}
    seen, cursor = [], 0
    while True:
        page, cursor = hashes.scan_fields(fields, cursor, 1)
        seen += page
        if cursor == 0:
            break
    assert sorted(seen) == sorted(fields)


def test_hscan_cursor_past_every_hash(run):
    run("HSET", "h", *[x for i in range(200) for x in (b"f%d" % i, b"v")])
    assert run("HSCAN", "h", str(1 << 40)) == [b"0", []]
    assert run("HSCAN", "h", "-1") == [b"0", []]


# -- the state machine's contract -----------------------------------------------


def handle(db: Keyspace, *args: bytes) -> object:
    """A handler called as apply calls it (no store in between: ``changed`` stays)."""
    return COMMANDS[args[0].decode()].handler(db, list(args), NOW)


def test_writes_record_only_what_changed(db):
    handle(db, b"hset", b"h", b"a", b"1", b"b", b"2")
    value = db.data[b"h"]
    value.mark_stored()
    db.dirty.clear()
    handle(db, b"hset", b"h", b"a", b"3")
    handle(db, b"hincrby", b"h", b"n", b"1")
    handle(db, b"hincrbyfloat", b"h", b"m", b"1.5")
    handle(db, b"hsetnx", b"h", b"o", b"1")
    handle(db, b"hdel", b"h", b"b", b"zz")
    assert not value.rewrite
    assert value.changed == {b"a", b"n", b"m", b"o", b"b"}
    assert db.dirty == {b"h"}


def test_failed_and_no_op_writes_change_nothing(db):
    handle(db, b"hset", b"h", b"a", b"x")
    db.data[b"h"].mark_stored()
    db.dirty.clear()
    for args in ([b"hincrby", b"h", b"a", b"1"], [b"hincrbyfloat", b"h", b"a", b"1"]):
        with pytest.raises(RespError):
            handle(db, *args)
    handle(db, b"hsetnx", b"h", b"a", b"2")
    handle(db, b"hdel", b"h", b"zz")
    handle(db, b"hdel", b"nope", b"zz")
    assert db.dirty == set() and db.data[b"h"].changed == set()


def test_writes_through_a_draft_leave_the_live_hash(db):
    db.set(b"h", HashValue({b"a": b"1"}))
    draft = KeyspaceDraft(lambda key: db, NOW)
    for args in ([b"hset", b"h", b"b", b"2"], [b"hincrby", b"h", b"a", b"5"],
                 [b"hdel", b"h", b"b"]):
        COMMANDS[args[0].decode()].handler(draft, args, NOW)
    assert db.data[b"h"].fields == {b"a": b"1"}
    value, _ = draft.changes[b"h"]
    assert value.fields == {b"a": b"6"}


def test_hset_on_a_big_hash_is_cheap(db):
    big = HashValue({b"f%d" % i: b"v" for i in range(200_000)})
    db.set(b"h", big)
    big.mark_stored()
    handler = COMMANDS["hset"].handler
    start = time.perf_counter()
    for i in range(2000):
        handler(db, [b"hset", b"h", b"n%d" % i, b"v"], NOW)
    assert time.perf_counter() - start < 0.5  # far from 2000 copies of 200k fields
    assert len(big.changed) == 2000


def test_table_entries():
    for name in ("hset", "hmset", "hsetnx", "hincrby", "hincrbyfloat"):
        assert "denyoom" in COMMANDS[name].flags and "write" in COMMANDS[name].flags
    assert COMMANDS["hscan"].flags == ("readonly",)
    assert all(COMMANDS[n].family == "hash" for n in ("hget", "hscan", "hrandfield"))
