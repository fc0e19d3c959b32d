"""requirepass on a real node: -NOAUTH before AUTH, AUTH and HELLO AUTH as Redis 7
answers them (diffed byte for byte against a redis-server with the same password),
redis-py and redis-cli with a password, RESET, CONFIG SET requirepass, failures
counted, and a node forwarding a command to another with the password."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import time
from collections.abc import Iterator

import pytest
import redis
from rawconn import RawConn, resp
from redis.backoff import NoBackoff
from redis.retry import Retry

from respkv.replication.rpc import ask
from testsupport.ports import free_port
from testsupport.processes import Node, redis_server

PASSWORD = "s3cret"


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Node]:
    started = Node(free_port(), tmp_path_factory.mktemp("auth") / "n1",
                   args=["--set", f"requirepass={PASSWORD}"], password=PASSWORD).start()
    yield started
    assert started.stop() == 0, started.log()


@pytest.fixture(scope="module")
def redis_with_password() -> Iterator[int]:
    with redis_server("--requirepass", PASSWORD) as port:
        yield port


SEQUENCE = [
    ("GET", "k"), ("PING",), ("AUTH", "wrong"), ("AUTH", "bob", PASSWORD),
    ("HELLO", "3"), ("HELLO", "3", "AUTH", "default", "wrong"), ("SET", "k", "v"),
    ("AUTH", PASSWORD), ("GET", "k"), ("AUTH", "default", PASSWORD), ("AUTH", "wrong"),
    ("GET", "k"), ("RESET",), ("GET", "k"), ("AUTH", "a", "b", "c"),
]


def raw_replies(port: int, commands: list[tuple[str, ...]]) -> list[bytes]:
    out = []
    with RawConn(port) as conn:
        for command in commands:
            conn.send(resp(*command))
            out.append(conn.read_reply_bytes())
    return out


def test_replies_are_redis_own(node: Node, redis_with_password: int) -> None:
    """The same commands, unauthenticated then authenticated, on both servers."""
    ours = raw_replies(node.port, SEQUENCE)
    theirs = raw_replies(redis_with_password, SEQUENCE)
    assert ours == theirs
    assert ours[0] == b"-NOAUTH Authentication required.\r\n"


def test_hello_auth_authenticates_and_switches_protocol(node: Node) -> None:
    with RawConn(node.port) as conn:
        conn.send(resp("HELLO", "3", "AUTH", "default", PASSWORD))
        (hello,) = conn.replies(1)
        assert hello[b"proto"] == 3
        conn.send(resp("SET", "h", "1") + resp("GET", "h"))
        assert conn.replies(2) == [b"OK", b"1"]


def test_clients_with_a_password(node: Node) -> None:
    client = node.client()  # redis-py sends AUTH with the password
    assert client.set("from-py", "yes") and client.get("from-py") == b"yes"
    resp3 = node.client(protocol=3)  # HELLO 3 AUTH default <password>
    assert resp3.get("from-py") == b"yes"
    cli = shutil.which("redis-cli")
    assert cli is not None
    shown = subprocess.run([cli, "-p", str(node.port), "-a", PASSWORD, "--no-auth-warning",
                            "get", "from-py"], capture_output=True, text=True, timeout=30)
    assert shown.stdout.strip() == "yes"
    refused = subprocess.run([cli, "-p", str(node.port), "get", "from-py"],
                             capture_output=True, text=True, timeout=30)
    assert "NOAUTH" in refused.stdout + refused.stderr


def test_failures_are_counted_logged_and_slowed(node: Node) -> None:
    client = node.client()
    before = client.info("stats")["acl_access_denied_auth"]
    with RawConn(node.port, timeout=60) as conn:
        conn.send(resp("AUTH", "nope") * 3 + resp("HELLO", "2", "AUTH", "default", "nope") * 3)
        assert all(str(r).startswith("WRONGPASS") for r in conn.replies(6))
    assert client.info("stats")["acl_access_denied_auth"] == before + 6
    assert 1 <= node.log().count("refused AUTH") <= 2  # rate-limited
    entry = client.execute_command("ACL", "LOG", "1")[0]
    assert (entry[b"reason"], entry[b"object"], entry[b"username"]) == (b"auth", b"HELLO",
                                                                         b"default")
    # An address that keeps guessing has its refusals held back, one after the other.
    started = time.monotonic()
    with RawConn(node.port, timeout=60) as conn:
        conn.send(resp("AUTH", "nope"))
        assert str(conn.replies(1)[0]).startswith("WRONGPASS")
    assert time.monotonic() - started >= 0.25
    assert client.ping()  # the authenticated keep their speed


def test_config_set_requirepass(node: Node) -> None:
    client = node.client()
    client.config_set("requirepass", "other")
    try:
        assert client.get("from-py") == b"yes"  # an authenticated connection stays so
        # no retries: redis-py would try again with backoff, and this host's failed
        # AUTHs (this module makes many) are answered more and more slowly
        with pytest.raises(redis.AuthenticationError):
            node.client(password=PASSWORD, retry=Retry(NoBackoff(), 0)).ping()
        assert node.client(password="other").ping()
        assert client.config_get("requirepass") == {"requirepass": "other"}
    finally:
        client.config_set("requirepass", PASSWORD)


def test_a_node_forwards_with_the_password(node: Node) -> None:
    """What a node does to send CLUSTER LEAVE/JOIN on to a group's leader."""
    address = f"127.0.0.1:{node.port}"
    denied = asyncio.run(ask(address, [b"CLUSTER", b"MYID"]))
    assert str(denied).startswith("NOAUTH")
    answered = asyncio.run(ask(address, [b"CLUSTER", b"MYID"], password=PASSWORD))
    assert isinstance(answered, bytes) and len(answered) == 40
    wrong = asyncio.run(ask(address, [b"CLUSTER", b"MYID"], password="nope"))
    assert str(wrong).startswith("WRONGPASS")
