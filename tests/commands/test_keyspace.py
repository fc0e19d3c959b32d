"""Keyspace commands against Redis 7.0's behaviour."""

from __future__ import annotations

import random

import pytest
from commands_support import BINARY, NOW

from respkv.commands.keyspace import parse_cursor
from respkv.state.keyspace import Keyspace, bucket_of
from respkv.state.values import ListValue

SYNTAX = "ERR syntax error"
NOT_INT = "ERR value is not an integer or out of range"


def fill(db: Keyspace, *keys: bytes | str, ttl_at: int | None = None) -> None:
    for key in keys:
        db.set(key if isinstance(key, bytes) else key.encode(), b"v", ttl_at)


# -- DEL / UNLINK / EXISTS / TOUCH / TYPE ------------------------------------


@pytest.mark.parametrize("name", ["DEL", "UNLINK"])
def test_del(run, db, name):
    fill(db, "a", "b", BINARY)
    fill(db, "gone", ttl_at=NOW)
    assert run(name, "a", "a", "nope", BINARY, "gone") == 2  # expired keys do not count
    assert sorted(db.data) == [b"b"]
    assert run(name, "b") == 1
    assert run(name, "b") == 0


@pytest.mark.parametrize("name", ["EXISTS", "TOUCH"])
def test_exists_counts_repeats(run, db, name):
    fill(db, "a", BINARY)
    fill(db, "gone", ttl_at=NOW)
    assert run(name, "a", "a", BINARY, "nope", "gone") == 3
    assert run(name, "gone", now=NOW - 1) == 1


def test_type(run, db):
    fill(db, "s")
    db.set(b"l", ListValue([b"x"]))
    fill(db, "gone", ttl_at=NOW)
    assert run("TYPE", "s") == "string"
    assert type(run("TYPE", "s")).__name__ == "Simple"
    assert run("TYPE", "nope") == "none"
    assert run("TYPE", "gone") == "none"


# -- RENAME / RENAMENX / COPY ------------------------------------------------


def test_rename_moves_value_and_ttl(run, db):
    db.set(b"a", b"1", NOW + 500)
    db.set(b"b", b"2")
    assert run("RENAME", "a", "b") == "OK"
    assert db.data == {b"b": b"1"}
    assert db.expires == {b"b": NOW + 500}
    db.set(b"c", b"3", NOW + 9)
    assert run("RENAME", "b", "c") == "OK"
    assert db.expires == {b"c": NOW + 500}  # the destination's TTL does not survive


def test_rename_errors_and_same_key(run, err, db):
    assert err(run("RENAME", "nope", "x")) == "ERR no such key"
    assert err(run("RENAMENX", "nope", "x")) == "ERR no such key"
    fill(db, "gone", ttl_at=NOW)
    assert err(run("RENAME", "gone", "x")) == "ERR no such key"
    fill(db, "a")
    assert run("RENAME", "a", "a") == "OK"
    assert run("RENAMENX", "a", "a") == 0
    assert db.data == {b"a": b"v"}


def test_renamenx(run, db):
    fill(db, "a", "b")
    fill(db, "gone", ttl_at=NOW)
    assert run("RENAMENX", "a", "b") == 0
    assert run("RENAMENX", "a", "gone") == 1
    assert sorted(db.data) == [b"b", b"gone"]
    assert b"gone" not in db.expires
    fill(db, BINARY)
    assert run("RENAMENX", BINARY, BINARY + b"2") == 1
    assert run("GET", BINARY + b"2") == b"v"


def test_copy(run, err, db):
    db.set(b"a", b"1", NOW + 50)
    fill(db, "b")
    assert run("COPY", "a", "c") == 1
    assert db.data[b"c"] == b"1" and db.expires[b"c"] == NOW + 50
    assert run("COPY", "a", "b") == 0
    assert run("COPY", "a", "b", "REPLACE") == 1
    assert db.expires[b"b"] == NOW + 50
    assert run("COPY", "nope", "b", "replace") == 0
    assert run("COPY", "a", BINARY, "DB", "0") == 1
    assert run("GET", BINARY) == b"1"


def test_copy_makes_an_independent_collection(run, db):
    db.set(b"l", ListValue([b"x"]))
    assert run("COPY", "l", "m") == 1
    db.data[b"m"].push_right(b"y")
    assert list(db.data[b"l"].items) == [b"x"]


@pytest.mark.parametrize(
    ("options", "error"),
    [
        (["DB", "1"], "ERR Copying to another database is not allowed in cluster mode"),
        (["DB", "15", "REPLACE"], "ERR Copying to another database is not allowed in cluster mode"),
        (["DB", "16"], "ERR DB index is out of range"),
        (["DB", "-1"], "ERR DB index is out of range"),
        (["DB", "x"], NOT_INT),
        (["DB", "4294967296"], NOT_INT),
        (["DB"], SYNTAX),
        (["FOO"], SYNTAX),
    ],
)
def test_copy_option_errors(run, err, db, options, error):
    fill(db, "a")
    assert err(run("COPY", "a", "b", *options)) == error


def test_copy_same_key(run, err, db):
    assert err(run("COPY", "a", "a")) == "ERR source and destination objects are the same"


# -- KEYS / SCAN / RANDOMKEY / DBSIZE ----------------------------------------


def test_keys(run, db):
    fill(db, "hello", "hallo", "hxllo", "", BINARY)
    fill(db, "hgone", ttl_at=NOW)
    assert sorted(run("KEYS", "*")) == sorted([b"hello", b"hallo", b"hxllo", b"", BINARY])
    assert sorted(run("KEYS", "h[ae]llo")) == [b"hallo", b"hello"]
    assert sorted(run("KEYS", "h*")) == [b"hallo", b"hello", b"hxllo"]
    assert run("KEYS", b"k\x00*") == [BINARY]
    # Only "*" itself lists the empty key (Redis' shortcut; b"" matches no other pattern).
    assert sorted(run("KEYS", "**")) == sorted([b"hallo", b"hello", b"hxllo", BINARY])


def scan_all(run, count: int = 10, *options: str) -> list[bytes]:
    cursor, seen = b"0", []
    while True:
        cursor, page = run("SCAN", cursor, "COUNT", count, *options)
        seen.extend(page)
        if cursor == b"0":
            return seen


def test_scan_visits_every_key_once(run, db):
    keys = [b"key:%d" % i for i in range(237)] + [BINARY, b""]
    fill(db, *keys)
    fill(db, "gone", ttl_at=NOW)
    for count in (1, 7, 10, 1000):
        seen = scan_all(run, count)
        assert sorted(seen) == sorted(keys)


def test_scan_reply_shape(run, db):
    assert run("SCAN", "0") == [b"0", []]
    fill(db, "a")
    assert run("SCAN", "0") == [b"0", [b"a"]]
    fill(db, *(f"k{i}" for i in range(30)))
    cursor, page = run("SCAN", "0")
    assert len(page) == 10 and cursor != b"0"
    # the cursor is the bucket after the page's last: every key left is at or past it
    assert int(cursor) == max(map(bucket_of, page)) + 1
    assert min(bucket_of(k) for k in db.data if k not in page) >= int(cursor)


def test_scan_guarantee_under_churn(run, db):
    """Keys present for the whole scan come back at least once, whatever changes between calls."""
    rng = random.Random(5)
    stable = [b"stable:%d" % i for i in range(200)]
    fill(db, *stable)
    cursor, seen, step = b"0", set(), 0
    while True:
        cursor, page = run("SCAN", cursor, "COUNT", rng.randint(1, 20))
        seen.update(page)
        for _ in range(5):  # churn: add and remove other keys
            step += 1
            fill(db, b"churn:%d" % step)
            victim = b"churn:%d" % rng.randint(0, step)
            db.delete(victim)
        if cursor == b"0":
            break
    assert set(stable) <= seen


def test_scan_match_and_type(run, db):
    fill(db, "user:1", "user:2", "item:1")
    db.set(b"user:list", ListValue([b"x"]))
    assert sorted(scan_all(run, 100, "MATCH", "user:*")) == [b"user:1", b"user:2", b"user:list"]
    assert sorted(scan_all(run, 100, "MATCH", "user:*", "TYPE", "STRING")) == [b"user:1", b"user:2"]
    assert scan_all(run, 100, "TYPE", "hash") == []
    assert scan_all(run, 100, "TYPE", "nosuchtype") == []
    fill(db, "")
    assert b"" in scan_all(run, 100, "MATCH", "*")


@pytest.mark.parametrize(
    ("args", "error"),
    [
        (["x"], "ERR invalid cursor"),
        ([" 1"], "ERR invalid cursor"),
        (["1 "], "ERR invalid cursor"),
        (["-"], "ERR invalid cursor"),
        (["18446744073709551616"], "ERR invalid cursor"),
        (["0", "COUNT", "0"], SYNTAX),
        (["0", "COUNT", "x"], NOT_INT),
        (["0", "MATCH"], SYNTAX),
        (["0", "FOO", "bar"], SYNTAX),
        (["x", "COUNT", "0"], "ERR invalid cursor"),  # the cursor is checked first
    ],
)
def test_scan_errors(run, err, args, error):
    assert err(run("SCAN", *args)) == error


@pytest.mark.parametrize(
    ("raw", "value"),
    [(b"0", 0), (b"", 0), (b"+5", 5), (b"007", 7), (b"-1", (1 << 64) - 1),
     (b"18446744073709551615", (1 << 64) - 1), (b"0" * 50 + b"1", 1)],
)
def test_parse_cursor_like_strtoul(raw, value):
    assert parse_cursor(raw) == value


def test_scan_cursor_past_the_end(run, db):
    fill(db, "a")
    assert run("SCAN", "-1") == [b"0", []]


def test_randomkey(run, db):
    assert run("RANDOMKEY") is None
    fill(db, "gone", ttl_at=NOW)
    assert run("RANDOMKEY") is None
    fill(db, "a", BINARY)
    assert {run("RANDOMKEY") for _ in range(50)} == {b"a", BINARY}


def test_dbsize(run, db):
    assert run("DBSIZE") == 0
    fill(db, "a", "b")
    fill(db, "gone", ttl_at=NOW)
    fill(db, "later", ttl_at=NOW + 1)
    assert run("DBSIZE") == 3
    assert run("DBSIZE", now=NOW + 1) == 2
    assert run("DBSIZE", now=NOW - 1) == 4


# -- FLUSHDB / FLUSHALL / respkv.reap ----------------------------------------


@pytest.mark.parametrize("name", ["FLUSHDB", "FLUSHALL"])
@pytest.mark.parametrize("mode", [[], ["ASYNC"], ["sync"]])
def test_flush(run, db, name, mode):
    fill(db, "a", "b")
    fill(db, "c", ttl_at=NOW + 5)
    assert run(name, *mode) == "OK"
    assert db.data == {} and db.expires == {}
    assert {b"a", b"b", b"c"} <= db.dirty  # the durable copy hears of the deletes


@pytest.mark.parametrize("name", ["FLUSHDB", "FLUSHALL"])
@pytest.mark.parametrize("mode", [["foo"], ["sync", "async"]])
def test_flush_syntax(run, err, db, name, mode):
    fill(db, "a")
    assert err(run(name, *mode)) == SYNTAX
    assert db.data == {b"a": b"v"}


def test_reap_deletes_only_expired(run, db):
    fill(db, "live")
    fill(db, "old", ttl_at=NOW - 1)
    fill(db, "now", ttl_at=NOW)
    fill(db, "soon", ttl_at=NOW + 1)
    assert run("respkv.reap", "live", "old", "now", "soon", "nope", "old") == 2
    assert sorted(db.data) == [b"live", b"soon"]
    assert b"old" in db.dirty and b"now" in db.dirty


def test_reap_is_internal():
    from respkv.commands.table import COMMANDS

    reap = COMMANDS["respkv.reap"]
    assert "internal" in reap.flags and reap.is_write
    assert list(reap.keys([b"respkv.reap", b"a", b"b"])) == [b"a", b"b"]
