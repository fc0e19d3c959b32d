"""The raft fault proxy on its own, against a fake acceptor speaking the HELLO handshake."""

from __future__ import annotations

import json
import socket
import struct
import threading
import time

import pytest

from jepsen.proxy import Network, Rule
from testsupport.ports import free_ports

HEAD = struct.Struct(">IB")
HELLO, HELLO_OK, MSG, SNAP_CHUNK = 1, 2, 4, 5


def frame(kind: int, payload: bytes) -> bytes:
    return HEAD.pack(len(payload) + 1, kind) + payload


def read_exactly(sock: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        if not chunk:
            raise ConnectionError("closed")
        data += chunk
    return data


def read_frame(sock: socket.socket) -> tuple[int, bytes]:
    length, kind = HEAD.unpack(read_exactly(sock, HEAD.size))
    return kind, read_exactly(sock, length - 1)


class FakeNode(threading.Thread):
    """Accepts raft connections: answers HELLO_OK, records (time, from, kind, payload)."""

    def __init__(self, port: int) -> None:
        super().__init__(daemon=True)
        self.server = socket.create_server(("127.0.0.1", port))
        self.received: list[tuple[float, str, int, bytes]] = []
        self.lock = threading.Lock()

    def run(self) -> None:
        while True:
            try:
                conn, _ = self.server.accept()
            except OSError:
                return
            threading.Thread(target=self.serve, args=(conn,), daemon=True).start()

    def serve(self, conn: socket.socket) -> None:
        with conn:
            try:
                kind, payload = read_frame(conn)
                source = json.loads(payload)["from"]
                conn.sendall(frame(HELLO_OK, b""))
                while True:
                    kind, payload = read_frame(conn)
                    with self.lock:
                        self.received.append((time.monotonic(), source, kind, payload))
            except (ConnectionError, OSError):
                return

    def payloads(self, source: str) -> list[bytes]:
        with self.lock:
            return [p for _, s, _, p in self.received if s == source]


def dial(port: int, source: str, to: str) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=2)
    hello = json.dumps({"cluster": "c", "from": source, "to": to, "addresses": {}})
    sock.sendall(frame(HELLO, hello.encode()))
    kind, _ = read_frame(sock)
    assert kind == HELLO_OK
    return sock


def until(condition, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.01)
    return False


@pytest.fixture
def setup():
    node_port, proxy_port = free_ports(2)
    node = FakeNode(node_port)
    node.start()
    network = Network(seed=1)
    network.add_node("b", proxy_port, node_port)
    yield network, node, proxy_port
    network.stop()
    node.server.close()


def test_relays_and_names_the_link(setup):
    _, node, port = setup
    with dial(port, "a", "b") as sock:
        for i in range(5):
            sock.sendall(frame(MSG, b"m%d" % i))
        assert until(lambda: len(node.payloads("a")) == 5)
    assert node.payloads("a") == [b"m0", b"m1", b"m2", b"m3", b"m4"]


def test_cut_closes_and_refuses_only_that_link(setup):
    network, node, port = setup
    sock = dial(port, "a", "b")
    other = dial(port, "c", "b")
    network.cut("a", "b")

    def closed() -> bool:
        try:
            sock.sendall(frame(MSG, b"x"))
            sock.settimeout(0.05)
            return sock.recv(1) == b""
        except TimeoutError:
            return False
        except OSError:
            return True

    assert until(closed)
    sock.close()
    with pytest.raises((ConnectionError, OSError, AssertionError)):
        dial(port, "a", "b")
    other.sendall(frame(MSG, b"still"))  # c -> b is not cut
    assert until(lambda: b"still" in node.payloads("c"))
    network.heal()
    with dial(port, "a", "b") as again:
        again.sendall(frame(MSG, b"healed"))
        assert until(lambda: b"healed" in node.payloads("a"))
    other.close()


def test_drop_loses_messages_but_never_snapshot_chunks(setup):
    network, node, port = setup
    network.set_rule("a", "b", Rule(drop=1.0))
    with dial(port, "a", "b") as sock:
        for i in range(20):
            sock.sendall(frame(MSG, b"m%d" % i))
        sock.sendall(frame(SNAP_CHUNK, b"chunk"))
        assert until(lambda: b"chunk" in node.payloads("a"))
    assert node.payloads("a") == [b"chunk"]
    assert network.frames["dropped"] == 20


def test_delay_holds_frames_in_order(setup):
    network, node, port = setup
    network.set_rule("a", "b", Rule(delay=0.3))
    with dial(port, "a", "b") as sock:
        sent = time.monotonic()
        for i in range(3):
            sock.sendall(frame(MSG, b"m%d" % i))
        assert until(lambda: len(node.payloads("a")) == 3)
    with node.lock:
        times = [t for t, *_ in node.received]
    assert min(times) - sent >= 0.28
    assert node.payloads("a") == [b"m0", b"m1", b"m2"]


def test_partition_cuts_both_ways_between_sides():
    network = Network()
    try:
        network.partition(["a"], ["b", "c"])
        assert network.rule("a", "b").cut and network.rule("c", "a").cut
        assert not network.rule("b", "c").cut
        assert set(network.describe()) == {"a->b", "b->a", "a->c", "c->a"}
        network.heal()
        assert not network.describe()
    finally:
        network.stop()
