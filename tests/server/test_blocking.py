"""Blocking pops on a real server: a blocked client wakes when another pushes, times
out with Redis' null replies, and checks its arguments as Redis does."""

from __future__ import annotations

import threading
import time

import pytest
import redis
from rawconn import RawConn, resp

from testsupport.processes import Node
from testsupport.waiting import wait_for


def test_blpop_wakes_on_a_push_from_another_client(node: Node, r: redis.Redis) -> None:
    result: list[object] = []
    waiter = node.client(socket_timeout=10)
    thread = threading.Thread(
        target=lambda: result.append(waiter.blpop(["{q}1", "{q}2"], 0)))
    thread.start()
    wait_for(lambda: r.info("clients")["blocked_clients"] == 1, 5, "the client blocked")
    r.rpush("{q}2", "job")
    thread.join(10)
    assert result == [(b"{q}2", b"job")]
    assert r.llen("{q}2") == 0  # popped through the log: gone for every reader
    assert r.info("clients")["blocked_clients"] == 0
    waiter.close()


@pytest.mark.parametrize("protocol", [2, 3])
def test_bzpopmin_wakes_on_a_zadd_from_another_client(node: Node, r: redis.Redis,
                                                      protocol: int) -> None:
    with RawConn(node.port) as waiter:
        if protocol == 3:
            waiter.send(resp("HELLO", "3"))
            waiter.replies(1)
        waiter.send(resp("BZPOPMIN", f"{{z{protocol}}}1", f"{{z{protocol}}}2", "0"))
        wait_for(lambda: r.info("clients")["blocked_clients"] == 1, 5, "the client blocked")
        r.zadd(f"{{z{protocol}}}2", {"low": 1.5, "high": 3})
        key = f"{{z{protocol}}}2".encode()
        if protocol == 2:
            waiter.expect(b"*3\r\n$%d\r\n%s\r\n$3\r\nlow\r\n$3\r\n1.5\r\n" % (len(key), key))
        else:
            waiter.expect(b"*3\r\n$%d\r\n%s\r\n$3\r\nlow\r\n,1.5\r\n" % (len(key), key))
    assert r.zrange(f"{{z{protocol}}}2", 0, -1) == [b"high"]  # popped through the log


def test_bzmpop_and_bzpopmax_wake_and_pop_through_the_log(node: Node, r: redis.Redis) -> None:
    result: list[object] = []
    waiter = node.client(socket_timeout=10)
    thread = threading.Thread(target=lambda: result.append(waiter.execute_command(
        "BZMPOP", 0, 2, "{b}1", "{b}2", "MAX", "COUNT", 2)))
    thread.start()
    wait_for(lambda: r.info("clients")["blocked_clients"] == 1, 5, "the client blocked")
    r.zadd("{b}1", {"a": 1, "b": 2, "c": 3})
    thread.join(10)
    assert result and result[0][0] == b"{b}1"
    assert [(m, float(s)) for m, s in result[0][1]] == [(b"c", 3.0), (b"b", 2.0)]
    assert r.bzpopmax(["{b}2", "{b}1"], 1) == (b"{b}1", b"a", 1.0)
    assert r.exists("{b}1") == 0
    assert r.info("clients")["blocked_clients"] == 0
    waiter.close()


def test_data_already_there_is_popped_at_once(node: Node, r: redis.Redis) -> None:
    r.rpush("ready", "a", "b")
    assert r.brpop(["ready"], 1) == (b"ready", b"b")
    r.rpush("{r}src", "a")
    assert r.blmove("{r}src", "{r}dst", 1, "LEFT", "RIGHT") == b"a"
    assert r.lrange("{r}dst", 0, -1) == [b"a"]
    r.rpush("{m}a", "x")
    assert r.execute_command("BLMPOP", 1, 2, "{m}b", "{m}a", "LEFT", "COUNT", 3) == \
        [b"{m}a", [b"x"]]


@pytest.mark.parametrize("protocol", [2, 3])
def test_timeouts_answer_null(node: Node, protocol: int) -> None:
    with RawConn(node.port) as conn:
        if protocol == 3:
            conn.send(resp("HELLO", "3"))
            conn.replies(1)
        started = time.monotonic()
        null_array = b"*-1\r\n" if protocol == 2 else b"_\r\n"
        null_bulk = b"$-1\r\n" if protocol == 2 else b"_\r\n"
        for command, null in ((("BLPOP", "none", "0.2"), null_array),
                              (("BLMOVE", "{n}a", "{n}b", "LEFT", "LEFT", "0.1"), null_bulk),
                              (("BRPOPLPUSH", "{n}a", "{n}b", "0.1"), null_bulk),
                              (("BLMPOP", "0.1", "1", "none", "RIGHT"), null_array),
                              (("BZPOPMIN", "none", "0.1"), null_array),
                              (("BZPOPMAX", "none", "0.1"), null_array),
                              (("BZMPOP", "0.1", "1", "none", "MIN"), null_array)):
            conn.send(resp(*command))
            conn.expect(null)
        assert time.monotonic() - started >= 0.8


def test_argument_errors(node: Node, r: redis.Redis) -> None:
    with RawConn(node.port) as conn:
        conn.send(resp("BLPOP", "k", "x") + resp("BLPOP", "k", "-1") +
                  resp("BLMOVE", "a", "b", "UP", "LEFT", "0") +
                  resp("BLMPOP", "0", "0", "k", "LEFT") + resp("SET", "str", "v") +
                  resp("BLPOP", "str", "0"))
        replies = [str(x) for x in conn.replies(6)]
    assert replies[0] == "ERR timeout is not a float or out of range"
    assert replies[1] == "ERR timeout is negative"
    assert replies[2] == "ERR syntax error"
    assert replies[3].startswith("ERR numkeys")
    assert replies[5].startswith("WRONGTYPE")


def test_in_multi_they_do_not_block(node: Node, r: redis.Redis) -> None:
    with RawConn(node.port) as conn:
        conn.send(resp("MULTI") + resp("BLPOP", "{x}none", "0") + resp("RPUSH", "{x}l", "1") +
                  resp("BLPOP", "{x}l", "0") + resp("EXEC"))
        assert conn.replies(5)[4] == [None, 1, [b"{x}l", b"1"]]


@pytest.mark.parametrize(("mode", "expected"), [((), b"*-1\r\n"), (("TIMEOUT",), b"*-1\r\n"),
                                                (("ERROR",), b"-UNBLOCKED client unblocked "
                                                 b"via CLIENT UNBLOCK\r\n")])
def test_client_unblock(node: Node, r: redis.Redis, mode: tuple[str, ...],
                        expected: bytes) -> None:
    with RawConn(node.port) as blocked:
        blocked.send(resp("CLIENT", "ID"))
        (client_id,) = blocked.replies(1)
        blocked.send(resp("BLPOP", "{u}nothing", "0"))
        wait_for(lambda: r.info("clients")["blocked_clients"] == 1, 5, "the client blocked")
        assert r.execute_command("CLIENT", "UNBLOCK", client_id, *mode) == 1
        blocked.expect(expected)
        assert r.execute_command("CLIENT", "UNBLOCK", client_id) == 0  # no longer blocked
    with RawConn(node.port) as other:
        other.send(resp("CLIENT", "UNBLOCK", "x") + resp("CLIENT", "UNBLOCK", "1", "LATER"))
        assert [str(e) for e in other.replies(2)] == [
            "ERR value is not an integer or out of range",
            "ERR CLIENT UNBLOCK reason should be TIMEOUT or ERROR"]
