"""Set commands: semantics, the handler contract (pure writes, untouched reads, change
tracking) and costs. Byte-for-byte replies are in test_sets_vs_redis.py."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from commands_support import BINARY, NOW, call

from respkv.commands.sets import intset_like, reply_order, scan_positions
from respkv.commands.table import COMMANDS
from respkv.protocol.reply import RSet
from respkv.state.keyspace import Keyspace
from respkv.state.values import HashValue, SetValue
from respkv.state.views import KeyspaceDraft

WRONGTYPE = "WRONGTYPE Operation against a key holding the wrong kind of value"
SYNTAX = "ERR syntax error"


@pytest.fixture
def with_hash(db):
    db.set(b"h", HashValue({b"f": b"v"}))
    db.set(b"str", b"x")
    return db


def members(db: Keyspace, key: bytes) -> set[bytes]:
    value = db.data.get(key)
    assert value is None or type(value) is SetValue
    return set() if value is None else set(value.members)


def consistent(value: SetValue) -> None:
    """members and index agree: position i holds the member indexed at i."""
    assert len(value.members) == len(value.index)
    for position, member in enumerate(value.members):
        assert value.index[member] == position


# -- order helpers ---------------------------------------------------------------


def test_intset_like():
    assert intset_like([b"1", b"-5", b"0", b"9223372036854775807", b"-9223372036854775808"])
    for member in (b"01", b"-0", b"+1", b" 1", b"1.0", b"9223372036854775808", b"", b"a"):
        assert not intset_like([b"1", member]), member
    assert intset_like([b"%d" % i for i in range(512)])
    assert not intset_like([b"%d" % i for i in range(513)])
    assert reply_order([b"10", b"-1", b"2"]) == [b"-1", b"2", b"10"]
    assert reply_order([b"10", b"a", b"2"]) == [b"10", b"a", b"2"]


# -- one set -------------------------------------------------------------------


def test_sadd_srem_scard(run, db):
    assert run("SADD", "s", "a", "b", "a") == 2
    assert run("SADD", "s", "b", "c") == 1
    assert run("SCARD", "s") == 3
    assert run("SREM", "s", "a", "x", "a") == 1
    assert members(db, b"s") == {b"b", b"c"}
    assert run("SREM", "missing", "a") == 0
    assert run("SREM", "s", "b", "c") == 2
    assert b"s" not in db.data  # an emptied set is deleted
    assert run("SCARD", "s") == 0


def test_binary_members(run, db):
    assert run("SADD", BINARY, BINARY, b"", b"\x00") == 3
    assert run("SISMEMBER", BINARY, b"") == 1
    assert run("SMISMEMBER", BINARY, BINARY, b"\x00\x00", b"\x00") == [1, 0, 1]
    assert sorted(run("SMEMBERS", BINARY)) == sorted([BINARY, b"", b"\x00"])


def test_wrongtype_everywhere(run, err, with_hash):
    for args in (
        ("SADD", "h", "a"), ("SREM", "h", "a"), ("SCARD", "str"), ("SISMEMBER", "h", "a"),
        ("SMISMEMBER", "h", "a"), ("SMEMBERS", "str"), ("SPOP", "h"), ("SPOP", "h", "2"),
        ("SRANDMEMBER", "h"), ("SRANDMEMBER", "h", "-2"), ("SMOVE", "h", "x", "a"),
        ("SINTER", "missing", "h"), ("SINTERCARD", "2", "missing", "h"),
        ("SINTERSTORE", "d", "missing", "h"), ("SUNION", "h"), ("SUNIONSTORE", "d", "h"),
        ("SDIFF", "missing", "h"), ("SDIFFSTORE", "d", "missing", "h"), ("SSCAN", "h", "0"),
    ):
        assert err(run(*args)) == WRONGTYPE, args


def test_expired_key_is_absent(run, db):
    db.set(b"s", SetValue([b"a", b"b"]), NOW - 1)
    assert run("SCARD", "s") == 0
    assert run("SMEMBERS", "s") == RSet()
    assert run("SADD", "s", "c") == 1  # a new set, without the old TTL
    assert members(db, b"s") == {b"c"}
    assert db.ttl_ms(b"s") is None


def test_writes_record_only_what_changed(db):
    """Handlers called directly: ``call`` sends the changes to a store after each write."""
    sadd, srem = COMMANDS["sadd"].handler, COMMANDS["srem"].handler
    sadd(db, [b"SADD", b"s", *[b"m%d" % i for i in range(100)]], NOW)
    value = db.data[b"s"]
    value.mark_stored()
    db.dirty.clear()
    assert sadd(db, [b"SADD", b"s", b"m1", b"new"], NOW) == 1
    assert value.changed == {b"new"}
    assert db.dirty == {b"s"}
    value.mark_stored()
    db.dirty.clear()
    assert sadd(db, [b"SADD", b"s", b"m1"], NOW) == 0
    assert srem(db, [b"SREM", b"s", b"nope"], NOW) == 0
    assert db.dirty == set() and value.changed == set()  # nothing changed, nothing to write
    srem(db, [b"SREM", b"s", b"m0"], NOW)
    assert value.changed == {b"m0", b"new"}  # the last member moved into m0's place
    consistent(value)


def test_smove(run, err, db, with_hash):
    run("SADD", "src", "a", "b")
    assert run("SMOVE", "src", "dst", "x") == 0
    assert run("SMOVE", "src", "dst", "a") == 1
    assert members(db, b"src") == {b"b"} and members(db, b"dst") == {b"a"}
    run("SADD", "dst", "b")
    assert run("SMOVE", "src", "dst", "b") == 1  # already there: still moved
    assert b"src" not in db.data
    assert members(db, b"dst") == {b"a", b"b"}
    assert run("SMOVE", "dst", "dst", "a") == 1
    assert run("SMOVE", "dst", "dst", "zz") == 0
    assert members(db, b"dst") == {b"a", b"b"}
    assert run("SMOVE", "missing", "h", "a") == 0  # a missing source beats WRONGTYPE
    assert err(run("SMOVE", "dst", "h", "a")) == WRONGTYPE
    assert err(run("SMOVE", "h", "dst", "a")) == WRONGTYPE
    assert members(db, b"dst") == {b"a", b"b"}


# -- SPOP / SRANDMEMBER ----------------------------------------------------------


def test_spop_properties(run, db):
    universe = {f"m{i}".encode() for i in range(50)}
    run("SADD", "s", *universe)
    popped = run("SPOP", "s", "7")
    assert type(popped) is RSet and len(popped) == 7 == len(set(popped))
    assert set(popped) <= universe
    assert members(db, b"s") == universe - set(popped)
    consistent(db.data[b"s"])
    one = run("SPOP", "s")
    assert one in universe - set(popped)
    assert members(db, b"s") == universe - set(popped) - {one}
    rest = run("SPOP", "s", "100")
    assert set(rest) == universe - set(popped) - {one}
    assert b"s" not in db.data
    assert run("SPOP", "s") is None
    assert run("SPOP", "s", "3") == RSet()


def test_spop_last_member_deletes_the_key(run, db):
    run("SADD", "s", "only")
    assert run("SPOP", "s") == b"only"
    assert b"s" not in db.data
    run("SADD", "s", "a", "b")
    run("SPOP", "s", "1")
    run("SPOP", "s", "1")
    assert b"s" not in db.data


def test_spop_zero_changes_nothing(run, db):
    run("SADD", "s", "a", "b")
    db.dirty.clear()
    assert run("SPOP", "s", "0") == RSet()
    assert members(db, b"s") == {b"a", b"b"} and not db.dirty


def test_spop_is_the_same_on_every_node():
    """Same entry (args and leader time), same state: same picks and same state after."""
    nodes = [Keyspace() for _ in range(3)]
    for db in nodes:
        call(db, "SADD", "s", *range(1000))
        call(db, "SADD", "s", *[f"x{i}" for i in range(100)])
        call(db, "SREM", "s", *range(0, 1000, 7))
    for now in (NOW, NOW + 1, NOW + 2):
        replies = [(call(db, "SPOP", "s", "13", now=now), call(db, "SPOP", "s", now=now))
                   for db in nodes]
        assert replies[0] == replies[1] == replies[2]
    assert nodes[0].data[b"s"].members == nodes[1].data[b"s"].members
    assert nodes[0].data[b"s"].members == nodes[2].data[b"s"].members


def test_spop_draws_depend_on_the_entry():
    draws = set()
    for now in range(NOW, NOW + 20):
        db = Keyspace()
        call(db, "SADD", "s", *range(1000))
        draws.add(tuple(call(db, "SPOP", "s", "5", now=now)))
    assert len(draws) == 20


def test_srandmember_properties(run, db):
    universe = {f"m{i}".encode() for i in range(30)}
    run("SADD", "s", *universe)
    one = run("SRANDMEMBER", "s")
    assert one in universe
    distinct = run("SRANDMEMBER", "s", "10")
    assert type(distinct) is list and len(distinct) == 10 == len(set(distinct))
    assert set(distinct) <= universe
    assert set(run("SRANDMEMBER", "s", "30")) == universe
    assert sorted(run("SRANDMEMBER", "s", "1000")) == sorted(universe)
    repeated = run("SRANDMEMBER", "s", "-100")
    assert len(repeated) == 100 and set(repeated) <= universe
    assert len(set(repeated)) < 100  # 100 draws from 30 must repeat
    assert run("SRANDMEMBER", "s", "-1")[0] in universe
    assert run("SRANDMEMBER", "s", "0") == []
    assert run("SRANDMEMBER", "missing") is None
    assert run("SRANDMEMBER", "missing", "-5") == []
    assert members(db, b"s") == universe  # a read: nothing popped


def test_srandmember_negative_count_on_one_member(run):
    run("SADD", "s", "a")
    assert run("SRANDMEMBER", "s", "-4") == [b"a"] * 4


def test_count_errors(run, err):
    run("SADD", "s", "a")
    positive = "ERR value is out of range, must be positive"
    for count in ("-1", "x", "1.5", "9223372036854775808", ""):
        assert err(run("SPOP", "s", count)) == positive, count
    assert err(run("SPOP", "s", "1", "2")) == SYNTAX
    assert err(run("SRANDMEMBER", "s", "x")) == "ERR value is not an integer or out of range"
    assert err(run("SRANDMEMBER", "s", "-9223372036854775808")) == (
        "ERR value is out of range, value must between -9223372036854775807 and "
        "9223372036854775807")
    assert err(run("SRANDMEMBER", "s", "x", "2")) == SYNTAX
    assert run("SPOP", "s", "9223372036854775807") == RSet([b"a"])


# -- several sets ----------------------------------------------------------------


@pytest.fixture
def three(run):
    run("SADD", "a", "1", "2", "3", "x")
    run("SADD", "b", "2", "3", "4", "x", "y")
    run("SADD", "c", "3", "x", "z")
    return run


def test_algebra(three, db):
    run = three
    assert sorted(run("SINTER", "a", "b", "c")) == [b"3", b"x"]
    assert sorted(run("SINTER", "a", "a")) == [b"1", b"2", b"3", b"x"]
    assert run("SINTER", "a", "missing") == RSet()
    assert sorted(run("SUNION", "a", "missing", "c")) == [b"1", b"2", b"3", b"x", b"z"]
    assert sorted(run("SDIFF", "a", "b")) == [b"1"]
    assert sorted(run("SDIFF", "b", "a", "c")) == [b"4", b"y"]
    assert run("SDIFF", "a", "a") == RSet()
    assert sorted(run("SDIFF", "a", "missing")) == [b"1", b"2", b"3", b"x"]
    assert run("SDIFF", "missing", "a") == RSet()
    assert run("SINTERCARD", "2", "a", "b") == 3
    assert run("SINTERCARD", "2", "a", "b", "LIMIT", "2") == 2
    assert run("SINTERCARD", "2", "a", "b", "limit", "0") == 3
    assert run("SINTERCARD", "1", "a", "LIMIT", "9", "LIMIT", "1") == 1


def test_difference_both_ways_agree(run):
    """SDIFF picks its way by the sizes: both give the same members, in the same order."""
    run("SADD", "big", *range(2000))
    run("SADD", "small", *range(0, 2000, 3))
    run("SADD", "tiny", "5", "7")
    by_tests = run("SDIFF", "big", "tiny")  # few others: test each member against them
    by_gathering = run("SDIFF", "big", "small", "tiny")  # many: gather them first
    assert len(by_tests) == 1998
    assert by_gathering == [m for m in by_tests if int(m) % 3]
    assert run("SDIFF", "tiny", "big") == RSet()


def test_store_commands(three, db):
    run = three
    db.set_expire(b"a", NOW + 100_000)
    assert run("SINTERSTORE", "d", "a", "b") == 3
    assert members(db, b"d") == {b"2", b"3", b"x"}
    db.set_expire(b"d", NOW + 100_000)
    assert run("SUNIONSTORE", "d", "d", "c") == 4  # a source may be the destination
    assert members(db, b"d") == {b"2", b"3", b"x", b"z"}
    assert db.ttl_ms(b"d") is None  # a STORE drops the destination's TTL
    assert db.ttl_ms(b"a") == NOW + 100_000
    assert run("SDIFFSTORE", "d", "a", "b") == 1
    assert members(db, b"d") == {b"1"}
    db.set(b"str", b"x")
    assert run("SDIFFSTORE", "str", "a") == 4  # any type is replaced
    assert members(db, b"str") == {b"1", b"2", b"3", b"x"}
    assert run("SINTERSTORE", "str", "a", "missing") == 0
    assert b"str" not in db.data  # an empty result deletes the destination
    assert run("SUNIONSTORE", "none", "missing") == 0
    assert b"none" not in db.data


def test_store_result_is_a_new_collection(three, db):
    run = three
    run("SUNIONSTORE", "d", "a")
    assert db.data[b"d"] is not db.data[b"a"]
    run("SADD", "d", "new")
    assert b"new" not in db.data[b"a"]


def test_sintercard_errors(run, err):
    run("SADD", "s", "a")
    numkeys = "ERR numkeys should be greater than 0"
    for raw in ("0", "-1", "x", "9223372036854775808"):
        assert err(run("SINTERCARD", raw, "s")) == numkeys, raw
    assert err(run("SINTERCARD", "2", "s")) == (
        "ERR Number of keys can't be greater than number of args")
    for raw in ("-1", "x", "9223372036854775808"):
        assert err(run("SINTERCARD", "1", "s", "LIMIT", raw)) == "ERR LIMIT can't be negative"
    for extra in (("LIMIT",), ("foo",), ("s", "LIMIT", "1"), ("LIMIT", "1", "x")):
        assert err(run("SINTERCARD", "1", "s", *extra)) == SYNTAX, extra


# -- SSCAN ---------------------------------------------------------------------


def test_sscan_intset_in_one_go(run):
    run("SADD", "s", "10", "-3", "7")
    assert run("SSCAN", "s", "0") == [b"0", [b"-3", b"7", b"10"]]
    assert run("SSCAN", "s", "123", "COUNT", "1") == [b"0", [b"-3", b"7", b"10"]]
    assert run("SSCAN", "s", "0", "MATCH", "1*") == [b"0", [b"10"]]


def scan_all(run, key: str, count: int, between=None) -> list[bytes]:
    cursor, seen = b"0", []
    while True:
        cursor, page = run("SSCAN", key, cursor, "COUNT", count)
        assert len(page) <= count
        seen += page
        if cursor == b"0":
            return seen
        if between is not None:
            between()


def test_sscan_pages(run):
    universe = {f"m{i}".encode() for i in range(95)}
    run("SADD", "s", *universe)
    seen = scan_all(run, "s", 10)
    assert len(seen) == 95 and set(seen) == universe
    assert run("SSCAN", "s", "0", "COUNT", "1000")[0] == b"0"
    cursor, page = run("SSCAN", "s", "0", "COUNT", "5", "MATCH", "m1*")
    assert cursor != b"0" and all(m.startswith(b"m1") for m in page)


def test_sscan_returns_every_member_present_throughout(run, db):
    """Members added and removed between calls: those present all along come back."""
    stable = {f"stable{i}".encode() for i in range(300)}
    run("SADD", "s", *stable, *[f"churn{i}" for i in range(300)])
    state = {"next": 300}

    def churn():
        run("SREM", "s", f"churn{state['next'] - 300}", f"churn{state['next'] - 299}")
        run("SADD", "s", f"churn{state['next']}", f"churn{state['next'] + 1}",
            f"churn{state['next'] + 2}")
        state["next"] += 3

    seen = set(scan_all(run, "s", 7, churn))
    assert stable <= seen


def test_scan_positions_cost_is_the_page():
    members = [b"%d" % i for i in range(10)]
    assert scan_positions(members, 0, 4) == ([b"9", b"8", b"7", b"6"], 6)
    assert scan_positions(members, 6, 4) == ([b"5", b"4", b"3", b"2"], 2)
    assert scan_positions(members, 2, 4) == ([b"1", b"0"], 0)
    assert scan_positions(members, 1 << 63, 4) == ([b"9", b"8", b"7", b"6"], 6)


def test_sscan_errors(run, err, with_hash):
    run("SADD", "s", "a")
    assert err(run("SSCAN", "s", "x")) == "ERR invalid cursor"
    assert err(run("SSCAN", "missing", "x")) == "ERR invalid cursor"
    assert run("SSCAN", "missing", "0", "bogus") == [b"0", []]  # options unread
    assert err(run("SSCAN", "h", "0", "bogus")) == WRONGTYPE
    for options in (("bogus",), ("COUNT",), ("COUNT", "0"), ("TYPE", "set"), ("MATCH",)):
        assert err(run("SSCAN", "s", "0", *options)) == SYNTAX, options
    assert err(run("SSCAN", "s", "0", "COUNT", "x")) == (
        "ERR value is not an integer or out of range")


# -- purity and drafts -----------------------------------------------------------


def test_writes_through_a_draft_leave_the_live_keyspace_alone():
    live = Keyspace()
    call(live, "SADD", "a", "1", "2", "3")
    call(live, "SADD", "b", "3", "4")
    draft = KeyspaceDraft(lambda key: live, NOW)
    for args in (("SMOVE", "a", "b", "1"), ("SPOP", "a"), ("SREM", "b", "4"),
                 ("SADD", "a", "9"), ("SINTERSTORE", "c", "a", "b")):
        COMMANDS[args[0].lower()].handler(draft, [a.encode() for a in args], NOW)
    assert set(live.data[b"a"].members) == {b"1", b"2", b"3"}
    assert set(live.data[b"b"].members) == {b"3", b"4"}
    assert b"c" not in live.data
    assert set(draft.changes[b"b"][0].members) == {b"1", b"3"}


_NODE_SCRIPT = """
import json, sys
sys.path[:0] = sys.argv[1:]
from commands_support import call
from respkv.state.keyspace import Keyspace
db = Keyspace()
call(db, "SADD", "a", *[f"m{i}" for i in range(300)])
call(db, "SADD", "b", *[f"m{i}" for i in range(0, 600, 2)])
call(db, "SREM", "a", *[f"m{i}" for i in range(0, 300, 7)])
out = [list(call(db, "SPOP", "a", "9")), call(db, "SPOP", "b").decode()]
for name in ("SUNIONSTORE", "SINTERSTORE", "SDIFFSTORE"):
    call(db, name, "d", "a", "b")
    out.append([m.decode() for m in db.data[b"d"].members])
out[0] = [m.decode() for m in out[0]]
print(json.dumps(out))
"""


def test_writes_do_not_depend_on_the_process_hash_seed():
    """Nodes are separate processes, each with its own str/bytes hash seed: what a write
    picks and the order it stores must not depend on it."""
    here = Path(__file__).parent
    root = here.parent.parent
    results = []
    for seed in ("1", "2", "3"):
        env = dict(os.environ, PYTHONHASHSEED=seed)
        out = subprocess.run(
            [sys.executable, "-c", _NODE_SCRIPT, str(here), str(root)],
            env=env, capture_output=True, text=True, check=True, timeout=60,
        )
        results.append(json.loads(out.stdout))
    assert results[0] == results[1] == results[2]


# -- costs -----------------------------------------------------------------------


def _best_of(fn, rounds: int = 5) -> float:
    best = float("inf")
    for _ in range(rounds):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def test_large_set_writes_cost_what_small_ones_do():
    small, large = Keyspace(), Keyspace()
    call(small, "SADD", "s", *range(10_000))
    large.set(b"s", SetValue(b"%d" % i for i in range(1_000_000)))
    handlers = {name: COMMANDS[name].handler for name in ("sadd", "srem", "spop", "sscan")}
    now = [NOW]

    def burst(db: Keyspace) -> None:
        for i in range(200):
            now[0] += 1
            handlers["sadd"](db, [b"SADD", b"s", b"new%d" % i], now[0])
            handlers["srem"](db, [b"SREM", b"s", b"new%d" % i], now[0])
            handlers["spop"](db, [b"SPOP", b"s", b"3"], now[0])
            handlers["spop"](db, [b"SPOP", b"s"], now[0])
            handlers["sscan"](db, [b"SSCAN", b"s", b"%d" % (1000 + i)], now[0])
            call_args = [b"SADD", b"s", b"%d" % i, b"%d" % (i + 1)]
            handlers["sadd"](db, call_args, now[0])

    small_time = _best_of(lambda: burst(small))
    large_time = _best_of(lambda: burst(large))
    assert large_time < 5 * small_time + 0.05, (small_time, large_time)
