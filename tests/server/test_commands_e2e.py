"""Every command family end to end through redis-py, against a real server.

The handlers' edge cases are unit-tested in tests/commands; these check that
each family works through the whole path (parse, route, log, apply, reply)
and that redis-py accepts the replies.
"""

from __future__ import annotations

import time

import pytest
import redis

from testsupport.processes import Node
from testsupport.waiting import wait_for


@pytest.fixture
def r(any_protocol: redis.Redis) -> redis.Redis:
    """Every test of this module runs in RESP2 and in RESP3."""
    return any_protocol


def test_strings(r: redis.Redis) -> None:
    assert r.set("s", "v") is True
    assert r.get("s") == b"v"
    assert r.set("s", "w", nx=True) is None
    assert r.set("s", "w", xx=True) is True
    assert r.set("s", "x", get=True) == b"w"
    assert r.setnx("s", "y") is False
    assert r.getset("s", "z") == b"x"
    assert r.append("s", "12") == 3
    assert r.strlen("s") == 3
    assert r.getrange("s", 1, -1) == b"12"
    assert r.execute_command("SUBSTR", "s", 0, 0) == b"z"
    assert r.setrange("s", 5, "!") == 6
    assert r.get("s") == b"z12\x00\x00!"
    assert r.mset({"m1": "a", "m2": "b"}) is True
    assert r.mget("m1", "missing", "m2") == [b"a", None, b"b"]
    assert r.msetnx({"m2": "c", "m3": "d"}) is False
    assert r.msetnx({"m3": "d", "m4": "e"}) is True
    assert r.getdel("m4") == b"e"
    assert r.get("m4") is None


def test_counters(r: redis.Redis) -> None:
    assert r.incr("n") == 1
    assert r.incrby("n", 10) == 11
    assert r.decr("n") == 10
    assert r.decrby("n", 20) == -10
    assert r.incrbyfloat("f", 1.5) == 1.5
    assert r.incrbyfloat("f", "-0.25") == 1.25
    assert r.get("f") == b"1.25"
    r.set("big", 2**63 - 1)
    with pytest.raises(redis.ResponseError, match=r"^increment or decrement would overflow$"):
        r.incr("big")
    r.set("text", "abc")
    with pytest.raises(redis.ResponseError, match=r"^value is not an integer or out of range$"):
        r.incr("text")
    with pytest.raises(redis.ResponseError, match=r"^value is not an integer or out of range$"):
        r.incrby("n", "1.5")
    with pytest.raises(redis.ResponseError, match=r"^value is not a valid float$"):
        r.incrbyfloat("text", 1)
    assert r.get("text") == b"abc"  # a failed write changes nothing


def test_syntax_and_arity_errors(r: redis.Redis) -> None:
    with pytest.raises(redis.ResponseError, match=r"^syntax error$"):
        r.execute_command("SET", "k", "v", "BOGUS")
    with pytest.raises(redis.ResponseError, match=r"^syntax error$"):
        r.execute_command("SET", "k", "v", "NX", "XX")
    with pytest.raises(redis.ResponseError, match=r"^invalid expire time in 'set' command$"):
        r.execute_command("SET", "k", "v", "EX", "0")
    with pytest.raises(redis.ResponseError, match="wrong number of arguments for 'mset'"):
        r.execute_command("MSET", "a", "1", "b")
    with pytest.raises(redis.ResponseError, match=r"^unknown command 'NOSUCH'"):
        r.execute_command("NOSUCH", "x")
    assert r.exists("k") == 0


def test_keyspace(r: redis.Redis) -> None:
    r.mset({"a": 1, "b": 2, "c": 3, "other": 4})
    assert r.exists("a", "b", "missing", "a") == 3
    assert r.type("a") == b"string"
    assert r.type("missing") == b"none"
    assert r.delete("a", "missing") == 1
    assert r.unlink("b") == 1
    assert r.touch("c", "other", "missing") == 2
    assert r.rename("c", "d") is True
    with pytest.raises(redis.ResponseError, match=r"^no such key$"):
        r.rename("missing", "x")
    assert r.renamenx("d", "other") is False
    assert r.copy("d", "e") is True
    assert r.copy("d", "e") is False
    assert r.copy("d", "e", replace=True) is True
    assert sorted(r.keys("*")) == [b"d", b"e", b"other"]
    assert sorted(r.keys("?")) == [b"d", b"e"]
    assert r.randomkey() in (b"d", b"e", b"other")
    assert r.dbsize() == 3
    assert r.flushdb() is True
    assert r.dbsize() == 0
    assert r.randomkey() is None
    r.set("x", 1)
    assert r.flushall() is True
    assert r.keys() == []


def test_scan(r: redis.Redis) -> None:
    r.mset({f"user:{i}": i for i in range(250)} | {f"item:{i}": i for i in range(50)})
    seen = set(r.scan_iter(count=20))
    assert len(seen) == 300
    users = set(r.scan_iter(match="user:1*", count=50))
    assert users == {f"user:{i}".encode() for i in range(250) if str(i).startswith("1")}
    assert set(r.scan_iter(_type="string", match="item:*")) == {
        f"item:{i}".encode() for i in range(50)}
    cursor, keys = r.scan(0, count=1000)
    assert cursor == 0 and len(keys) == 300


def test_expiry_commands(r: redis.Redis) -> None:
    r.set("k", "v")
    assert r.ttl("k") == -1
    assert r.ttl("missing") == -2
    assert r.expire("k", 100) is True
    assert 99 <= r.ttl("k") <= 100
    assert 99_000 <= r.pttl("k") <= 100_000
    assert r.expire("k", 50, gt=True) is False
    assert r.expire("k", 200, gt=True) is True
    assert r.expire("k", 10, nx=True) is False
    assert r.persist("k") is True
    assert r.ttl("k") == -1
    at = int(time.time()) + 1000
    assert r.expireat("k", at) is True
    assert r.expiretime("k") == at
    assert r.pexpireat("k", at * 1000 + 5) is True
    assert r.pexpiretime("k") == at * 1000 + 5
    assert r.pexpire("k", 100_000) is True
    r.set("e", "v", ex=100)
    assert 0 < r.ttl("e") <= 100
    r.execute_command("SETEX", "e2", 100, "v")
    r.psetex("e3", 100_000, "v")
    assert r.getex("e3", persist=True) == b"v"
    assert r.ttl("e3") == -1
    r.set("e", "w", keepttl=True)
    assert r.ttl("e") > 0
    assert r.info("keyspace")["db0"]["expires"] >= 3


def test_key_expires_and_is_reclaimed(r: redis.Redis) -> None:
    r.set("keep", "v")
    r.set("gone", "v", px=300)
    r.set("gone2", "v")
    r.pexpire("gone2", 300)
    assert r.get("gone") == b"v"
    wait_for(lambda: r.get("gone") is None and r.get("gone2") is None, 5, "keys to expire")
    assert r.exists("gone", "gone2") == 0
    assert r.ttl("gone") == -2
    # the leader proposes the deletions: the keys leave the keyspace itself
    wait_for(lambda: r.dbsize() == 1, 5, "expired keys reclaimed")
    assert r.keys() == [b"keep"]


def test_expire_in_past_deletes(r: redis.Redis) -> None:
    r.set("k", "v")
    assert r.expireat("k", int(time.time()) - 10) is True
    assert r.get("k") is None
    assert r.dbsize() == 0


def test_binary_keys_and_large_values(r: redis.Redis) -> None:
    key = b"\x00\xff\r\nkey"
    value = bytes(range(256)) * 4096
    assert r.set(key, value) is True
    assert r.get(key) == value
    assert r.strlen(key) == len(value)
    assert r.keys(b"\x00*") == [key]


def test_pipelined_writes_and_reads(r: redis.Redis) -> None:
    pipe = r.pipeline(transaction=False)
    for i in range(200):
        pipe.set(f"p{i}", i)
        pipe.incr("pcount")
        pipe.get(f"p{i}")
    results = pipe.execute()
    assert results[0::3] == [True] * 200
    assert results[1::3] == list(range(1, 201))
    assert results[2::3] == [str(i).encode() for i in range(200)]


def test_many_clients_interleaved(node: Node, r: redis.Redis) -> None:
    clients = [node.client() for _ in range(8)]
    for round_ in range(25):
        for i, client in enumerate(clients):
            assert client.incr("shared") == round_ * len(clients) + i + 1
    assert r.get("shared") == b"200"
    for client in clients:
        client.close()
