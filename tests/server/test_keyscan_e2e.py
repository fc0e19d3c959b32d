"""KEYS, SCAN, RANDOMKEY and INFO's loop pause through a real server."""

from __future__ import annotations

import socket
from pathlib import Path

import hiredis
import redis

from testsupport.ports import free_port
from testsupport.processes import Node
from testsupport.waiting import wait_for

KEYS = 30_000  # above the size KEYS answers at once: it is built in slices


def load(client: redis.Redis, count: int, prefix: str = "key") -> None:
    pipe = client.pipeline(transaction=False)
    for start in range(0, count, 5000):
        pipe.mset({f"{prefix}:{i}": "v" for i in range(start, min(start + 5000, count))})
    pipe.execute()


def read_replies(sock: socket.socket, count: int) -> list[object]:
    reader = hiredis.Reader()
    replies: list[object] = []
    while len(replies) < count:
        reader.feed(sock.recv(1 << 20))
        while (reply := reader.gets()) is not False:
            replies.append(reply)
    return replies


def test_keys_is_one_snapshot_while_other_clients_write(r: redis.Redis, node: Node) -> None:
    load(r, KEYS)
    r.set("ttl:gone", "v", px=1)  # expired before KEYS runs: never listed
    wait_for(lambda: r.pttl("ttl:gone") == -2, what="the key to expire")
    with socket.create_connection(("127.0.0.1", node.port), timeout=10) as sock:
        sock.sendall(b"CLIENT SETNAME keysclient\r\nKEYS key:*\r\n")

        def dispatched() -> bool:
            lines = r.client_list()
            return any(c["name"] == "keysclient" and c["cmd"] == "keys" for c in lines)

        wait_for(dispatched, what="KEYS to start")
        r.delete("key:0", "key:1")  # after the snapshot: still listed
        r.set("key:new", "v")  # after the snapshot: not listed
        assert r.ping()
        named, keys = read_replies(sock, 2)
    assert named == b"OK"
    assert isinstance(keys, list) and len(keys) == KEYS
    assert set(keys) == {b"key:%d" % i for i in range(KEYS)}
    assert r.dbsize() == KEYS - 2 + 1  # two deleted, key:new added, ttl:gone expired
    plain = r.keys("key:1*")  # the same reply through redis-py
    assert set(plain) == {k for k in keys if k.startswith(b"key:1")} - {b"key:1"}


def test_scan_returns_every_stable_key_while_others_change(r: redis.Redis) -> None:
    load(r, 20_000, "stable")
    cursor, seen, step = 0, set(), 0
    while True:
        cursor, page = r.scan(cursor, count=1000)
        seen.update(page)
        pipe = r.pipeline(transaction=False)
        for _ in range(20):
            step += 1
            pipe.set(f"churn:{step}", "v", px=50 if step % 2 else None)
            pipe.delete(f"churn:{step - 5}")
        pipe.execute()
        if cursor == 0:
            break
    assert {b"stable:%d" % i for i in range(20_000)} <= seen
    assert sorted(r.scan_iter(match="stable:1999*", count=500)) == sorted(
        [b"stable:1999"] + [b"stable:1999%d" % i for i in range(10)])
    assert r.randomkey() is not None
    assert list(r.scan_iter(count=1000, _type="hash")) == []


def test_info_has_max_loop_pause_ms_and_resetstat_clears_it(r: redis.Redis) -> None:
    stats = r.info("stats")
    assert isinstance(stats["max_loop_pause_ms"], int) and stats["max_loop_pause_ms"] >= 0
    before = stats["max_loop_pause_ms"]
    assert r.config_resetstat()
    assert r.info("stats")["max_loop_pause_ms"] <= max(before, 500)  # reset, then remeasured


def test_scan_and_keys_after_a_restart(tmp_path: Path) -> None:
    node = Node(free_port(), tmp_path / "n1").start()
    try:
        client = node.client()
        load(client, 3000)
        client.delete("key:5", "key:6")
        client.rename("key:7", "renamed")
        assert node.stop() == 0
        node.start()
        client = node.client()
        expected = {b"key:%d" % i for i in range(3000)} - {b"key:5", b"key:6", b"key:7"}
        expected.add(b"renamed")
        assert set(client.scan_iter(count=100)) == expected
        assert set(client.keys("*")) == expected
        client.flushall()
        assert client.scan(0) == (0, [])
    finally:
        node.stop()
