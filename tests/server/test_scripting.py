"""EVAL and friends on a real server: the script cache, redis-py's Lock (EVALSHA), a
script's writes going through the log as one entry, errors after a write, -BUSY and
SCRIPT KILL for a slow script, and the keys a script may touch.

The server runs several groups: a script's keys share a {hash tag}, as in Redis Cluster."""

from __future__ import annotations

import hashlib
import threading
import time

import pytest
import redis
from rawconn import RawConn, resp

from testsupport.processes import Node
from testsupport.waiting import wait_for

LOOP = "local i = 0 while true do i = i + 1 end"


def test_eval_reads_writes_and_replies(node: Node, r: redis.Redis) -> None:
    r.set("{s}a", "5")
    script = """
        local v = tonumber(redis.call('GET', KEYS[1]))
        redis.call('SET', KEYS[2], v * 2)
        redis.call('RPUSH', KEYS[3], ARGV[1], ARGV[2])
        return {v, redis.call('GET', KEYS[2]), redis.call('LRANGE', KEYS[3], 0, -1)}
    """
    assert r.eval(script, 3, "{s}a", "{s}b", "{s}l", "x", "y") == [5, b"10", [b"x", b"y"]]
    assert r.get("{s}b") == b"10"
    assert r.lrange("{s}l", 0, -1) == [b"x", b"y"]


def test_script_cache(node: Node, r: redis.Redis) -> None:
    r.script_flush()
    sha = r.script_load("return ARGV[1]")
    assert sha == hashlib.sha1(b"return ARGV[1]").hexdigest()
    assert r.script_exists(sha, "0" * 40) == [True, False]
    assert r.evalsha(sha, 0, "hi") == b"hi"
    with pytest.raises(redis.exceptions.NoScriptError):
        r.evalsha("0" * 40, 0)
    r.eval("return 1", 0)  # EVAL caches what it ran
    assert r.script_exists(hashlib.sha1(b"return 1").hexdigest()) == [True]
    r.script_flush()
    assert r.script_exists(sha) == [False]
    with pytest.raises(redis.ResponseError, match="Error compiling script"):
        r.script_load("return (")
    with pytest.raises(redis.ResponseError, match="NOTBUSY"):
        r.script_kill()


def test_redis_py_lock(node: Node, r: redis.Redis) -> None:
    r.script_flush()  # the lock's scripts must be loaded again, as after a restart
    lock = r.lock("{lock}job", timeout=5)
    assert lock.acquire(blocking=False)
    other = r.lock("{lock}job", timeout=5)
    assert not other.acquire(blocking=False)
    assert lock.extend(10)
    assert 5000 < r.pttl("{lock}job") <= 15000
    assert lock.reacquire()
    lock.release()
    assert r.exists("{lock}job") == 0
    assert other.acquire(blocking=False)
    lock.local.token = b"a token that no longer holds it"
    with pytest.raises(redis.exceptions.LockNotOwnedError):
        lock.release()  # another owner holds it now: the release script refuses
    other.release()


def test_writes_before_an_error_are_kept(node: Node, r: redis.Redis) -> None:
    with pytest.raises(redis.ResponseError, match="WRONGTYPE"):
        r.eval("redis.call('SET', KEYS[1], 'v') redis.call('LPUSH', KEYS[1], 'x')",
               1, "{e}k")
    assert r.get("{e}k") == b"v"  # as Redis: a script is not rolled back
    assert r.eval("return redis.pcall('LPUSH', KEYS[1], 'x')['err']", 1, "{e}k") \
        .startswith(b"WRONGTYPE")


def test_randomness_replays_as_the_script_saw_it(node: Node, r: redis.Redis) -> None:
    r.sadd("{r}s", *range(50))
    popped = r.eval("return redis.call('SPOP', KEYS[1], 10)", 1, "{r}s")
    assert len(popped) == 10
    left = r.smembers("{r}s")
    assert len(left) == 40 and not left & set(popped)  # applied what the script got


def test_keys_a_script_may_touch(node: Node, r: redis.Redis) -> None:
    with pytest.raises(redis.exceptions.ClusterCrossSlotError):
        r.eval("return 1", 2, "{a}x", "{b}x")
    with pytest.raises(redis.ResponseError, match="non local key"):
        r.eval("return redis.call('GET', 'elsewhere')", 1, "{a}x")
    with pytest.raises(redis.ResponseError, match="not allowed from script"):
        r.eval("return redis.call('MULTI')", 0)
    with pytest.raises(redis.ResponseError, match="not allowed from script"):
        r.eval("return redis.call('CLIENT', 'LIST')", 0)  # client|list is noscript
    with pytest.raises(redis.ResponseError, match="not allowed from read-only scripts"):
        r.eval_ro("return redis.call('SET', KEYS[1], 1)", 1, "{a}x")
    with pytest.raises(redis.ResponseError, match="not allowed from read-only scripts"):
        r.eval("#!lua flags=no-writes\nreturn redis.call('SET', KEYS[1], 1)", 1, "{a}x")
    assert r.exists("{a}x") == 0
    seconds, micros = r.eval("return redis.call('TIME')", 0)
    assert abs(int(seconds) - time.time()) < 5 and 0 <= int(micros) < 1_000_000
    assert r.eval("return redis.call('PING')", 0) == b"PONG"


def test_a_slow_script_makes_others_busy_until_killed(node: Node, r: redis.Redis) -> None:
    r.config_set("busy-reply-threshold", 200)
    r.set("{k}untouched", "before")
    outcome: list[object] = []
    runner = node.client(socket_timeout=30)

    def run() -> None:
        try:
            runner.eval(f"redis.call('SET', KEYS[1], 'during') {LOOP}", 1, "{k}untouched")
        except redis.ResponseError as error:
            outcome.append(str(error))

    thread = threading.Thread(target=run)
    thread.start()
    try:
        other = node.client(socket_timeout=10)

        def busy() -> bool:
            try:
                other.ping()
            except redis.exceptions.BusyLoadingError:
                return False
            except redis.ResponseError as error:
                return str(error).startswith("BUSY")
            return False

        wait_for(busy, 10, "other clients told -BUSY")
        assert r.execute_command("SCRIPT", "KILL") == b"OK"
        thread.join(10)
        assert outcome and "Script killed by user" in outcome[0]
        wait_for(lambda: other.ping(), 5, "serving again")
        assert r.get("{k}untouched") == b"before"  # a killed script's writes are dropped
        other.close()
    finally:
        r.config_set("busy-reply-threshold", 5000)
        runner.close()


def test_raw_replies_in_resp2_and_resp3(node: Node, r: redis.Redis) -> None:
    with RawConn(node.port) as conn:
        conn.send(resp("EVAL", "return {1, 'two', {err='ERR x'}, 3.9, true, false}", "0"))
        conn.expect(b"*6\r\n:1\r\n$3\r\ntwo\r\n-ERR x\r\n:3\r\n:1\r\n$-1\r\n")
        conn.send(resp("HELLO", "3"))
        conn.replies(1)
        conn.send(resp("EVAL", "redis.setresp(3) return redis.call('HGETALL', KEYS[1])",
                       "1", "{h}none"))
        conn.expect(b"%0\r\n")


def test_scripts_inside_multi_exec(node: Node, r: redis.Redis) -> None:
    """redis-py's transactional pipeline with a registered script (EVALSHA in MULTI):
    each command sees the ones before it, and the replies come in their places."""
    r.script_flush()
    double = r.register_script(
        "local v = redis.call('INCRBY', KEYS[1], ARGV[1]) return v * 2")
    with r.pipeline() as pipe:
        pipe.set("{m}n", 10)
        double(keys=["{m}n"], args=[5], client=pipe)
        pipe.get("{m}n")
        pipe.eval("return redis.call('SET', KEYS[1], 'x')", 1, "{m}other")
        pipe.ping()
        assert pipe.execute() == [True, 30, b"15", b"OK", True]
    assert r.mget("{m}n", "{m}other") == [b"15", b"x"]
    replies = raw_exec(node, ("MULTI",), ("EVALSHA", "0" * 40, "0"),
                       ("EVAL", "return 1", "x"), ("INCR", "{m}n"), ("EXEC",))
    assert replies[:4] == [b"OK", b"QUEUED", b"QUEUED", b"QUEUED"]
    assert [str(x) for x in replies[4][:2]] == [
        "NOSCRIPT No matching script. Please use EVAL.",
        "ERR value is not an integer or out of range"]
    assert replies[4][2] == 16


def test_watch_aborts_a_transaction_holding_a_script(node: Node, r: redis.Redis) -> None:
    other = node.client()
    with r.pipeline() as pipe:
        pipe.watch("{w}k")
        other.set("{w}k", "changed")
        pipe.multi()
        pipe.eval("return redis.call('SET', KEYS[1], 'mine')", 1, "{w}k")
        with pytest.raises(redis.exceptions.WatchError):
            pipe.execute()
    assert r.get("{w}k") == b"changed"
    other.close()


def raw_exec(node: Node, *commands: tuple[str, ...]) -> list[object]:
    with RawConn(node.port) as conn:
        conn.send(b"".join(resp(*c) for c in commands))
        return conn.replies(len(commands))
