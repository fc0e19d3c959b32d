"""The collection types on a real server: routed to their key's group (commands whose
keys an argument counts included), kept across a kill -9 and a clean restart."""

from __future__ import annotations

from pathlib import Path

import pytest
import redis
from test_durability import restart, wait_writable

from respkv.replication.slots import key_slot
from testsupport.ports import free_port
from testsupport.processes import Node


@pytest.fixture
def fresh(tmp_path: Path):
    started = Node(free_port(), tmp_path / "n1").start()  # three groups
    wait_writable(started)
    yield started
    started.kill()


def fill(client: redis.Redis) -> None:
    client.rpush("list", *[f"i{i}" for i in range(300)])
    client.lpush("list", "head")
    client.lset("list", 5, "five")
    client.sadd("set", *[f"m{i}" for i in range(300)])
    client.srem("set", "m3", "m150")
    client.spop("set", 5)
    client.expire("set", 1000)


def contents(client: redis.Redis) -> tuple:
    return (client.lrange("list", 0, -1), client.smembers("set"), client.ttl("set") > 900)


@pytest.mark.parametrize("how", ["kill", "stop"])
def test_collections_survive_a_restart(fresh: Node, how: str) -> None:
    client = fresh.client()
    fill(client)
    before = contents(client)
    assert before[0][:6] == [b"head", b"i0", b"i1", b"i2", b"i3", b"five"]
    client.close()
    if how == "kill":
        fresh.kill()  # replayed from the log
    else:
        assert fresh.stop() == 0  # read back from the state store
    restart(fresh)
    client = fresh.client()
    assert contents(client) == before
    client.close()


def keys_in_two_groups() -> tuple[str, str]:
    """Two keys of different groups (three groups: slots split in thirds)."""
    first = "{a}"
    for i in range(100):
        other = f"{{{i}}}"
        if key_slot(other.encode()) * 3 // 16384 != key_slot(first.encode()) * 3 // 16384:
            return first, other
    raise AssertionError("no second group found")


def test_commands_with_counted_keys_find_their_group(fresh: Node) -> None:
    client = fresh.client()
    one, two = keys_in_two_groups()
    client.rpush(two + "l", "x", "y")
    assert client.execute_command("LMPOP", 2, one + "l", two + "l", "LEFT") == \
        [(two + "l").encode(), [b"x"]]
    client.sadd(one + "s", "a", "b")
    client.sadd(two + "s", "b", "c")
    assert client.execute_command("SINTERCARD", 2, one + "s", two + "s") == 1
    assert client.execute_command("LMPOP", 1, two + "l", "RIGHT", "COUNT", 5) == \
        [(two + "l").encode(), [b"y"]]
    assert client.execute_command("LMPOP", 1, two + "l", "RIGHT") is None
    with pytest.raises(redis.ResponseError, match="numkeys"):
        client.execute_command("LMPOP", 0, "x", "LEFT")
    client.close()


def test_object_encoding_follows_config_set(fresh: Node) -> None:
    client = fresh.client()
    client.sadd("ints", 1, 2, 3)
    assert client.object("encoding", "ints") == b"intset"
    assert client.config_set("set-max-intset-entries", 2)
    assert client.config_get("set-max-intset-entries") == {"set-max-intset-entries": "2"}
    assert client.object("encoding", "ints") == b"hashtable"
    assert client.object("encoding", "missing") is None
    client.close()
