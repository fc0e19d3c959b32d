"""Server and connection commands through redis-py, in RESP2 and RESP3.

redis-py parses every reply with its own callbacks: each test passing in both
protocols means the reply has the shape the client library expects.
"""

from __future__ import annotations

import fcntl
import os
import pty
import re
import select
import shutil
import signal
import struct
import subprocess
import termios
import time

import pytest
import redis

from testsupport.processes import Node
from testsupport.waiting import wait_for


@pytest.fixture
def c(any_protocol: redis.Redis) -> redis.Redis:
    """Every test of this module runs in RESP2 and in RESP3."""
    return any_protocol


def _s(value: object) -> object:
    """bytes -> str, recursively, so RESP2 and RESP3 replies compare alike."""
    if isinstance(value, bytes):
        return value.decode()
    if isinstance(value, list | tuple):
        return [_s(v) for v in value]
    if isinstance(value, set | frozenset):  # a RESP3 set, as a parser may give it
        return sorted(_s(v) for v in value)
    if isinstance(value, dict):
        return {_s(k): _s(v) for k, v in value.items()}
    return value


_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")  # terminal colours and cursor moves


def _pairs(reply: object) -> dict:
    """A RESP3 map or a RESP2 flat list of pairs, as a dict."""
    if isinstance(reply, dict):
        return _s(reply)
    items = _s(reply)
    return dict(zip(items[::2], items[1::2], strict=True))


# -- connection ------------------------------------------------------------------


def test_ping_echo(c: redis.Redis) -> None:
    assert c.ping() is True
    assert c.echo(b"a\x00b") == b"a\x00b"
    with pytest.raises(redis.ResponseError, match="wrong number of arguments for 'ping'"):
        c.execute_command("PING", "a", "b")


def test_hello(node: Node) -> None:
    client = node.client()
    for proto in (2, 3, 2):
        fields = _pairs(client.execute_command("HELLO", proto))
        assert fields["server"] == "redis"
        assert fields["proto"] == proto
        assert fields["version"].startswith("7.")
        assert fields["mode"] == "cluster"
        assert fields["role"] == "master"
        assert fields["id"] == client.client_id()
    fields = _pairs(client.execute_command("HELLO", 2, "SETNAME", "via-hello"))
    assert _s(client.client_getname()) == "via-hello"
    with pytest.raises(redis.ResponseError, match="NOPROTO"):
        client.execute_command("HELLO", 4)
    with pytest.raises(redis.ResponseError, match="Syntax error in HELLO option 'BOGUS'"):
        client.execute_command("HELLO", 2, "BOGUS")
    client.close()


def test_select(c: redis.Redis) -> None:
    assert c.select(0) is True
    with pytest.raises(redis.ResponseError, match=r"^SELECT is not allowed in cluster mode$"):
        c.select(1)
    with pytest.raises(redis.ResponseError, match="value is not an integer or out of range"):
        c.execute_command("SELECT", "x")


def test_reset(node: Node) -> None:
    client = node.client(protocol=2)
    client.execute_command("HELLO", 3)
    client.client_setname("before")
    assert client.execute_command("RESET") in (b"RESET", "RESET")
    assert client.client_getname() is None
    # RESET goes back to RESP2, as Redis does: nulls are $-1 again
    assert _pairs(client.execute_command("HELLO"))["proto"] == 2
    client.close()


def test_client_id_setname_getname(c: redis.Redis) -> None:
    first = c.client_id()
    assert isinstance(first, int) and first > 0
    assert c.client_getname() is None
    assert c.client_setname("worker-1") is True
    assert _s(c.client_getname()) == "worker-1"
    with pytest.raises(redis.ResponseError, match="Client names cannot contain spaces"):
        c.client_setname("has space")
    with pytest.raises(redis.ResponseError, match="unknown subcommand 'NOPE'"):
        c.execute_command("CLIENT", "NOPE")


def test_client_info_and_list(c: redis.Redis, node: Node) -> None:
    c.client_setname("lister")
    info = c.client_info()
    assert info["id"] == c.client_id()
    assert info["name"] == "lister"
    assert info["laddr"] == f"127.0.0.1:{node.port}"
    other = node.client()
    other.client_setname("other")
    listed = c.client_list()
    names = {entry["name"] for entry in listed}
    assert {"lister", "other"} <= names
    assert all({"id", "addr", "age", "idle", "cmd"} <= set(e) for e in listed)
    mine = c.client_list(client_id=[c.client_id()])
    assert [e["name"] for e in mine] == ["lister"]
    other.close()


def test_client_kill(c: redis.Redis, node: Node) -> None:
    victim = node.client(socket_timeout=2)
    victim.client_setname("victim")
    victim_id = victim.client_id()
    addr = victim.client_info()["addr"]
    assert c.client_kill_filter(_id=victim_id) == 1
    wait_for(lambda: "victim" not in {e["name"] for e in c.client_list()}, 5, "victim gone")
    victim2 = node.client()
    victim2.client_setname("victim2")
    addr = victim2.client_info()["addr"]
    assert c.client_kill(addr) is True
    wait_for(lambda: "victim2" not in {e["name"] for e in c.client_list()}, 5, "victim2 gone")
    with pytest.raises(redis.ResponseError, match="No such client"):
        c.client_kill(addr)
    victim.close()
    victim2.close()


# -- COMMAND ------------------------------------------------------------------------


def test_command_count_and_list(c: redis.Redis) -> None:
    count = c.command_count()
    names = {_s(n) for n in c.command_list()}
    assert count == len(names) >= 60
    for name in ("get", "set", "incr", "mset", "del", "expire", "ttl", "scan", "ping", "info",
                 "client", "command", "config", "hello"):
        assert name in names
    assert {_s(n) for n in c.command_list(pattern="incr*")} == {"incr", "incrby",
                                                                 "incrbyfloat"}
    everything = c.command()  # redis-py parses the whole COMMAND reply
    assert len(everything) == count
    assert everything["get"]["arity"] == 2


def test_command_info_get(c: redis.Redis) -> None:
    (entry,) = c.execute_command("COMMAND INFO", "get")
    assert _s(entry[0]) == "get"
    assert entry[1] == 2  # arity
    assert "readonly" in _s(entry[2])
    assert entry[3:6] == [1, 1, 1]  # first key, last key, step
    assert _s(entry[6]) == ["@read", "@string", "@fast"]  # ACL categories, as Redis 7
    (entry,) = c.execute_command("COMMAND INFO", "set")
    assert entry[1] == -3 and "write" in _s(entry[2]) and entry[3:6] == [1, 1, 1]
    (entry,) = c.execute_command("COMMAND INFO", "mset")
    assert entry[1] == -3 and entry[3:6] == [1, -1, 2]
    assert c.execute_command("COMMAND INFO", "no-such-command") == [None]


def test_command_docs(c: redis.Redis) -> None:
    docs = _pairs(c.execute_command("COMMAND DOCS", "get"))
    assert set(docs) == {"get"}
    get_docs = _pairs(docs["get"])
    assert get_docs["group"] == "string"
    assert get_docs["since"] == "1.0.0"
    assert get_docs["summary"] == "Get the value of a key"
    assert get_docs["complexity"] == "O(1)"
    assert [_pairs(a) for a in get_docs["arguments"]] == [
        {"name": "key", "type": "key", "key_spec_index": 0}]


def test_command_docs_arguments(c: redis.Redis) -> None:
    set_docs = _pairs(_pairs(c.execute_command("COMMAND DOCS", "set"))["set"])
    arguments = [_pairs(a) for a in set_docs["arguments"]]
    assert [a["name"] for a in arguments] == ["key", "value", "condition", "get", "expiration"]
    condition = arguments[2]
    assert condition["type"] == "oneof" and condition["flags"] == ["optional"]
    assert [_pairs(a)["token"] for a in condition["arguments"]] == ["NX", "XX"]
    assert ["6.0.0", "Added the `KEEPTTL` option."] in set_docs["history"]
    getset = _pairs(_pairs(c.execute_command("COMMAND DOCS", "getset"))["getset"])
    assert getset["doc_flags"] == ["deprecated"] and getset["deprecated_since"] == "6.2.0"
    # a subcommand by its full name, and respkv's own commands, documented by hand
    config_get = _pairs(c.execute_command("COMMAND DOCS", "config|get"))
    assert _pairs(config_get["config|get"])["summary"] == \
        "Get the values of configuration parameters"
    transfer = _pairs(_pairs(c.execute_command("COMMAND DOCS", "respkv.transfer"))[
        "respkv.transfer"])
    assert [_pairs(a)["name"] for a in transfer["arguments"]] == ["node-id", "group"]
    cluster = _pairs(_pairs(c.execute_command("COMMAND DOCS", "cluster"))["cluster"])
    assert "cluster|join" in _pairs(cluster["subcommands"])
    assert c.execute_command("COMMAND DOCS", "respkv.put") in ([], {})  # internal: hidden
    everything = _pairs(c.execute_command("COMMAND DOCS"))
    assert len(everything) == c.command_count()


def test_command_info_key_specs(c: redis.Redis) -> None:
    """Key specs as Redis 7.0's: keynum ones for keys an argument counts."""
    (entry,) = c.execute_command("COMMAND INFO", "lmpop")
    assert "movablekeys" in _s(entry[2]) and entry[3:6] == [0, 0, 0]
    (spec,) = [_pairs(s) for s in entry[8]]
    assert sorted(spec["flags"]) == ["RW", "access", "delete"]
    assert _pairs(spec["begin_search"])["type"] == "index"
    find_keys = _pairs(spec["find_keys"])
    assert find_keys["type"] == "keynum"
    assert _pairs(find_keys["spec"]) == {"keynumidx": 0, "firstkey": 1, "keystep": 1}
    (entry,) = c.execute_command("COMMAND INFO", "zunionstore")
    assert [_pairs(_pairs(s)["find_keys"])["type"] for s in entry[8]] == ["range", "keynum"]


def test_redis_cli_help(node: Node) -> None:
    """redis-cli builds its help from COMMAND DOCS' arguments."""
    cli = shutil.which("redis-cli")
    assert cli is not None, "redis-cli is not installed"
    shown = subprocess.run([cli, "-p", str(node.port), "help", "SET"], capture_output=True,
                           text=True, timeout=30, check=True).stdout
    lines = [line.strip() for line in _ANSI.sub("", shown).splitlines() if line.strip()]
    assert lines == [
        "SET key value [NX|XX] [GET] [EX seconds|PX milliseconds|EXAT unix-time-seconds|"
        "PXAT unix-time-milliseconds|KEEPTTL]",
        "summary: Set the string value of a key",
        "since: 1.0.0",
        "group: string",
    ]
    shown = subprocess.run([cli, "-p", str(node.port), "help", "CLUSTER", "JOIN"],
                           capture_output=True, text=True, timeout=30, check=True).stdout
    assert "CLUSTER JOIN node-id raft-address client-address proof [GROUP group]" in \
        _ANSI.sub("", shown)


def test_redis_cli_hints(node: Node) -> None:
    """Typing a command in redis-cli shows the arguments still to come as a hint."""
    cli = shutil.which("redis-cli")
    assert cli is not None, "redis-cli is not installed"
    pid, terminal = pty.fork()
    if pid == 0:  # the child: redis-cli on the terminal
        os.execv(cli, [cli, "-p", str(node.port)])
    fcntl.ioctl(terminal, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 200, 0, 0))
    shown = bytearray()

    def screen_has(text: bytes) -> bool:
        while select.select([terminal], [], [], 0.05)[0]:
            chunk = os.read(terminal, 65536)
            shown.extend(chunk)
            # the line editor asks where the cursor is; a terminal answers
            os.write(terminal, b"\x1b[1;1R" * chunk.count(b"\x1b[6n"))
        return text in _ANSI.sub("", shown.decode("utf-8", "replace")).encode()

    try:
        wait_for(lambda: screen_has(b"> "), 10, "the redis-cli prompt")
        os.write(terminal, b"set k ")
        wait_for(lambda: screen_has(b"set k value [NX|XX] [GET] [EX seconds|PX milliseconds"),
                 10, "the SET hint")
    finally:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        os.close(terminal)


def test_command_getkeys(c: redis.Redis) -> None:
    assert _s(c.command_getkeys("MSET", "a", "1", "b", "2")) == ["a", "b"]
    assert _s(c.command_getkeys("GET", "k")) == ["k"]
    with pytest.raises(redis.ResponseError, match="Invalid command specified"):
        c.command_getkeys("NOPE", "k")
    with pytest.raises(redis.ResponseError, match="Invalid number of arguments"):
        c.command_getkeys("GET", "a", "b")
    with pytest.raises(redis.ResponseError, match="The command has no key arguments"):
        c.command_getkeys("ECHO", "a")
    with pytest.raises(redis.ResponseError,
                       match=r"^wrong number of arguments for 'command\|getkeys' command$"):
        c.command_getkeys("GET")
    # keys an argument counts, through the table's key finders
    assert _s(c.command_getkeys("LMPOP", 2, "a", "b", "LEFT")) == ["a", "b"]
    assert _s(c.command_getkeys("ZUNIONSTORE", "d", 2, "a", "b", "WEIGHTS", 1, 2)) == \
        ["d", "a", "b"]
    assert _s(c.command_getkeys("SINTERCARD", 1, "s", "LIMIT", 3)) == ["s"]
    assert _s(c.command_getkeys("OBJECT", "ENCODING", "k")) == ["k"]
    for call in (("LMPOP", 3, "a", "LEFT"), ("ZUNIONSTORE", "d", 0, "a")):
        with pytest.raises(redis.ResponseError, match="Invalid arguments specified"):
            c.command_getkeys(*call)


@pytest.mark.parametrize(("args", "name"), [
    (("CONFIG", "GET"), "config|get"),
    (("CONFIG", "SET", "maxclients"), "config|set"),
    (("CLIENT", "ID", "x"), "client|id"),
    (("COMMAND", "COUNT", "x"), "command|count"),
])
def test_subcommand_arity_text(c: redis.Redis, args: tuple[str, ...], name: str) -> None:
    with pytest.raises(redis.ResponseError) as error:
        c.execute_command(*args)
    assert str(error.value) == f"wrong number of arguments for '{name}' command"


# -- INFO, CONFIG, TIME, DBSIZE ------------------------------------------------------


def test_info_sections(c: redis.Redis) -> None:
    c.set("k", "v")
    info = c.info()
    for field in ("redis_version", "tcp_port", "connected_clients", "used_memory",
                  "total_commands_processed", "role", "used_cpu_sys", "raft_role"):
        assert field in info, field
    assert info["db0"]["keys"] == 1
    for section, field in [("server", "redis_version"), ("clients", "connected_clients"),
                           ("memory", "used_memory"), ("persistence", "loading"),
                           ("stats", "total_connections_received"), ("replication", "role"),
                           ("cpu", "used_cpu_user"), ("keyspace", "db0"),
                           ("raft", "raft_commit_index")]:
        part = c.info(section)
        assert field in part, (section, field)
    assert "redis_version" not in c.info("raft")
    raft = c.info("raft")
    assert raft["raft_role"] == "leader"
    assert raft["raft_applied_index"] == raft["raft_commit_index"] >= 1
    assert "cmdstat_set" in c.info("commandstats")
    assert "raft_role" in c.info("all")


def test_config_get_set(c: redis.Redis) -> None:
    assert c.config_get("save") == {"save": ""}
    assert c.config_get("appendonly") == {"appendonly": "no"}
    assert "maxclients" in c.config_get("max*")
    assert c.config_set("timeout", 300) is True
    assert c.config_get("timeout") == {"timeout": "300"}
    assert c.config_set("timeout", 0) is True
    assert c.config_get("timeout") == {"timeout": "0"}
    with pytest.raises(redis.ResponseError, match="can't set immutable config"):
        c.config_set("port", 1)
    with pytest.raises(redis.ResponseError, match="can't set immutable config"):
        c.config_set("shards", 5)  # fixed when the cluster was created
    assert c.config_get("shards") == {"shards": "3"}
    assert c.config_get("balance-leaders") == {"balance-leaders": "yes"}
    assert c.config_get("raft-bind") == {"raft-bind": "127.0.0.1"}
    with pytest.raises(redis.ResponseError, match="can't set immutable config"):
        c.config_set("raft-bind", "0.0.0.0")
    assert c.config_get("join*") == {"join": ""}  # the join token is never shown
    with pytest.raises(redis.ResponseError, match="can't set immutable config"):
        c.config_set("join-token", "respkv1.x.y")
    with pytest.raises(redis.ResponseError, match="Unknown option"):
        c.config_set("no-such-option", 1)
    assert c.config_get("no-such-option") == {}
    assert c.config_resetstat() is True


def test_time(c: redis.Redis) -> None:
    seconds, micros = c.time()
    assert abs(seconds + micros / 1e6 - time.time()) < 5
    assert 0 <= micros < 1_000_000


def test_dbsize(c: redis.Redis) -> None:
    assert c.dbsize() == 0
    c.mset({"a": 1, "b": 2, "c": 3})
    assert c.dbsize() == 3
    c.delete("a")
    assert c.dbsize() == 2
    c.flushdb()
    assert c.dbsize() == 0


def test_pipeline_of_server_commands(c: redis.Redis) -> None:
    pipe = c.pipeline(transaction=False)
    pipe.ping().echo("x").set("k", "v").get("k").dbsize().time().client_id()
    results = pipe.execute()
    assert results[:5] == [True, b"x", True, b"v", 1]
    assert len(results[5]) == 2 and isinstance(results[6], int)


def group_indexes(c: redis.Redis) -> list[dict]:
    return [v for v in c.info("raft").values() if isinstance(v, dict) and "applied_index" in v]


def snapshots_reach(c: redis.Redis, applied: list[int]) -> bool:
    """Every group's latest snapshot covers at least its ``applied`` index."""
    return all(group["snapshot_index"] >= index
               for group, index in zip(group_indexes(c), applied, strict=True))


def test_save_snapshots_every_group_and_bgsave_does_it_in_the_background(c: redis.Redis) -> None:
    c.mset({f"save:{i}": i for i in range(50)})
    applied = [g["applied_index"] for g in group_indexes(c)]
    assert c.save() is True
    assert snapshots_reach(c, applied)
    assert abs(c.lastsave().timestamp() - time.time()) < 5

    c.set("save:after", 1)
    applied = [g["applied_index"] for g in group_indexes(c)]
    assert c.bgsave() in (True, b"Background saving started")  # redis-py's RESP3 callback
    wait_for(lambda: c.info("persistence")["rdb_bgsave_in_progress"] == 0, what="the BGSAVE")
    assert c.info("persistence")["rdb_last_bgsave_status"] == "ok"
    assert snapshots_reach(c, applied)
    assert c.get("save:after") == b"1"

    with pytest.raises(redis.ResponseError, match=r"^syntax error$"):
        c.execute_command("BGSAVE", "NOW")
    pipe = c.pipeline(transaction=True)
    pipe.execute_command("SAVE")
    with pytest.raises(redis.ResponseError, match="not allowed inside a transaction"):
        pipe.execute()
