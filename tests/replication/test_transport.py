"""The Raft port in process: the handshake, framing and refusals of a Transport.

Two Transports on loopback, or one and a raw socket playing a peer; the groups
are stand-ins that record what they are handed."""

from __future__ import annotations

import asyncio
import json
import socket
import struct
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

from respkv.raft.codec import encode_message
from respkv.raft.messages import Message, MessageType
from respkv.raft.types import Entry
from respkv.replication.transport import HELLO, HELLO_OK, HELLO_REFUSED, MSG, Transport, frame

DEADLINE = 5.0


class Recorder:
    """Stands in for a RaftGroup: keeps the messages the transport hands it."""

    def __init__(self) -> None:
        self.messages: list[Message] = []

    def on_message(self, message: Message) -> None:
        self.messages.append(message)

    def on_unreachable(self, node_id: str) -> None:
        pass


async def until(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + DEADLINE
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.01)


def transport_of(node_id: str, tmp_path: Path) -> Transport:
    return Transport(node_id, "cluster-a", "127.0.0.1", 0, lambda group: tmp_path / group,
                     {}, lambda peer, addresses: None)


def against_n2(tmp_path: Path, body: Callable[[int, Recorder], Awaitable[None]]) -> None:
    """Run ``body(port, recorder)`` against a Transport of n2 on a free port, whose
    group g0 is a Recorder; stop the Transport whatever happens."""
    async def run() -> None:
        transport = transport_of("n2", tmp_path)
        await transport.start()
        assert transport.server is not None
        recorder = Recorder()
        transport.handlers["g0"] = recorder
        try:
            await body(transport.server.sockets[0].getsockname()[1], recorder)
        finally:
            await transport.stop()

    asyncio.run(run())


def append(index: int, to: str = "n2") -> Message:
    return Message(MessageType.APP, group="g0", to=to, from_="n1", term=3, index=index - 1,
                   log_term=3, entries=(Entry(3, index, data=b"v%d" % index),), commit=index - 1)


def hello(cluster: str = "cluster-a", to: str = "n2") -> bytes:
    return frame(HELLO, json.dumps({"cluster": cluster, "from": "n1", "to": to}).encode())


async def read_frame_kind(reader: asyncio.StreamReader) -> int:
    length, kind = struct.unpack(">IB", await asyncio.wait_for(reader.readexactly(5), DEADLINE))
    await reader.readexactly(length - 1)
    return kind


async def closed(reader: asyncio.StreamReader) -> bool:
    return await asyncio.wait_for(reader.read(), DEADLINE) == b""


async def connect(port: int, data: bytes) -> tuple[asyncio.StreamReader,
                                                asyncio.StreamWriter]:
    """A raw connection to the Raft port that has sent ``data``."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(data)
    return reader, writer


def test_messages_reach_the_peers_group_in_order(tmp_path: Path) -> None:
    async def body(port: int, recorder: Recorder) -> None:
        sender = transport_of("n1", tmp_path)
        try:
            sender.set_peer("n2", f"127.0.0.1:{port}")
            await until(lambda: sender.peers["n2"].writer is not None, "the connection")
            for index in range(1, 301):  # many frames per write and per read
                sender.send(append(index))
            await until(lambda: len(recorder.messages) == 300, "300 messages")
            assert [m.entries[0].data for m in recorder.messages] == [
                b"v%d" % i for i in range(1, 301)]
        finally:
            await sender.stop()

    against_n2(tmp_path, body)


def test_a_frame_that_arrives_byte_by_byte_is_whole(tmp_path: Path) -> None:
    async def body(port: int, recorder: Recorder) -> None:
        reader, writer = await connect(port, hello())
        assert await read_frame_kind(reader) == HELLO_OK
        data = frame(MSG, encode_message(append(7)))
        for i in range(len(data)):
            writer.write(data[i : i + 1])
            await writer.drain()
        await until(lambda: len(recorder.messages) == 1, "the message")
        assert recorder.messages[0].entries[0].data == b"v7"
        writer.close()

    against_n2(tmp_path, body)


def test_a_peer_of_another_cluster_is_refused(tmp_path: Path) -> None:
    async def body(port: int, recorder: Recorder) -> None:
        for bad in (hello(cluster="cluster-b"), hello(to="n9"), frame(HELLO, b"[1, 2]"),
                    frame(HELLO, b"not json")):
            reader, writer = await connect(port, bad + frame(MSG, encode_message(append(1))))
            assert await read_frame_kind(reader) == HELLO_REFUSED
            assert await closed(reader)
            writer.close()
        assert recorder.messages == []

    against_n2(tmp_path, body)


def test_a_message_before_the_hello_is_refused(tmp_path: Path) -> None:
    async def body(port: int, recorder: Recorder) -> None:
        reader, writer = await connect(port, frame(MSG, encode_message(append(1))))
        assert await read_frame_kind(reader) == HELLO_REFUSED
        assert await closed(reader)
        assert recorder.messages == []
        writer.close()

    against_n2(tmp_path, body)


def test_a_bad_frame_closes_that_connection_only(tmp_path: Path) -> None:
    async def body(port: int, recorder: Recorder) -> None:
        for bad in (struct.pack(">IB", 0, MSG), struct.pack(">IB", 1 << 30, MSG),
                    frame(MSG, b"\x01garbage")):
            reader, writer = await connect(port, hello())
            assert await read_frame_kind(reader) == HELLO_OK
            writer.write(bad)
            assert await closed(reader)
            writer.close()
        reader, writer = await connect(port, hello() + frame(MSG, encode_message(append(2))))
        assert await read_frame_kind(reader) == HELLO_OK
        await until(lambda: len(recorder.messages) == 1, "the good message")
        writer.close()

    against_n2(tmp_path, body)


def test_flush_writes_the_queued_frames_before_the_loop_blocks(tmp_path: Path) -> None:
    """Transport.flush hands the queued frames to the kernel at once: a peer reads
    them while this loop is still blocked (as it is in an fsync). Without it they
    would wait for the loop's next turn."""
    async def run() -> None:
        loop = asyncio.get_running_loop()
        listener = socket.create_server(("127.0.0.1", 0))
        listener.setblocking(False)
        sender = transport_of("n1", tmp_path)
        try:
            sender.set_peer("n2", f"127.0.0.1:{listener.getsockname()[1]}")
            peer, _ = await asyncio.wait_for(loop.sock_accept(listener), DEADLINE)
            received = b""
            while len(received) < 4 or len(received) < 4 + int.from_bytes(received[:4]):
                received += await asyncio.wait_for(loop.sock_recv(peer, 65536), DEADLINE)
            assert received[4] == HELLO
            await loop.sock_sendall(peer, frame(HELLO_OK, b""))
            await until(lambda: sender.peers["n2"].writer is not None, "the connection")
            sender.send(append(1))
            sender.flush()
            peer.setblocking(True)
            peer.settimeout(DEADLINE)
            data = peer.recv(65536)  # blocks the loop: nothing else can write for us
            assert data == frame(MSG, encode_message(append(1)))
            assert sender.peers["n2"].queued == []
            peer.close()
        finally:
            listener.close()
            await sender.stop()

    asyncio.run(run())
