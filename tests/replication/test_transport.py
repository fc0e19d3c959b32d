"""The Raft port in process: the handshake, framing and refusals of a Transport.

Two Transports on loopback, or one and a raw socket playing a peer (with the cluster's
secret, or without it: a forger); the groups are stand-ins that record what they are
handed."""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import socket
import struct
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from respkv.raft.codec import encode_message
from respkv.raft.messages import ConfState, Message, MessageType, SnapshotMeta
from respkv.raft.types import Entry
from respkv.replication import peerauth, snapstream
from respkv.replication.keyring import Keyring
from respkv.replication.transport import (
    BROADCAST,
    CHALLENGE,
    HELLO,
    HELLO_OK,
    HELLO_REFUSED,
    MSG,
    PING,
    PROOF,
    REMOVED,
    SNAP_CHUNK,
    SNAP_END,
    SNAP_MANIFEST,
    SNAP_OK,
    SNAP_REFUSED,
    Transport,
    frame,
)
from respkv.server.pubsub import PubSubHub

DEADLINE = 5.0
SECRET = b"s" * peerauth.SECRET_BYTES


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


def transport_of(node_id: str, tmp_path: Path, secret: bytes = SECRET,
                 told: list | None = None) -> Transport:
    return Transport(node_id, "cluster-a", Keyring(secret), "127.0.0.1", 0,
                     lambda group: tmp_path / group, {"raft": f"{node_id}:1"},
                     lambda peer, addresses: (told if told is not None else []).append(
                         (peer, addresses)))


def against_n2(tmp_path: Path, body: Callable[[int, Recorder], Awaitable[None]],
               told: list | None = None) -> None:
    """Run ``body(port, recorder)`` against a Transport of n2 on a free port, whose
    group g0 is a Recorder; stop the Transport whatever happens."""
    async def run() -> None:
        transport = transport_of("n2", tmp_path, told=told)
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


NONCE = b"n" * peerauth.NONCE_BYTES


def hello_payload(cluster: str = "cluster-a", to: str = "n2", sender: str = "n1",
                  nonce: bytes = NONCE) -> bytes:
    return json.dumps({"cluster": cluster, "from": sender, "to": to, "nonce": nonce.hex(),
                       "addresses": {"raft": "n1-raft:1"}}).encode()


def hello(cluster: str = "cluster-a", to: str = "n2") -> bytes:
    return frame(HELLO, hello_payload(cluster, to))


async def read_frame(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    length, kind = struct.unpack(">IB", await asyncio.wait_for(reader.readexactly(5), DEADLINE))
    return kind, await reader.readexactly(length - 1)


async def read_frame_kind(reader: asyncio.StreamReader) -> int:
    return (await read_frame(reader))[0]


async def authenticate(reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                       secret: bytes = SECRET) -> int:
    """Play n1's side of the handshake, with ``secret``: the kind of n2's last frame."""
    payload = hello_payload()
    writer.write(frame(HELLO, payload))
    kind, body = await read_frame(reader)
    if kind != CHALLENGE:
        return kind
    theirs = bytes.fromhex(json.loads(body)["nonce"])
    writer.write(frame(PROOF, peerauth.dialer_proof(secret, "cluster-a", "n1", "n2", NONCE,
                                                     theirs, payload)))
    return await read_frame_kind(reader)


async def authenticated(port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    reader, writer = await connect(port, b"")
    assert await authenticate(reader, writer) == HELLO_OK
    return reader, writer


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
        _, writer = await authenticated(port)
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
            reader, writer = await authenticated(port)
            writer.write(bad)
            assert await closed(reader)
            writer.close()
        reader, writer = await authenticated(port)
        writer.write(frame(MSG, encode_message(append(2))))
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
            assert received[4] == HELLO  # answer as n2 would, with the secret
            nonce = bytes.fromhex(json.loads(received[5:])["nonce"])
            proof = peerauth.acceptor_proof(SECRET, "cluster-a", "n1", "n2", nonce, NONCE)
            await loop.sock_sendall(peer, frame(CHALLENGE, json.dumps(
                {"nonce": NONCE.hex(), "proof": proof.hex()}).encode()))
            received = await asyncio.wait_for(loop.sock_recv(peer, 65536), DEADLINE)
            assert received[4] == PROOF
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


def test_a_peer_without_the_secret_is_refused(tmp_path: Path) -> None:
    """The right cluster id and node ids, but a proof made with another secret (or
    none): refused, and nothing it sends afterwards reaches a group; its addresses are
    not learnt."""
    told: list = []

    async def body(port: int, recorder: Recorder) -> None:
        reader, writer = await connect(port, b"")
        assert await authenticate(reader, writer, b"x" * peerauth.SECRET_BYTES) == \
            HELLO_REFUSED
        writer.write(frame(MSG, encode_message(append(1))))
        assert await closed(reader)
        reader, writer = await connect(port, hello() + frame(PROOF, b"") +
                                       frame(MSG, encode_message(append(1))))
        assert await read_frame_kind(reader) == CHALLENGE
        assert await read_frame_kind(reader) == HELLO_REFUSED
        assert recorder.messages == [] and told == []

    against_n2(tmp_path, body, told)


def test_a_recorded_handshake_cannot_be_replayed(tmp_path: Path) -> None:
    """What n1 sent on one connection, sent again on another, is refused: n2's nonce
    is new on every connection, and the proof covers it."""
    async def body(port: int, recorder: Recorder) -> None:
        reader, writer = await connect(port, b"")
        payload = hello_payload()
        writer.write(frame(HELLO, payload))
        _, challenge = await read_frame(reader)
        theirs = bytes.fromhex(json.loads(challenge)["nonce"])
        recorded = frame(HELLO, payload) + frame(PROOF, peerauth.dialer_proof(
            SECRET, "cluster-a", "n1", "n2", NONCE, theirs, payload))
        writer.write(recorded[len(frame(HELLO, payload)):])
        assert await read_frame_kind(reader) == HELLO_OK
        replay_reader, _ = await connect(port, recorded)
        assert await read_frame_kind(replay_reader) == CHALLENGE
        assert await read_frame_kind(replay_reader) == HELLO_REFUSED
        assert await closed(replay_reader)
        writer.close()

    against_n2(tmp_path, body)


def test_the_dialer_refuses_an_acceptor_without_the_secret(tmp_path: Path) -> None:
    """A listener that claims to be n2 but cannot prove it: the dial fails, so no
    connection to it ever carries a Raft message."""
    async def run() -> None:
        impostor = transport_of("n2", tmp_path, secret=b"y" * peerauth.SECRET_BYTES)
        await impostor.start()
        assert impostor.server is not None
        recorder = Recorder()
        impostor.handlers["g0"] = recorder
        sender = transport_of("n1", tmp_path)
        try:
            port = impostor.server.sockets[0].getsockname()[1]
            assert await _dial_fails(sender, port)
            assert recorder.messages == []
        finally:
            await sender.stop()
            await impostor.stop()

    asyncio.run(run())


async def _dial_fails(sender: Transport, port: int) -> bool:
    try:
        await sender.dial(f"127.0.0.1:{port}", "n2")
    except ConnectionError as error:
        return "did not prove it holds the cluster secret" in str(error)
    return False


def test_a_message_claiming_another_sender_closes_the_link(tmp_path: Path) -> None:
    async def body(port: int, recorder: Recorder) -> None:
        reader, writer = await authenticated(port)  # as n1
        forged = Message(MessageType.APP, group="g0", to="n2", from_="n3", term=9, index=0)
        writer.write(frame(MSG, encode_message(forged)))
        assert await closed(reader)
        assert recorder.messages == []

    against_n2(tmp_path, body)


def test_the_peers_addresses_count_once_it_has_proved_itself(tmp_path: Path) -> None:
    told: list = []

    async def body(port: int, recorder: Recorder) -> None:
        reader, writer = await connect(port, hello())
        assert await read_frame_kind(reader) == CHALLENGE
        assert told == []  # not before its proof
        writer.close()
        await authenticated(port)
        await until(lambda: told == [("n1", {"raft": "n1-raft:1"})], "the addresses learnt")

    against_n2(tmp_path, body, told)


def test_a_snapshot_for_a_group_that_is_not_ours_is_refused(tmp_path: Path) -> None:
    """A chunk naming ``../../x`` (or any group this node does not run) closes the
    connection and creates nothing: a peer's words never become a path."""
    async def body(port: int, recorder: Recorder) -> None:
        escaped = f"escaped-{tmp_path.name}"
        for name in (f"../../{escaped}".encode(), b"g9"):
            reader, writer = await authenticated(port)
            writer.write(frame(SNAP_CHUNK, struct.pack(">H", len(name)) + name + b"data"))
            assert await read_frame_kind(reader) == SNAP_REFUSED
            assert await closed(reader)
        assert not (tmp_path / ".." / ".." / escaped).resolve().exists()
        assert sorted(p.name for p in tmp_path.iterdir()) == []

    against_n2(tmp_path, body)


# -- snapshot streams ---------------------------------------------------------------


class SnapshotRecorder(Recorder):
    def __init__(self) -> None:
        super().__init__()
        self.snapshots: list[tuple[Message, bytes]] = []
        self.transport: Transport | None = None  # the receiving one

    def on_snapshot(self, message: Message, path: Path) -> None:
        self.snapshots.append((message, path.read_bytes()))


SNAPSHOT_DATA = bytes(range(256)) * 1000  # several chunks of 64 KiB
MEMBERS = {"n1": {"raft": "127.0.0.1:17001", "client": "127.0.0.1:7001"}}


def snap_message(index: int = 40, term: int = 3, sender: str = "n1",
                 group: str = "g0") -> Message:
    return Message(MessageType.SNAP, group=group, to="n2", from_=sender, term=term,
                   snapshot=SnapshotMeta(index, term, ConfState(("n1",), ("n2",))))


def stream(data: bytes = SNAPSHOT_DATA, chunk: int = 65536, **changes: object) -> list[bytes]:
    """The frames of a snapshot stream of ``data`` for snap_message(), with the
    manifest's fields (and the chunks' CRCs: ``crc_of``) changed as told."""
    crc_of = changes.pop("crc_of", None)
    frames = []
    for offset in range(0, len(data), chunk):
        payload = snapstream.chunk_payload("g0", offset, data[offset : offset + chunk])
        if crc_of == offset:
            payload = payload[:-1] + bytes([payload[-1] ^ 1])  # the bytes, not the CRC
        frames.append(frame(SNAP_CHUNK, payload))
    fields = {"group": "g0", "sender": "n1", "index": 40, "term": 3, "size": len(data),
              "sha256": hashlib.sha256(data).hexdigest(), "members": MEMBERS}
    fields.update(changes)
    frames.append(frame(SNAP_MANIFEST, snapstream.Manifest(**fields).to_bytes()))  # type: ignore[arg-type]
    frames.append(frame(SNAP_END, encode_message(snap_message())))
    return frames


def against_n2_snapshots(tmp_path: Path,
                         body: Callable[[int, SnapshotRecorder], Awaitable[None]]) -> None:
    async def run() -> None:
        transport = transport_of("n2", tmp_path / "n2")
        await transport.start()
        assert transport.server is not None
        recorder = SnapshotRecorder()
        recorder.transport = transport
        transport.handlers["g0"] = recorder  # type: ignore[assignment]
        transport.on_broadcast = PubSubHub(lambda payload: 0).on_broadcast
        try:
            await body(transport.server.sockets[0].getsockname()[1], recorder)
        finally:
            await transport.stop()

    asyncio.run(run())


def test_a_snapshot_arrives_whole_with_its_manifests_members(tmp_path: Path) -> None:
    source = tmp_path / "snap.sqlite"
    source.write_bytes(SNAPSHOT_DATA)

    async def body(port: int, recorder: SnapshotRecorder) -> None:
        sender = transport_of("n1", tmp_path / "n1")
        try:
            sender.set_peer("n2", f"127.0.0.1:{port}")
            message = snap_message()
            message.context = b"not addresses: the manifest's count"
            await sender.send_snapshot(message, source, 65536, MEMBERS)
            assert len(recorder.snapshots) == 1
            got, data = recorder.snapshots[0]
            assert data == SNAPSHOT_DATA
            assert got.snapshot == message.snapshot and got.from_ == "n1"
            assert json.loads(got.context) == MEMBERS
            assert [p.name.startswith("received-40-") for p in (tmp_path / "n2/g0").iterdir()] \
                == [True]
            assert recorder.transport is not None  # the metrics count the file's bytes
            assert sender.snapshot_bytes_sent == len(SNAPSHOT_DATA)
            assert recorder.transport.snapshot_bytes_received == len(SNAPSHOT_DATA)
        finally:
            await sender.stop()

    against_n2_snapshots(tmp_path, body)


BAD_STREAMS: dict[str, tuple[Callable[[], list[bytes]], str]] = {
    "bad chunk CRC": (lambda: stream(crc_of=65536), "bad CRC32"),
    "bad SHA-256": (lambda: stream(sha256="0" * 64), "SHA-256"),
    "a SHA-256 not in hex": (lambda: stream(sha256="\u00e9" * 64), "SHA-256"),
    "truncated": (lambda: stream()[:2] + stream()[-2:], "131072 bytes arrived"),
    "a chunk missing": (lambda: stream()[:1] + stream()[2:], "a chunk at offset 131072"),
    "short of its size": (lambda: stream(size=len(SNAPSHOT_DATA) + 1), "bytes arrived"),
    "wrong group": (lambda: stream(group="g1"), "manifest of 'g1'"),
    "wrong index": (lambda: stream(index=41), "announces 40/3"),
    "wrong term": (lambda: stream(term=2), "announces 40/3"),
    "another sender": (lambda: stream(sender="n3"), "claiming to be from"),
    "a newer format": (lambda: stream(format=2), "format 2"),
    "no manifest": (lambda: [f for f in stream() if f[4] != SNAP_MANIFEST], "no manifest"),
    "end from another node": (
        lambda: [*stream()[:-1], frame(SNAP_END, encode_message(snap_message(sender="n3")))],
        "claiming to be from"),
    "a chunk after the manifest": (lambda: stream()[:-1] + stream()[:1], "after the manifest"),
    "an unreadable manifest": (
        lambda: [*stream()[:-2], frame(SNAP_MANIFEST, b"{"), stream()[-1]],
        "manifest unreadable"),
}


def test_a_bad_snapshot_is_refused_and_leaves_nothing(tmp_path: Path) -> None:
    async def body(port: int, recorder: SnapshotRecorder) -> None:
        for what, (frames, reason) in BAD_STREAMS.items():
            reader, writer = await authenticated(port)
            writer.write(b"".join(frames()))
            kind, answer = await read_frame(reader)
            assert (kind, reason in answer.decode()) == (SNAP_REFUSED, True), (what, answer)
            assert await closed(reader)
            writer.close()
            assert list((tmp_path / "n2/g0").iterdir()) == [], what
        assert recorder.snapshots == []
        reader, writer = await authenticated(port)  # and a good one still goes in
        writer.write(b"".join(stream()))
        assert await read_frame(reader) == (SNAP_OK, b"")
        assert len(recorder.snapshots) == 1

    against_n2_snapshots(tmp_path, body)


def test_a_snapshot_cut_short_leaves_no_file(tmp_path: Path) -> None:
    async def body(port: int, recorder: SnapshotRecorder) -> None:
        _, writer = await authenticated(port)
        writer.write(b"".join(stream()[:3]) + stream()[3][:100])
        await writer.drain()
        await until(lambda: any((tmp_path / "n2/g0").glob("incoming-*")), "the file begun")
        writer.close()
        await until(lambda: list((tmp_path / "n2/g0").iterdir()) == [], "the file removed")
        assert recorder.snapshots == []

    against_n2_snapshots(tmp_path, body)


def test_the_sender_hears_a_refusal(tmp_path: Path) -> None:
    """A snapshot the receiver refuses fails on the sender (which reports it to Raft,
    so it sends again) instead of counting as delivered."""
    source = tmp_path / "snap.sqlite"
    source.write_bytes(SNAPSHOT_DATA)

    async def body(port: int, recorder: SnapshotRecorder) -> None:
        sender = transport_of("n1", tmp_path / "n1")
        try:
            sender.set_peer("n2", f"127.0.0.1:{port}")
            message = snap_message(group="g7")  # a group n2 does not run
            try:
                await sender.send_snapshot(message, source, 65536, MEMBERS)
            except ConnectionError as error:
                assert "refused the snapshot: a snapshot for unknown group 'g7'" in str(error)
            else:
                raise AssertionError("the refusal went unnoticed")
        finally:
            await sender.stop()

    against_n2_snapshots(tmp_path, body)


# -- garbage --------------------------------------------------------------------------


GARBAGE_AFTER_HANDSHAKE = [
    frame(MSG, b"\x01garbage"), frame(SNAP_END, b"\x09junk"), frame(REMOVED, b"not json"),
    frame(REMOVED, b"[1]"), frame(SNAP_MANIFEST, b"{}"), frame(SNAP_CHUNK, b"\x00"),
    frame(SNAP_CHUNK, b"\xff\xff"), frame(99, b"what"), frame(HELLO, hello_payload()),
    frame(PROOF, b"again"), frame(PING, b"payload"), struct.pack(">IB", 0, PING),
    struct.pack(">IB", 1 << 30, MSG),
    frame(BROADCAST, b"*1\r\n$1\r\nx\r\n"), frame(BROADCAST, b"\xff"),
]


def test_garbage_of_every_kind_closes_its_connection_with_little_log(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """Every kind of frame, malformed after the handshake, and a burst of garbage
    connections before it: each is closed, the log stays a handful of lines without a
    traceback, and a good peer is still served."""
    caplog.set_level(logging.DEBUG)

    async def body(port: int, recorder: SnapshotRecorder) -> None:
        for bad in GARBAGE_AFTER_HANDSHAKE:
            reader, writer = await authenticated(port)
            writer.write(bad)
            answer = await asyncio.wait_for(reader.read(), DEADLINE)
            assert answer == b"" or answer[4] == SNAP_REFUSED, (bad, answer)
            writer.close()
        for i in range(100):
            junk = [struct.pack(">IB", 1 << 20, HELLO), b"GET / HTTP/1.0\r\n\r\n",
                    frame(HELLO, b"\x00" * i), frame(PROOF, b"x")][i % 4]
            reader, writer = await connect(port, junk)
            assert await asyncio.wait_for(reader.read(), DEADLINE) in (
                b"", frame(HELLO_REFUSED, b"not a hello"),
                frame(HELLO_REFUSED, b"frame 11 before the handshake ended")), junk
            writer.close()
        reader, writer = await authenticated(port)
        writer.write(frame(MSG, encode_message(append(5))))
        await until(lambda: len(recorder.messages) == 1, "the good message")
        writer.close()

    against_n2_snapshots(tmp_path, body)
    warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert 1 <= len(warnings) <= 4, [r.getMessage() for r in warnings]
    assert not any(r.exc_info for r in caplog.records)
