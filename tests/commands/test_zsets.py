"""Sorted set commands: semantics, the handler contract (pure writes, untouched reads,
change tracking), the pop core the blocking pops share, and costs. Byte-for-byte
replies are in test_zsets_vs_redis.py."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from commands_support import BINARY, NOW, call
from hypothesis import given
from hypothesis import strategies as st

from respkv.commands.table import COMMANDS
from respkv.commands.zsets import (
    _cursor_score,
    listpack_text,
    mpop,
    parse_score,
    pop_extreme,
    scan_page,
    score_cursor,
    score_text,
)
from respkv.protocol.reply import RespError
from respkv.state.keyspace import Keyspace
from respkv.state.values import HashValue, SetValue, ZSetValue
from respkv.state.views import KeyspaceDraft

WRONGTYPE = "WRONGTYPE Operation against a key holding the wrong kind of value"


def scores(db: Keyspace, key: bytes) -> dict[bytes, float]:
    value = db.data.get(key)
    assert value is None or type(value) is ZSetValue
    if value is None:
        return {}
    assert sorted((s, m) for m, s in value.scores.items()) == list(value.ordered)
    return dict(value.scores)


def flat(pairs: list) -> list:
    """A reply of pairs (a Pairs, or already flat) as one flat list."""
    if pairs and isinstance(pairs[0], list | tuple):
        return [x for pair in pairs for x in pair]
    return list(pairs)


# -- the table -------------------------------------------------------------------


def test_movable_keys_are_found():
    def keys(*args: object) -> list[bytes]:
        argv = [str(a).encode() for a in args]
        return list(COMMANDS[argv[0].decode().lower()].keys(argv))

    assert keys("ZUNIONSTORE", "d", 2, "a", "b", "WEIGHTS", 1, 2) == [b"d", b"a", b"b"]
    assert keys("ZDIFFSTORE", "d", 1, "a") == [b"d", b"a"]
    assert keys("ZINTER", 2, "a", "b", "WITHSCORES") == [b"a", b"b"]
    assert keys("ZINTERCARD", 1, "a", "LIMIT", 1) == [b"a"]
    assert keys("ZMPOP", 2, "a", "b", "MIN") == [b"a", b"b"]
    assert keys("ZRANGESTORE", "d", "s", 0, 1) == [b"d", b"s"]
    assert keys("ZMPOP", 5, "a", "MIN") == []  # the handler answers the error


@pytest.mark.parametrize("name", [n for n in COMMANDS if n.startswith("z")])
def test_family(name):
    assert COMMANDS[name].family == "sorted-set"


# -- ZADD and friends ------------------------------------------------------------


def test_zadd_and_reads(run, db):
    assert run("ZADD", "z", 1, "a", 2, "b", "1.5", BINARY) == 3
    assert scores(db, b"z") == {b"a": 1.0, b"b": 2.0, BINARY: 1.5}
    assert run("ZRANGE", "z", 0, -1) == [b"a", BINARY, b"b"]
    assert run("ZSCORE", "z", BINARY) == 1.5
    assert run("ZRANK", "z", "b") == 2
    assert run("ZREVRANK", "z", "b") == 0
    assert run("ZCARD", "z") == 3
    assert run("ZMSCORE", "z", "a", "x") == [1.0, None]


def test_zadd_options(run, db):
    run("ZADD", "z", 5, "a")
    assert run("ZADD", "z", "GT", "CH", 4, "a", 6, "b") == 1  # b added, a not lowered
    assert run("ZADD", "z", "LT", "CH", 4, "a") == 1
    assert run("ZADD", "z", "XX", 1, "new") == 0
    assert run("ZADD", "z", "NX", 1, "a") == 0
    assert run("ZADD", "z", "INCR", "2.5", "a") == 6.5
    assert run("ZADD", "z", "NX", "INCR", 1, "a") is None
    assert run("ZADD", "z", 1, "c", 2, "c") == 1  # applied in order: added, then updated
    assert scores(db, b"z") == {b"a": 6.5, b"b": 6.0, b"c": 2.0}


@pytest.mark.parametrize(("args", "text"), [
    (["NX", "XX", 1, "a"], "ERR XX and NX options at the same time are not compatible"),
    (["GT", "LT", 1, "a"], "ERR GT, LT, and/or NX options at the same time are not compatible"),
    (["NX", "GT", 1, "a"], "ERR GT, LT, and/or NX options at the same time are not compatible"),
    (["INCR", 1, "a", 2, "b"], "ERR INCR option supports a single increment-element pair"),
    ([1, "a", 2], "ERR syntax error"),
    (["x", "a"], "ERR value is not a valid float"),
    ([1, "a", "nan", "b"], "ERR value is not a valid float"),
])
def test_zadd_errors_change_nothing(run, err, db, args, text):
    run("ZADD", "z", 1, "a")
    assert err(run("ZADD", "z", *args)) == text
    assert err(run("ZADD", "new", *args)) == text
    assert scores(db, b"z") == {b"a": 1.0} and b"new" not in db.data


def test_incr_to_nan_changes_nothing(run, err, db):
    run("ZADD", "z", "inf", "a")
    assert err(run("ZINCRBY", "z", "-inf", "a")) == "ERR resulting score is not a number (NaN)"
    assert scores(db, b"z") == {b"a": math.inf}


def test_negative_zero_is_stored_as_zero(run, db):
    reply = run("ZADD", "z", "INCR", "-0", "a")
    assert math.copysign(1, reply) == -1  # the reply is the sum itself
    run("ZADD", "z", "-0", "b")
    run("ZUNIONSTORE", "d", 1, "z", "WEIGHTS", -1)
    for key in (b"z", b"d"):
        assert all(math.copysign(1, s) == 1 for s in scores(db, key).values())


def test_wrongtype(run, err, db):
    db.set(b"h", HashValue({b"f": b"v"}))
    db.set(b"str", b"x")
    for key in ("h", "str"):
        for args in (("ZADD", key, 1, "a"), ("ZREM", key, "a"), ("ZCARD", key),
                     ("ZRANGE", key, 0, -1), ("ZPOPMIN", key), ("ZSCAN", key, 0),
                     ("ZUNION", 1, key), ("ZRANDMEMBER", key), ("ZMPOP", 1, key, "MIN")):
            assert err(run(*args)) == WRONGTYPE, args


def test_emptied_sets_are_deleted(run, db):
    for args in (("ZREM", "z", "a", "b"), ("ZPOPMIN", "z", 5), ("ZREMRANGEBYRANK", "z", 0, -1),
                 ("ZREMRANGEBYSCORE", "z", "-inf", "inf"), ("ZREMRANGEBYLEX", "z", "-", "+"),
                 ("ZMPOP", 1, "z", "MAX", "COUNT", 3)):
        run("ZADD", "z", 0, "a", 0, "b")
        run(*args)
        assert b"z" not in db.data, args


def test_expired_key_is_absent(run, db):
    run("ZADD", "z", 1, "a")
    run("PEXPIRE", "z", 10)
    assert run("ZCARD", "z", now=NOW + 5) == 1
    assert run("ZCARD", "z", now=NOW + 10) == 0
    assert run("ZADD", "z", "XX", 1, "a", now=NOW + 10) == 0
    assert b"z" not in db.data  # the writer deleted it


def test_writes_record_only_what_changed(db):
    db.set(b"z", ZSetValue({b"m%d" % i: float(i) for i in range(100)}))
    value = db.data[b"z"]
    value.mark_stored()
    def run(*args: str) -> None:
        COMMANDS[args[0].lower()].handler(db, [a.encode() for a in args], NOW)

    run("ZADD", "z", "1", "m1", "500", "m2", "7", "new")  # m1 unchanged
    assert value.changed == {b"m2", b"new"}
    value.mark_stored()
    run("ZPOPMAX", "z", "2")
    run("ZREMRANGEBYSCORE", "z", "10", "(12")
    assert value.changed == {b"m2", b"m99", b"m10", b"m11"}


def test_stores_drop_the_ttl_and_replace_any_type(run, db):
    run("ZADD", "src", 1, "a")
    db.set(b"d", b"string")
    run("PEXPIRE", "d", 1000)
    assert run("ZUNIONSTORE", "d", 1, "src") == 1
    assert db.ttl_ms(b"d") is None and scores(db, b"d") == {b"a": 1.0}
    run("PEXPIRE", "d", 1000)
    run("ZADD", "d", 2, "b")  # a change in place keeps it
    assert db.ttl_ms(b"d") == NOW + 1000


def test_plain_sets_score_one(run, db):
    db.set(b"s", SetValue([b"a", b"b"]))
    run("ZADD", "z", 5, "a")
    assert flat(run("ZUNION", 2, "s", "z", "WITHSCORES")) == [b"b", 1.0, b"a", 6.0]
    assert flat(run("ZINTER", 2, "s", "z", "WEIGHTS", 3, 1, "WITHSCORES")) == [b"a", 8.0]
    assert run("ZDIFF", 2, "s", "z") == [b"b"]


# -- formatting -------------------------------------------------------------------


@pytest.mark.parametrize(("score", "text", "listpack"), [
    (1.1, b"1.1000000000000001", b"1.1000000000000001"),
    (1e17, b"1e+17", b"100000000000000000"),
    (9.2e18, b"9.2e+18", b"9.2e+18"),
    (-0.0, b"-0", b"0"),
    (math.inf, b"inf", b"inf"),
    (-math.inf, b"-inf", b"-inf"),
    (2.5, b"2.5", b"2.5"),
    (1e-310, b"9.9999999999999694e-311", b"9.9999999999999694e-311"),
])
def test_score_texts(score, text, listpack):
    assert score_text(score) == text
    assert listpack_text(score) == listpack


@pytest.mark.parametrize("raw", [b"1e400", b"-1e400", b"1e-400", b"0x1p99999", b" 1", b"",
                                 b"nan", b"1\x00"])
def test_parse_score_rejects(raw):
    with pytest.raises(RespError):
        parse_score(raw)


@pytest.mark.parametrize(("raw", "value"), [(b"inf", math.inf), (b"-Infinity", -math.inf),
                                            (b"0x10", 16.0), (b"0e999", 0.0), (b"1e-310", 1e-310)])
def test_parse_score_accepts(raw, value):
    assert parse_score(raw) == value


# -- the pop core ------------------------------------------------------------------


def test_pop_extreme(db):
    call(db, "ZADD", "z", 1, "a", 2, "b", 3, "c")
    assert pop_extreme(db, b"z", 2, True, NOW) == [(b"c", 3.0), (b"b", 2.0)]
    assert pop_extreme(db, b"z", 0, False, NOW) == []
    assert pop_extreme(db, b"z", 5, False, NOW) == [(b"a", 1.0)]
    assert b"z" not in db.data
    assert pop_extreme(db, b"z", 1, False, NOW) is None
    db.set(b"str", b"x")
    with pytest.raises(RespError, match="WRONGTYPE"):
        pop_extreme(db, b"str", 1, False, NOW)


def test_mpop(db):
    call(db, "ZADD", "b", 1, "x", 2, "y")
    assert mpop(db, [b"nokey", b"b"], 1, False, NOW) == (b"b", [(b"x", 1.0)])
    assert mpop(db, [b"nokey"], 1, False, NOW) is None
    db.set(b"str", b"x")
    with pytest.raises(RespError, match="WRONGTYPE"):
        mpop(db, [b"nokey", b"str", b"b"], 1, False, NOW)
    assert mpop(db, [b"b", b"str"], 9, True, NOW) == (b"b", [(b"y", 2.0)])


# -- ZRANDMEMBER ---------------------------------------------------------------------


def test_zrandmember_properties(run, db):
    run("ZADD", "z", *[x for i in range(20) for x in (i, f"m{i}")])
    every = scores(db, b"z")
    for count in (1, 5, 19):
        picked = run("ZRANDMEMBER", "z", count)
        assert len(picked) == count == len(set(picked)) and set(picked) <= set(every)
    repeated = run("ZRANDMEMBER", "z", -50)
    assert len(repeated) == 50 and set(repeated) <= set(every)
    pairs = flat(run("ZRANDMEMBER", "z", 7, "WITHSCORES"))
    assert all(every[m] == s for m, s in zip(pairs[::2], pairs[1::2], strict=True))
    assert run("ZRANDMEMBER", "z") in every
    assert run("ZRANDMEMBER", "z", 25) == [b"m%d" % i for i in range(19, -1, -1)]


# -- ZSCAN ---------------------------------------------------------------------------


@given(st.floats(allow_nan=False), st.floats(allow_nan=False))
def test_score_cursors_keep_the_order(a, b):
    if a < b:
        assert score_cursor(a) < score_cursor(b)
    assert score_cursor(a) > 0
    assert _cursor_score(score_cursor(a)) == a


def test_zscan_small_set_in_one_go(run):
    run("ZADD", "z", 2, "b", 1, "a")
    assert run("ZSCAN", "z", 12345, "COUNT", 1) == [b"0", [b"a", b"1", b"b", b"2"]]


def test_zscan_returns_every_member_present_throughout(run, db):
    run("ZADD", "z", *[x for i in range(500) for x in (i // 3, f"m{i}")])
    cursor, seen, step = b"0", set(), 0
    while True:
        cursor, items = run("ZSCAN", "z", cursor, "COUNT", 7)
        seen.update(items[::2])
        step += 1
        run("ZADD", "z", step % 170, f"new{step}")  # churn meanwhile
        run("ZREM", "z", f"m{(step * 37) % 500}")
        if cursor == b"0":
            break
    survivors = {f"m{i}".encode() for i in range(500)} - {
        f"m{(s * 37) % 500}".encode() for s in range(1, step + 1)}
    assert survivors <= seen


def test_scan_page_takes_whole_score_groups():
    value = ZSetValue({b"m%d" % i: float(i // 10) for i in range(300)})
    page, cursor = scan_page(value, 0, 3)
    assert len(page) == 10 and _cursor_score(cursor) == 1.0
    page, cursor = scan_page(value, cursor, 15)
    assert len(page) == 20 and _cursor_score(cursor) == 3.0
    assert scan_page(value, score_cursor(math.inf), 5) == ([], 0)


# -- purity and drafts ----------------------------------------------------------------


def test_writes_through_a_draft_leave_the_live_keyspace_alone():
    live = Keyspace()
    call(live, "ZADD", "a", 1, "x", 2, "y")
    call(live, "ZADD", "b", 3, "y")
    draft = KeyspaceDraft(lambda key: live, NOW)
    for args in (("ZADD", "a", "9", "x"), ("ZPOPMIN", "a"), ("ZUNIONSTORE", "c", "2", "a", "b"),
                 ("ZMPOP", "2", "nokey", "b", "MAX")):
        COMMANDS[args[0].lower()].handler(draft, [a.encode() for a in args], NOW)
    assert scores(live, b"a") == {b"x": 1.0, b"y": 2.0}
    assert scores(live, b"b") == {b"y": 3.0}
    assert b"c" not in live.data
    assert draft.changes[b"c"][0].scores == {b"x": 9.0, b"y": 3.0}
    assert draft.changes[b"b"] == (None, None)


def test_store_reads_sources_without_copying_them():
    live = Keyspace()
    call(live, "ZADD", "a", 1, "x")
    draft = KeyspaceDraft(lambda key: live, NOW)
    COMMANDS["zinterstore"].handler(draft, [b"ZINTERSTORE", b"d", b"2", b"a", b"a"], NOW)
    assert set(draft.changes) == {b"d"}


_NODE_SCRIPT = """
import json, sys
sys.path[:0] = sys.argv[1:]
from commands_support import call
from respkv.commands.zsets import pop_extreme
from respkv.state.keyspace import Keyspace
db = Keyspace()
call(db, "ZADD", "a", *[x for i in range(300) for x in (i % 13, f"m{i}")])
call(db, "SADD", "s", *[f"m{i}" for i in range(0, 600, 2)])
out = []
for name in ("ZUNIONSTORE", "ZINTERSTORE", "ZDIFFSTORE"):
    call(db, name, "d", "2", "a", "s")
    out.append([[m.decode(), s] for m, s in db.data[b"d"].scores.items()])
out.append([[m.decode(), s] for m, s in pop_extreme(db, b"a", 5, False, 0)])
print(json.dumps(out))
"""


def test_writes_do_not_depend_on_the_process_hash_seed():
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


# -- costs ------------------------------------------------------------------------------


def _best_of(fn, rounds: int = 3) -> float:
    best = float("inf")
    for _ in range(rounds):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def test_large_set_commands_cost_what_small_ones_do():
    small, large = Keyspace(), Keyspace()
    small.set(b"z", ZSetValue({b"m%d" % i: float(i % 1000) for i in range(1_000)}))
    large.set(b"z", ZSetValue({b"m%d" % i: float(i % 1000) for i in range(1_000_000)}))
    calls = [[a.encode() if isinstance(a, str) else a for a in args] for args in (
        ("ZADD", "z", "17.5", "new"), ("ZINCRBY", "z", "1", "new"), ("ZREM", "z", "new"),
        ("ZSCORE", "z", "m5"), ("ZRANK", "z", "m5"), ("ZCOUNT", "z", "10", "(500"),
        ("ZLEXCOUNT", "z", "[m1", "[m2"), ("ZRANGE", "z", "-10", "-1", "WITHSCORES"),
        ("ZRANGE", "z", "(10", "500", "BYSCORE", "LIMIT", "5", "5"),
        ("ZRANGE", "z", "+", "-", "BYLEX", "REV", "LIMIT", "0", "3"),
        ("ZREVRANGEBYSCORE", "z", "+inf", "-inf", "LIMIT", "0", "5"),
        ("ZPOPMIN", "z", "2"), ("ZPOPMAX", "z"), ("ZADD", "z", "0", "m0", "999", "m999"),
        ("ZRANDMEMBER", "z", "5"), ("ZSCAN", "z", "0", "COUNT", "1"),
        ("ZREMRANGEBYRANK", "z", "100", "101"), ("ZMPOP", "1", "z", "MIN"),
    )]

    def burst(db: Keyspace) -> None:
        for i in range(100):
            for args in calls:
                COMMANDS[args[0].decode().lower()].handler(db, args, NOW + i)

    small_time = _best_of(lambda: burst(small))
    large_time = _best_of(lambda: burst(large))
    assert large_time < 5 * small_time + 0.05, (small_time, large_time)
