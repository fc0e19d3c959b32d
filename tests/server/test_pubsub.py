"""Pub/Sub on a real server, byte for byte against a real redis-server in RESP2 and
RESP3: subscribe replies and counts, messages, pattern and shard messages, the
subscribed-mode rules, PUBSUB introspection, RESET; and redis-py's pubsub()."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from collections.abc import Iterator

import hiredis
import pytest

from testsupport.ports import free_port
from testsupport.processes import Node
from testsupport.waiting import wait_for

SERVER = shutil.which("redis-server")


class Wire:
    """A raw connection that reads a given number of whole frames, as bytes."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=5)
        self.reader = hiredis.Reader()
        self.pending = b""

    def send(self, *args: str | bytes) -> None:
        self.sock.sendall(hiredis.pack_command(args))

    def frames(self, count: int) -> bytes:
        """The raw bytes of the next ``count`` frames."""
        out = b""
        for _ in range(count):
            reader = hiredis.Reader()
            data = self.pending
            self.pending = b""
            while True:
                reader.feed(data)
                consumed = self._one(reader, data)
                if consumed is not None:
                    out += data[:consumed]
                    self.pending = data[consumed:]
                    break
                data += self.sock.recv(1 << 16)
                reader = hiredis.Reader()
        return out

    @staticmethod
    def _one(reader: hiredis.Reader, data: bytes) -> int | None:
        """How many bytes of ``data`` the first frame takes, if it is whole."""
        if reader.gets() is False:
            return None
        for end in range(1, len(data) + 1):  # the shortest prefix that is one frame
            probe = hiredis.Reader()
            probe.feed(data[:end])
            if probe.gets() is not False:
                return end
        return None

    def call(self, *args: str | bytes, frames: int = 1) -> bytes:
        self.send(*args)
        return self.frames(frames)

    def close(self) -> None:
        self.sock.close()


@pytest.fixture(scope="module")
def redis_server() -> Iterator[int]:
    if SERVER is None:
        pytest.skip("redis-server is not installed")
    port = free_port()
    proc = subprocess.Popen([SERVER, "--port", str(port), "--save", "", "--appendonly", "no",
                             "--bind", "127.0.0.1"], stdout=subprocess.DEVNULL)
    try:
        wait_for(lambda: _connects(port), 10, "redis-server to start")
        yield port
    finally:
        proc.terminate()
        proc.wait(10)


def _connects(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
        return True
    except OSError:
        return False


def session(port: int, protocol: int) -> tuple[Wire, Wire]:
    """A subscriber and a publisher."""
    subscriber, publisher = Wire(port), Wire(port)
    if protocol == 3:
        subscriber.call("HELLO", "3")
    return subscriber, publisher


def script(port: int, protocol: int) -> list[bytes]:
    """The same steps on a server: every frame the subscriber gets, and the publisher's
    replies."""
    sub, pub = session(port, protocol)
    seen = [
        sub.call("SUBSCRIBE", "news", "sport", frames=2),
        sub.call("PING"),
        sub.call("PING", "hi"),
        sub.call("GET", "k"),
        sub.call("PSUBSCRIBE", "n*", frames=1),
        pub.call("PUBLISH", "news", "hello"),
        sub.frames(2),  # the message and the pattern message
        pub.call("PUBLISH", "nothing", "x"),
        sub.frames(1),
        pub.call("PUBSUB", "NUMSUB", "news", "sport", "none"),
        pub.call("PUBSUB", "NUMPAT"),
        sub.call("SUBSCRIBE", "news"),  # already: the count stays
        sub.call("UNSUBSCRIBE", "sport", "never", frames=2),
        sub.call("PUNSUBSCRIBE", frames=1),
        sub.call("UNSUBSCRIBE", frames=1),
        sub.call("UNSUBSCRIBE", frames=1),  # nothing left: a null channel, count 0
        sub.call("SSUBSCRIBE", "{s}a", "{s}b", frames=2),
        pub.call("SPUBLISH", "{s}a", "shard-message"),
        sub.frames(1),
        pub.call("PUBSUB", "SHARDNUMSUB", "{s}a"),
        sub.call("SUNSUBSCRIBE", "{s}a", frames=1),
        sub.call("PSUBSCRIBE", "x", frames=1),
        sub.call("RESET"),
        pub.call("PUBSUB", "NUMPAT"),
        sub.call("PING"),
    ]
    sub.close()
    pub.close()
    return seen


@pytest.mark.parametrize("protocol", [2, 3])
def test_the_same_bytes_as_redis(node: Node, redis_server: int, protocol: int) -> None:
    theirs = script(redis_server, protocol)
    ours = script(node.port, protocol)
    for step, (mine, redis) in enumerate(zip(ours, theirs, strict=True)):
        assert mine == redis, (step, mine, redis)


def test_shard_channels_of_two_slots_are_refused(node: Node) -> None:
    wire = Wire(node.port)  # as in Redis Cluster (the redis-server above is not one)
    assert wire.call("SSUBSCRIBE", "{s}a", "other") == \
        b"-CROSSSLOT Keys in request don't hash to the same slot\r\n"
    wire.close()


def test_redis_py_pubsub(node: Node) -> None:
    client = node.client()
    listener = client.pubsub()
    listener.subscribe("events")
    listener.psubscribe("ev*")
    assert listener.get_message(timeout=5)["type"] == "subscribe"
    assert listener.get_message(timeout=5)["type"] == "psubscribe"
    assert client.publish("events", "one") == 2  # the channel and the pattern
    got = [listener.get_message(timeout=5) for _ in range(2)]
    assert {m["type"] for m in got} == {"message", "pmessage"}
    assert {m["data"] for m in got} == {b"one"}
    listener.close()
    client.close()


def numsub(node: Node, channel: str) -> int:
    wire = Wire(node.port)
    try:
        return int(wire.call("PUBSUB", "NUMSUB", channel).split(b"\r\n")[-2][1:])
    finally:
        wire.close()


def test_a_closed_subscriber_is_forgotten(node: Node) -> None:
    client = node.client()
    wire = Wire(node.port)
    wire.call("SUBSCRIBE", "gone")
    assert numsub(node, "gone") == 1
    wire.close()
    wait_for(lambda: numsub(node, "gone") == 0, 5, "the channel freed")
    assert client.publish("gone", "x") == 0
    client.close()


def test_many_messages_arrive_in_order(node: Node) -> None:
    client = node.client()
    listener = client.pubsub(ignore_subscribe_messages=True)
    listener.subscribe("stream")
    wait_for(lambda: numsub(node, "stream") == 1, 5, "subscribed")
    for i in range(500):
        client.publish("stream", str(i))
    got: list[int] = []
    deadline = time.monotonic() + 10
    while len(got) < 500 and time.monotonic() < deadline:
        message = listener.get_message(timeout=0.5)  # None: the subscribe reply, skipped
        if message is not None:
            got.append(int(message["data"]))
    assert got == list(range(500))
    listener.close()
    client.close()
