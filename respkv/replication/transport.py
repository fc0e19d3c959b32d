"""Raft traffic between nodes: one long-lived TCP connection per peer.

Frames are ``length u32 | type u8 | payload`` (big endian). A connection is
one-way: the dialing node sends, the accepting node receives; each node dials
every peer it has to talk to. A connection opens with a handshake in which each
side proves it holds the cluster's secret (respkv.replication.peerauth): HELLO
(cluster, both node ids, the dialer's addresses, a nonce), CHALLENGE (the acceptor's
nonce and proof), PROOF (the dialer's), HELLO_OK. Anything else is refused and logged,
rate-limited. Once open, a Raft message must come from the peer that authenticated.

Every node also sends each peer a PING frame every ping interval (see
respkv.replication.health): any frame received from a peer marks it as heard.

BROADCAST frames carry the layer above's messages to every peer (pub/sub), at most
once: a peer that is not connected misses them, as Redis Cluster's bus does.

With tls-cluster every connection, dialed or accepted, is mutual TLS (the node's
certificate both ways, verified against the CA) and the handshake above runs inside
it unchanged; a handshake the TLS layer refuses never reaches this module.

Snapshots travel on a connection of their own, in chunks, so heartbeats never
queue behind megabytes of data; ``drain()`` after each chunk is the flow
control, and the file is read chunk by chunk, never whole. Each chunk has a CRC32,
a manifest (size, SHA-256, group, index, term, member addresses) follows the last,
and the receiver checks it all before the file goes anywhere
(respkv.replication.snapstream); it answers SNAP_OK once the file is durable, or
SNAP_REFUSED.

Where peers are comes from the membership log and snapshot manifests only, never
from what a peer says of itself: the addresses in a HELLO are only a hint for
dialing back a node this one has no address for yet (a node that just joined
answers its leader before the log has taught it anything).

A frame that cannot be what it claims (too long, unknown, unreadable, a message in
another peer's name) closes that connection only, with one log line per host every
10 s at most.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import ssl
import struct
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from respkv.background import spawn
from respkv.raft.codec import check_message, decode_message, encode_message
from respkv.raft.messages import Message
from respkv.replication import peerauth
from respkv.replication.addresses import split_address
from respkv.replication.health import PeerHealth
from respkv.replication.keyring import Keyring
from respkv.replication.snapstream import (
    FORMAT,
    Manifest,
    Receiver,
    StreamRefused,
    chunk_group,
    chunk_payload,
)
from respkv.sizes import MAX_ENTRY_BYTES
from respkv.storage.files import iter_chunks
from respkv.tlsconfig import PeerTls

logger = logging.getLogger(__name__)

_HEAD = struct.Struct(">IB")
HELLO, HELLO_OK, HELLO_REFUSED, MSG, SNAP_CHUNK, SNAP_END, REMOVED, PING = 1, 2, 3, 4, 5, 6, 7, 8
BROADCAST, CHALLENGE, PROOF, SNAP_MANIFEST, SNAP_REFUSED, SNAP_OK = 9, 10, 11, 12, 13, 14
MAX_FRAME = MAX_ENTRY_BYTES + (1 << 20)  # one entry, and its message around it
MAX_HANDSHAKE_FRAME = 64 << 10  # no one buffers megabytes for a peer not yet proved
SNAPSHOT_ANSWER_TIMEOUT = 30.0  # the receiver syncs the whole file before it answers
SEND_BUFFER_LIMIT = 8 << 20  # queued bytes per peer before messages are dropped
BACKOFF_MIN, BACKOFF_MAX = 0.05, 1.0
HELLO_TIMEOUT = 5.0
SNAPSHOT_PROGRESS_EVERY = 1.0  # seconds between progress lines of a snapshot sent


def frame(kind: int, payload: bytes) -> bytes:
    return _HEAD.pack(len(payload) + 1, kind) + payload


PING_FRAME = frame(PING, b"")


async def read_frame(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    head = await reader.readexactly(_HEAD.size)
    length, kind = _HEAD.unpack(head)
    if not 1 <= length <= MAX_FRAME:
        raise ConnectionError(f"bad frame length {length}")
    return kind, await reader.readexactly(length - 1)


class GroupEndpoint(Protocol):
    """What the transport hands a group's traffic to (a RaftGroup)."""

    def on_message(self, message: Message) -> None: ...

    def on_snapshot(self, message: Message, path: Path) -> None: ...

    def on_removed_notice(self, sender: str, index: int) -> None: ...

    def on_unreachable(self, node_id: str) -> None: ...


class Peer:
    """The outgoing connection to one peer, reconnected with backoff."""

    def __init__(self, transport: Transport, node_id: str, address: str) -> None:
        self.transport = transport
        self.node_id = node_id
        self.address = address
        self.writer: asyncio.StreamWriter | None = None
        self.task: asyncio.Task[None] | None = None
        self.wanted = asyncio.Event()
        self.dropped = 0
        self.queued: list[bytes] = []  # frames of this loop iteration, written together

    def send(self, data: bytes) -> bool:
        """Queue a frame; the frames of all groups sent in one loop iteration go out in
        one write, so the peer reads them at once and its groups share one fsync."""
        writer = self.writer
        if writer is None or writer.is_closing():
            self.wanted.set()
            return False
        if writer.transport.get_write_buffer_size() > SEND_BUFFER_LIMIT:
            self.dropped += 1  # Raft resends what is lost; memory must stay bounded
            return False
        if not self.queued:
            asyncio.get_running_loop().call_soon(self._flush, writer)
        self.queued.append(data)
        return True

    def flush(self) -> None:
        if self.queued and self.writer is not None:
            self._flush(self.writer)

    def _flush(self, writer: asyncio.StreamWriter) -> None:
        frames, self.queued = self.queued, []
        if frames and writer is self.writer and not writer.is_closing():
            writer.write(b"".join(frames))

    def start(self) -> None:
        self.task = asyncio.create_task(self._run(), name=f"peer-{self.node_id}")

    async def _run(self) -> None:
        backoff = BACKOFF_MIN
        while True:
            try:
                reader, writer = await self.transport.dial(self.address, self.node_id)
            except (OSError, ConnectionError, asyncio.IncompleteReadError) as error:
                self.transport.on_unreachable(self.node_id)
                if isinstance(error, ssl.SSLError):  # not a node down: a certificate refused
                    self.transport.tls_failures.refused(self.address, str(error),
                                                        peer=self.node_id)
                logger.debug("cannot reach %s at %s: %s", self.node_id, self.address, error)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, BACKOFF_MAX)
                continue
            backoff = BACKOFF_MIN
            self.writer = writer
            logger.info("connected to peer", extra={"peer": self.node_id, "addr": self.address})
            with contextlib.suppress(OSError):
                await reader.read()  # the acceptor never sends: EOF means closed
            self.writer = None
            writer.close()
            self.transport.on_unreachable(self.node_id)
            logger.info("lost peer connection", extra={"peer": self.node_id})
            await asyncio.sleep(backoff)

    async def close(self) -> None:
        if self.task is not None:
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.task
        if self.writer is not None:
            self.writer.close()


class Transport:
    def __init__(self, node_id: str, cluster_id: str, keys: Keyring, bind: str, port: int,
                 snapshot_dir: Callable[[str], Path], advertise: dict[str, str],
                 on_hello: Callable[[str, dict[str, str]], None],
                 health: PeerHealth | None = None, tls: PeerTls | None = None) -> None:
        self.node_id = node_id
        self.tls = tls  # mutual TLS under the handshake (tls-cluster), or plain TCP
        self.tls_failures = peerauth.RefusalLog(logger, message="TLS handshake with peer failed")
        self.keys = keys  # proves with keys.current, takes a proof made with any accepted
        self.refusals = peerauth.RefusalLog(logger)
        self.snapshot_refusals = peerauth.RefusalLog(logger, message="refused a snapshot")
        self.health = health if health is not None else PeerHealth(suspect_after=0.5)
        self.advertise = advertise  # our addresses, told to every peer we dial
        # a peer proved itself and said where it listens: a hint to dial back a node
        # with no known address, never an entry of the address book
        self.on_hello = on_hello
        self.cluster_id = cluster_id
        self.bind = bind
        self.port = port
        self.snapshot_dir = snapshot_dir  # group -> where incoming snapshots are written
        self.peers: dict[str, Peer] = {}
        self.handlers: dict[str, GroupEndpoint] = {}  # by group name
        self.peer_in_use: Callable[[str], bool] = lambda node_id: False  # set by the node
        self.on_broadcast: Callable[[bytes], None] = lambda payload: None  # set above
        self.server: asyncio.AbstractServer | None = None
        self.inbound: set[Inbound] = set()
        self.pinger: asyncio.Task[None] | None = None
        self.snapshot_bytes_sent = 0  # snapshot chunks, for the metrics
        self.snapshot_bytes_received = 0

    # -- lifecycle ---------------------------------------------------------

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        tls = self.tls.server if self.tls is not None else None
        self.server = await loop.create_server(
            lambda: Inbound(self), self.bind, self.port, reuse_address=True, ssl=tls,
            ssl_handshake_timeout=HELLO_TIMEOUT if tls is not None else None,
        )
        self.pinger = asyncio.create_task(self._ping(), name="raft-ping")

    async def stop(self) -> None:
        if self.pinger is not None:
            self.pinger.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.pinger
        if self.server is not None:
            self.server.close()
        for inbound in list(self.inbound):
            inbound.close()
        for peer in list(self.peers.values()):
            await peer.close()
        self.peers.clear()

    def set_peer(self, node_id: str, address: str) -> None:
        """Make sure there is a connection to ``node_id`` at ``address``."""
        if node_id == self.node_id:
            return
        peer = self.peers.get(node_id)
        if peer is not None and peer.address == address:
            return
        if peer is not None:
            spawn(peer.close())
        peer = Peer(self, node_id, address)
        self.peers[node_id] = peer
        peer.start()

    def drop_peer(self, node_id: str) -> None:
        """A group removed ``node_id``: close its connection, unless another group of
        this node still has it as a member (the connection is shared)."""
        if self.peer_in_use(node_id):
            return
        peer = self.peers.pop(node_id, None)
        if peer is not None:
            spawn(peer.close())

    # -- sending -------------------------------------------------------------

    async def _ping(self) -> None:
        health = self.health
        while True:
            await asyncio.sleep(health.ping_interval)
            for peer in self.peers.values():
                if peer.send(PING_FRAME):
                    health.pings_sent += 1

    def link_up(self, node_id: str) -> bool:
        """This node's connection to ``node_id`` is open and the peer is heard."""
        peer = self.peers.get(node_id)
        return (peer is not None and peer.writer is not None
                and not peer.writer.is_closing() and self.health.reachable(node_id))

    def flush(self) -> None:
        """Write every peer's queued frames now: the loop is about to block in an
        fsync. Every queued frame is already cleared to go (the groups queue a message
        only once the Raft core allows it); this only sends it before the fsync rather
        than after, so a leader's appends reach the followers while its own disk
        works, and their fsyncs overlap its own."""
        for peer in self.peers.values():
            peer.flush()

    def broadcast(self, payload: bytes) -> int:
        """Send an opaque message to every connected peer; how many it was queued for."""
        data = frame(BROADCAST, payload)
        return sum(1 for peer in self.peers.values() if peer.send(data))

    def send(self, message: Message) -> None:
        peer = self.peers.get(message.to)
        if peer is None:
            return
        peer.send(frame(MSG, encode_message(message)))

    async def dial(self, address: str, node_id: str) -> tuple[asyncio.StreamReader,
                                                                asyncio.StreamWriter]:
        host, port = split_address(address)
        tls = self.tls.client if self.tls is not None else None
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection(host, port, ssl=tls), 2.0)
        try:
            await asyncio.wait_for(self._handshake(reader, writer, node_id), 2.0)
        except BaseException:
            writer.close()
            raise
        return reader, writer

    async def _handshake(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                         node_id: str) -> None:
        """Prove ourselves to ``node_id`` and make it prove itself (see peerauth)."""
        nonce = peerauth.new_nonce()
        hello = json.dumps({"cluster": self.cluster_id, "from": self.node_id, "to": node_id,
                            "addresses": self.advertise, "nonce": nonce.hex()}).encode()
        writer.write(frame(HELLO, hello))
        kind, payload = await read_frame(reader)
        if kind != CHALLENGE:
            raise ConnectionError(f"refused by {node_id}: {payload.decode(errors='replace')}")
        try:
            challenge = json.loads(payload)
            theirs = bytes.fromhex(challenge["nonce"])
            proof = bytes.fromhex(challenge["proof"])
        except (ValueError, KeyError, TypeError):
            raise ConnectionError(f"bad challenge from {node_id}") from None
        keys = self.keys
        if not keys.proves(lambda secret: peerauth.acceptor_proof(
                secret, self.cluster_id, self.node_id, node_id, nonce, theirs), proof):
            raise ConnectionError(f"{node_id} did not prove it holds the cluster secret")
        writer.write(frame(PROOF, peerauth.dialer_proof(
            keys.current, self.cluster_id, self.node_id, node_id, nonce, theirs, hello)))
        kind, payload = await read_frame(reader)
        if kind != HELLO_OK:
            raise ConnectionError(f"refused by {node_id}: {payload.decode(errors='replace')}")

    def notify_removed(self, node_id: str, address: str, group: str, index: int) -> None:
        """Tell ``node_id`` that its removal from ``group`` is committed (at ``index``).

        Raft cannot tell it: the conf change takes effect when appended, so the
        leader stops replicating to the removed node before that node ever sees
        the entry. Sent on a connection of its own, so it does not depend on the
        peer connection, which the removal closes.
        """
        payload = json.dumps({"group": group, "node": node_id, "index": index}).encode()
        spawn(self._send_once(address, node_id, frame(REMOVED, payload)))

    async def _send_once(self, address: str, node_id: str, data: bytes) -> None:
        try:
            reader, writer = await self.dial(address, node_id)
        except (OSError, ConnectionError, asyncio.IncompleteReadError, TimeoutError) as error:
            logger.info("cannot tell %s it was removed: %s", node_id, error)
            return
        try:
            writer.write(data)
            await asyncio.wait_for(writer.drain(), 5)
            await asyncio.wait_for(reader.read(), 5)  # the receiver closes when done
        except (OSError, ConnectionError, TimeoutError):
            pass
        finally:
            writer.close()

    async def send_snapshot(self, message: Message, path: Path, chunk_size: int,
                            members: dict[str, dict[str, str]]) -> None:
        """Stream a snapshot file to ``message.to`` on its own connection, then its
        manifest (with ``members``, the addresses of the snapshot's members) and the
        MsgSnap; raises ConnectionError unless the receiver says it has the file."""
        meta = message.snapshot
        assert meta is not None
        address = self.peers[message.to].address
        reader, writer = await self.dial(address, message.to)
        sent, total = 0, path.stat().st_size
        told = time.monotonic()
        sha256 = hashlib.sha256()
        # the receiver answers once, at the end or as soon as it refuses: watched
        # throughout, so a refusal stops the stream rather than waiting for its end
        answered = asyncio.ensure_future(_read_answer(reader))
        try:
            chunks = iter_chunks(path, chunk_size)
            while not answered.done():
                # read, hash and frame off the loop: SHA-256 costs ~2.5 ms a MiB here
                framed = await asyncio.to_thread(_next_chunk, chunks, sha256,
                                                 message.group, sent)
                if framed is None:
                    manifest = Manifest(message.group, self.node_id, meta.index, meta.term,
                                        sent, sha256.hexdigest(), members, FORMAT)
                    message.context = b""  # addresses travel in the manifest only
                    writer.write(frame(SNAP_MANIFEST, manifest.to_bytes())
                                 + frame(SNAP_END, encode_message(message)))
                    await writer.drain()
                    break
                data, size = framed
                writer.write(data)
                await writer.drain()
                sent += size
                self.snapshot_bytes_sent += size
                if time.monotonic() - told >= SNAPSHOT_PROGRESS_EVERY:
                    told = time.monotonic()
                    logger.info("snapshot progress", extra={
                        "peer": message.to, "group": message.group, "bytes": sent,
                        "total": total, "index": meta.index})
            kind, answer = await asyncio.wait_for(answered, SNAPSHOT_ANSWER_TIMEOUT)
        finally:
            answered.cancel()
            writer.close()
        if kind != SNAP_OK:
            raise ConnectionError(f"{message.to} refused the snapshot: "
                                  f"{answer.decode(errors='replace')[:200] or 'no answer'}")
        logger.info("snapshot sent", extra={"peer": message.to, "bytes": sent,
                                          "index": meta.index})

    # -- receiving -------------------------------------------------------------

    def challenge(self, payload: bytes) -> Handshake | str:
        """A HELLO: the handshake to go on with, or why it is refused."""
        try:
            hello = json.loads(payload)
            peer, nonce = str(hello["from"]), bytes.fromhex(hello["nonce"])
        except (ValueError, KeyError, TypeError):
            return "not a hello"
        if hello.get("cluster") != self.cluster_id:
            return "another cluster"
        if hello.get("to") != self.node_id:
            return "meant for another node"
        if len(nonce) != peerauth.NONCE_BYTES or peer == self.node_id:
            return "bad hello"
        addresses = hello.get("addresses")
        return Handshake(peer, nonce, peerauth.new_nonce(), payload,
                         addresses if isinstance(addresses, dict) else None)

    def accept(self, handshake: Handshake, proof: bytes) -> bool:
        """The dialer's PROOF: true if it holds the secret (then its addresses count)."""
        if not self.keys.proves(lambda secret: peerauth.dialer_proof(
                secret, self.cluster_id, handshake.peer, self.node_id,
                handshake.their_nonce, handshake.our_nonce, handshake.hello), proof):
            return False
        if handshake.addresses is not None:
            self.on_hello(handshake.peer, handshake.addresses)
        return True

    def challenge_frame(self, handshake: Handshake) -> bytes:
        proof = peerauth.acceptor_proof(self.keys.current, self.cluster_id, handshake.peer,
                                        self.node_id, handshake.their_nonce,
                                        handshake.our_nonce)
        return frame(CHALLENGE, json.dumps({"nonce": handshake.our_nonce.hex(),
                                            "proof": proof.hex()}).encode())

    def on_unreachable(self, node_id: str) -> None:
        for group in self.handlers.values():
            group.on_unreachable(node_id)


@dataclass(slots=True)
class Handshake:
    """An accepted connection between its HELLO and its PROOF."""

    peer: str
    their_nonce: bytes
    our_nonce: bytes
    hello: bytes
    addresses: dict[str, str] | None


class Inbound(asyncio.Protocol):
    """One accepted connection: a HELLO, then frames handled as they arrive. Raft
    messages go to their group from data_received itself: no task, no stream, no
    extra loop turn between the socket and the Raft core."""

    def __init__(self, owner: Transport) -> None:
        self.owner = owner
        self.transport: asyncio.Transport | None = None
        self.peer: str | None = None  # set once the peer has proved itself
        self.handshake: Handshake | None = None
        self.address = "?"
        self.buffer = bytearray()  # an incomplete frame
        self.need = 0  # bytes the buffer must hold before it is worth parsing
        self.snapshot: Receiver | None = None
        self.done = False  # no more frames wanted
        self.hello_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        peername = transport.get_extra_info("peername")
        if peername:
            self.address = f"{peername[0]}:{peername[1]}"
        self.owner.inbound.add(self)
        self.hello_timer = asyncio.get_running_loop().call_later(HELLO_TIMEOUT, self._no_hello)

    def connection_lost(self, exc: Exception | None) -> None:
        self.done = True
        self.owner.inbound.discard(self)
        if self.hello_timer is not None:
            self.hello_timer.cancel()
        if self.snapshot is not None:
            self.snapshot.abort()
            self.snapshot = None

    def close(self) -> None:
        self.done = True
        if self.transport is not None:
            self.transport.close()

    def _no_hello(self) -> None:
        if self.peer is None:
            self.owner.refusals.refused(self.address, "no handshake in time")
            self.close()

    def data_received(self, data: bytes) -> None:
        if self.done:
            return
        if self.peer is not None:
            self.owner.health.heard[self.peer] = time.monotonic()
        buffer = self.buffer
        if buffer:
            buffer += data
            if len(buffer) < self.need:
                return  # a big frame (a snapshot chunk) still arriving
            data = bytes(buffer)
            buffer.clear()
        try:
            self._split(data)
        except StreamRefused as error:
            self._refuse_snapshot(str(error))
        except Exception as error:  # garbage: drop this connection only, log once
            self.owner.refusals.refused(self.address, f"bad frame: {error!r}"[:300],
                                        peer=self.peer)
            self.close()

    def _split(self, data: bytes) -> None:
        view, pos, size = memoryview(data), 0, len(data)
        head = _HEAD.size
        while size - pos >= head and not self.done:
            length, kind = _HEAD.unpack_from(view, pos)
            if not 1 <= length <= (MAX_FRAME if self.peer is not None
                                   else MAX_HANDSHAKE_FRAME):
                raise ConnectionError(f"bad frame length {length}")
            end = pos + 4 + length
            if end > size:
                break
            self._on_frame(kind, view[pos + head : end])
            pos = end
        if pos < size and not self.done:
            self.buffer += view[pos:]
            left = size - pos
            self.need = 4 + _HEAD.unpack_from(view, pos)[0] if left >= head else head

    def _on_frame(self, kind: int, payload: memoryview) -> None:
        owner = self.owner
        if kind == MSG and self.peer is not None:  # the hot path
            message = decode_message(payload)
            if message.from_ != self.peer:
                raise ConnectionError(f"a message from {message.from_} on {self.peer}'s link")
            check_message(message)  # what would make the core raise never reaches it
            group = owner.handlers.get(message.group)
            if group is not None:
                group.on_message(message)
        elif self.peer is None:
            self._handshake(kind, bytes(payload))
        elif kind == PING:
            if payload:
                raise ConnectionError("a PING with a payload")
            owner.health.pings_received += 1
        elif kind == BROADCAST:
            owner.on_broadcast(bytes(payload))
        elif kind == SNAP_CHUNK:
            if self.snapshot is None:
                name = chunk_group(payload)
                if name not in owner.handlers:  # never a path made of what a peer sent
                    raise StreamRefused(f"a snapshot for unknown group {name[:40]!r}")
                directory = owner.snapshot_dir(name)
                directory.mkdir(parents=True, exist_ok=True)
                self.snapshot = Receiver(name, directory, self.peer)
            written = self.snapshot.file.bytes_written
            self.snapshot.chunk(payload)
            owner.snapshot_bytes_received += self.snapshot.file.bytes_written - written
        elif kind == SNAP_MANIFEST:
            if self.snapshot is None:
                raise StreamRefused("a manifest before any chunk")
            self.snapshot.on_manifest(bytes(payload))
        elif kind == REMOVED:
            fields = json.loads(bytes(payload))
            group = owner.handlers.get(fields.get("group"))
            if group is not None and fields.get("node") == owner.node_id:
                group.on_removed_notice(self.peer, int(fields.get("index", 0)))
            self.close()
        elif kind == SNAP_END:
            self.done = True
            if self.snapshot is None:
                raise StreamRefused("a snapshot end before any chunk")
            message = decode_message(payload)
            manifest = self.snapshot.check_end(message)
            spawn(self._finish_snapshot(message, manifest))
        else:
            raise ConnectionError(f"unknown frame kind {kind}")

    def _handshake(self, kind: int, payload: bytes) -> None:
        assert self.transport is not None
        owner = self.owner
        if kind == HELLO and self.handshake is None:
            outcome = owner.challenge(payload)
            if isinstance(outcome, str):
                self._refuse(outcome)
                return
            self.handshake = outcome
            self.transport.write(owner.challenge_frame(outcome))
        elif kind == PROOF and self.handshake is not None:
            if not owner.accept(self.handshake, payload):
                self._refuse("wrong proof: not the cluster's secret", self.handshake.peer)
                return
            self.peer = self.handshake.peer
            self.handshake = None
            owner.health.heard[self.peer] = time.monotonic()
            self.transport.write(frame(HELLO_OK, b""))
        else:
            self._refuse(f"frame {kind} before the handshake ended")

    def _refuse(self, reason: str, peer: str | None = None) -> None:
        assert self.transport is not None
        self.owner.refusals.refused(self.address, reason, peer=peer)
        self.transport.write(frame(HELLO_REFUSED, reason.encode()))
        self.close()  # after the refusal is written

    def _refuse_snapshot(self, reason: str) -> None:
        """Drop what arrived of a snapshot that is not what it claims, say why (the
        sender reports a failure and Raft sends again), and close."""
        snapshot, self.snapshot = self.snapshot, None
        if snapshot is not None:
            snapshot.abort()
        self.owner.snapshot_refusals.refused(
            self.address, reason, peer=self.peer,
            group=snapshot.group if snapshot is not None else None)
        self.done = True
        transport = self.transport
        if transport is None or transport.is_closing():
            return
        transport.write(frame(SNAP_REFUSED, reason.encode()[:1000]))
        if not transport.can_write_eof():  # TLS: no half-close
            self.close()
            return
        # Half-close and read on, discarding, until the sender has read the answer and
        # closed: closing with its chunks unread would reset the connection and lose it.
        transport.write_eof()
        asyncio.get_running_loop().call_later(SNAPSHOT_ANSWER_TIMEOUT, self.close)

    async def _finish_snapshot(self, message: Message, manifest: Manifest) -> None:
        """The checked stream is in: make the file durable, hand it to its group with
        the manifest's member addresses, answer SNAP_OK and close."""
        assert message.snapshot is not None
        owner = self.owner
        snapshot, self.snapshot = self.snapshot, None  # ours now, not connection_lost's
        group = owner.handlers.get(message.group)
        if snapshot is None:
            return
        if group is None:  # the group stopped meanwhile
            self.snapshot = snapshot
            self._refuse_snapshot("group not running")
            return
        try:
            path = await asyncio.to_thread(snapshot.finish, message.snapshot.index)
        except OSError as error:
            self.snapshot = snapshot
            self._refuse_snapshot(f"cannot write the snapshot: {error}")
            return
        message.context = json.dumps(manifest.members).encode()
        group.on_snapshot(message, path)
        if self.transport is not None:
            self.transport.write(frame(SNAP_OK, b""))
            self.transport.close()


def _next_chunk(chunks: Iterator[bytes], sha256: hashlib._Hash, group: str,
                offset: int) -> tuple[bytes, int] | None:
    """The next chunk of a snapshot file as a frame, and its size; None at the end."""
    chunk = next(chunks, None)
    if chunk is None:
        return None
    sha256.update(chunk)
    return frame(SNAP_CHUNK, chunk_payload(group, offset, chunk)), len(chunk)


async def _read_answer(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    """The receiver's answer to a snapshot: (SNAP_OK, b"") or (SNAP_REFUSED, reason);
    (0, b"") when it closed without one."""
    try:
        head = await reader.readexactly(_HEAD.size)
    except asyncio.IncompleteReadError:
        return 0, b""
    length, kind = _HEAD.unpack(head)
    if not 1 <= length <= 4096:
        raise ConnectionError(f"bad answer to a snapshot: frame length {length}")
    return kind, await reader.readexactly(length - 1)
