"""MULTI/EXEC/DISCARD/WATCH on a real server, as redis-py and redis-cli use them: the
queued replies and errors of Redis 7.0, EXECABORT, WATCH aborts (including a watched
key's expiry), and redis-py's transactional pipeline and optimistic-locking helper.

The server runs several groups: keys of one transaction share a {hash tag}, as in
Redis Cluster; keys in two groups get CROSSSLOT."""

from __future__ import annotations

import threading

import pytest
import redis
from rawconn import RawConn, resp

from testsupport.processes import Node
from testsupport.waiting import wait_for


def raw(node: Node, *commands: tuple[str, ...]) -> list[object]:
    with RawConn(node.port) as conn:
        conn.send(b"".join(resp(*c) for c in commands))
        return conn.replies(len(commands))


def test_queued_replies_and_exec(node: Node, r: redis.Redis) -> None:
    replies = raw(node, ("MULTI",), ("SET", "{t}a", "1"), ("INCR", "{t}a"), ("SET", "{t}s", "x"),
                  ("INCR", "{t}s"), ("PING",), ("GET", "{t}a"), ("EXEC",))
    assert replies[:7] == [b"OK", b"QUEUED", b"QUEUED", b"QUEUED", b"QUEUED", b"QUEUED",
                           b"QUEUED"]
    exec_reply = replies[7]
    assert exec_reply[:3] == [b"OK", 2, b"OK"]
    assert str(exec_reply[3]) == "ERR value is not an integer or out of range"
    assert exec_reply[4:] == [b"PONG", b"2"]


def test_errors_while_queueing_abort_exec(node: Node, r: redis.Redis) -> None:
    replies = raw(node, ("MULTI",), ("SET", "{t}k", "v"), ("NOSUCH",), ("GET",), ("EXEC",),
                  ("GET", "{t}k"))
    assert "unknown command 'NOSUCH'" in str(replies[2])
    assert "wrong number of arguments for 'get'" in str(replies[3])
    assert str(replies[4]) == "EXECABORT Transaction discarded because of previous errors."
    assert replies[5] is None  # nothing of it was applied


def test_misplaced_commands(node: Node, r: redis.Redis) -> None:
    replies = raw(node, ("EXEC",), ("DISCARD",), ("MULTI",), ("MULTI",), ("WATCH", "x"),
                  ("SET", "{t}k", "1"), ("EXEC",))
    assert [str(x) for x in replies[:2]] == ["ERR EXEC without MULTI",
                                             "ERR DISCARD without MULTI"]
    assert str(replies[3]) == "ERR MULTI calls can not be nested"
    assert str(replies[4]) == "ERR WATCH inside MULTI is not allowed"
    assert replies[6] == [b"OK"]  # neither error fails the transaction, as in Redis


def test_a_command_flagged_no_multi_fails_the_transaction(node: Node, r: redis.Redis) -> None:
    replies = raw(node, ("MULTI",), ("SET", "{t}nm", "1"), ("SHUTDOWN",), ("EXEC",),
                  ("GET", "{t}nm"))
    assert str(replies[2]) == "ERR Command not allowed inside a transaction"
    assert str(replies[3]) == "EXECABORT Transaction discarded because of previous errors."
    assert replies[4] is None  # and the node is still up: SHUTDOWN never ran


def test_keys_of_two_groups_are_refused(node: Node, r: redis.Redis) -> None:
    replies = raw(node, ("MULTI",), ("SET", "{a}x", "1"), ("SET", "{b}x", "1"),
                  ("EXEC",), ("GET", "{a}x"))
    assert replies[1] == b"QUEUED"
    assert str(replies[2]).startswith("CROSSSLOT")
    assert str(replies[3]).startswith("EXECABORT")
    assert replies[4] is None


def test_discard(node: Node, r: redis.Redis) -> None:
    assert raw(node, ("MULTI",), ("SET", "{t}k", "1"), ("DISCARD",), ("GET", "{t}k")) == \
        [b"OK", b"QUEUED", b"OK", None]


def test_watch_aborts_when_another_client_writes(node: Node, r: redis.Redis) -> None:
    r.set("{t}balance", 10)
    with RawConn(node.port) as conn:
        conn.send(resp("WATCH", "{t}balance"))
        assert conn.replies(1) == [b"OK"]
        r.incr("{t}balance")  # another connection changes it
        conn.send(resp("MULTI") + resp("SET", "{t}balance", "0") + resp("EXEC"))
        assert conn.replies(3) == [b"OK", b"QUEUED", None]
        # the watch is gone after EXEC: the next transaction runs
        conn.send(resp("MULTI") + resp("SET", "{t}balance", "0") + resp("EXEC"))
        assert conn.replies(3) == [b"OK", b"QUEUED", [b"OK"]]
    assert r.get("{t}balance") == b"0"


def test_watch_of_an_untouched_key_lets_exec_run(node: Node, r: redis.Redis) -> None:
    r.set("{t}a", 1)
    r.set("{t}other", 1)
    assert raw(node, ("WATCH", "{t}a", "{t}missing"), ("SET", "{t}other", "2"), ("MULTI",),
               ("INCR", "{t}a"), ("EXEC",)) == [b"OK", b"OK", b"OK", b"QUEUED", [2]]


def test_own_write_before_watch_does_not_abort(node: Node, r: redis.Redis) -> None:
    replies = raw(node, ("SET", "{t}w", "1"), ("WATCH", "{t}w"), ("MULTI",), ("INCR", "{t}w"),
                  ("EXEC",))
    assert replies[-1] == [2]


def test_watched_key_expiring_aborts(node: Node, r: redis.Redis) -> None:
    r.set("{t}lease", "me", px=150)
    with RawConn(node.port) as conn:
        conn.send(resp("WATCH", "{t}lease"))
        assert conn.replies(1) == [b"OK"]
        wait_for(lambda: r.exists("{t}lease") == 0, 5, "the lease expired")
        conn.send(resp("MULTI") + resp("SET", "{t}lease", "me") + resp("EXEC"))
        assert conn.replies(3) == [b"OK", b"QUEUED", None]


def test_flushall_and_unwatch(node: Node, r: redis.Redis) -> None:
    r.set("{t}k", 1)
    with RawConn(node.port) as conn:
        conn.send(resp("WATCH", "{t}k") + resp("UNWATCH"))
        assert conn.replies(2) == [b"OK", b"OK"]
        r.set("{t}k", 2)
        conn.send(resp("MULTI") + resp("GET", "{t}k") + resp("EXEC"))
        assert conn.replies(3) == [b"OK", b"QUEUED", [b"2"]]
        conn.send(resp("WATCH", "{t}k"))
        conn.replies(1)
        r.flushall()
        conn.send(resp("MULTI") + resp("GET", "{t}k") + resp("EXEC"))
        assert conn.replies(3) == [b"OK", b"QUEUED", None]


@pytest.mark.parametrize("protocol", [2, 3])
def test_redis_py_transactional_pipeline(node: Node, protocol: int) -> None:
    client = node.client(protocol=protocol)
    client.flushall()
    with client.pipeline() as pipe:  # transaction=True: MULTI ... EXEC
        pipe.set("{t}p", 1).incr("{t}p").get("{t}p").delete("{t}p")
        assert pipe.execute() == [True, 2, b"2", 1]
    with client.pipeline() as pipe:
        pipe.set("{t}q", "x").incr("{t}q").set("{t}r", 1)
        with pytest.raises(redis.ResponseError, match="not an integer"):
            pipe.execute()
    assert client.get("{t}r") == b"1"  # no rollback, as Redis
    client.close()


def test_optimistic_increments_lose_nothing(node: Node, r: redis.Redis) -> None:
    """Several clients incrementing through WATCH/GET/MULTI/SET/EXEC, retrying on abort:
    every increment lands exactly once."""
    r.set("{t}counter", 0)
    per_client, clients = 30, 4

    def worker() -> None:
        client = node.client()
        for _ in range(per_client):
            def step(pipe: redis.client.Pipeline) -> None:
                value = int(pipe.get("{t}counter"))
                pipe.multi()
                pipe.set("{t}counter", value + 1)
            client.transaction(step, "{t}counter")
        client.close()

    threads = [threading.Thread(target=worker) for _ in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert int(r.get("{t}counter")) == per_client * clients
