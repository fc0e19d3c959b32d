"""Raft traffic between nodes: one long-lived TCP connection per peer.

Frames are ``length u32 | type u8 | payload`` (big endian). A connection is
one-way: the dialing node sends, the accepting node receives; each node dials
every peer it has to talk to. The first frame is a HELLO naming the cluster
and both node ids; a mismatch is refused (and logged) by the acceptor.

Snapshots travel on a connection of their own, in chunks, so heartbeats never
queue behind megabytes of data; ``drain()`` after each chunk is the flow
control, and the file is read chunk by chunk, never whole.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import struct
from collections.abc import Callable
from pathlib import Path
from typing import Any

from respkv.background import spawn
from respkv.raft.codec import decode_message, encode_message
from respkv.raft.messages import Message
from respkv.storage.store import ChunkWriter, iter_chunks

log = logging.getLogger(__name__)

_HEAD = struct.Struct(">IB")
HELLO, HELLO_OK, HELLO_REFUSED, MSG, SNAP_CHUNK, SNAP_END, REMOVED = 1, 2, 3, 4, 5, 6, 7
MAX_FRAME = 64 << 20
SEND_BUFFER_LIMIT = 8 << 20  # queued bytes per peer before messages are dropped
BACKOFF_MIN, BACKOFF_MAX = 0.05, 1.0


def frame(kind: int, payload: bytes) -> bytes:
    return _HEAD.pack(len(payload) + 1, kind) + payload


async def read_frame(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    head = await reader.readexactly(_HEAD.size)
    length, kind = _HEAD.unpack(head)
    if not 1 <= length <= MAX_FRAME:
        raise ConnectionError(f"bad frame length {length}")
    return kind, await reader.readexactly(length - 1)


def split_address(address: str) -> tuple[str, int]:
    host, _, port = address.rpartition(":")
    return host.strip("[]") or "127.0.0.1", int(port)


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

    def _flush(self, writer: asyncio.StreamWriter) -> None:
        frames, self.queued = self.queued, []
        if writer is self.writer and not writer.is_closing():
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
                log.debug("cannot reach %s at %s: %s", self.node_id, self.address, error)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, BACKOFF_MAX)
                continue
            backoff = BACKOFF_MIN
            self.writer = writer
            log.info("connected to peer", extra={"peer": self.node_id, "addr": self.address})
            with contextlib.suppress(OSError):
                await reader.read()  # the acceptor never sends: EOF means closed
            self.writer = None
            writer.close()
            self.transport.on_unreachable(self.node_id)
            log.info("lost peer connection", extra={"peer": self.node_id})
            await asyncio.sleep(backoff)

    async def close(self) -> None:
        if self.task is not None:
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.task
        if self.writer is not None:
            self.writer.close()


class Transport:
    def __init__(self, node_id: str, cluster_id: str, bind: str, port: int,
                 snapshot_dir: Callable[[str], Path], advertise: dict[str, str],
                 on_hello: Callable[[str, dict[str, str]], None]) -> None:
        self.node_id = node_id
        self.advertise = advertise  # our addresses, told to every peer we dial
        self.on_hello = on_hello  # a peer told us where it is: we can answer it
        self.cluster_id = cluster_id
        self.bind = bind
        self.port = port
        self.snapshot_dir = snapshot_dir  # group -> where incoming snapshots are written
        self.peers: dict[str, Peer] = {}
        self.handlers: dict[str, Any] = {}  # group name -> RaftGroup
        self.peer_in_use: Callable[[str], bool] = lambda node_id: False  # set by the node
        self.server: asyncio.AbstractServer | None = None
        self.inbound: set[asyncio.StreamWriter] = set()

    # -- lifecycle ---------------------------------------------------------

    async def start(self) -> None:
        self.server = await asyncio.start_server(
            self._accept, self.bind, self.port, reuse_address=True, limit=MAX_FRAME
        )

    async def stop(self) -> None:
        if self.server is not None:
            self.server.close()
        for writer in list(self.inbound):
            writer.close()
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

    def send(self, message: Message) -> None:
        peer = self.peers.get(message.to)
        if peer is None:
            return
        peer.send(frame(MSG, encode_message(message)))

    async def dial(self, address: str, node_id: str) -> tuple[asyncio.StreamReader,
                                                                asyncio.StreamWriter]:
        host, port = split_address(address)
        reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), 2.0)
        try:
            hello = json.dumps({"cluster": self.cluster_id, "from": self.node_id, "to": node_id,
                                "addresses": self.advertise})
            writer.write(frame(HELLO, hello.encode()))
            kind, payload = await asyncio.wait_for(read_frame(reader), 2.0)
            if kind != HELLO_OK:
                raise ConnectionError(f"refused by {node_id}: {payload.decode(errors='replace')}")
        except BaseException:
            writer.close()
            raise
        return reader, writer

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
            log.info("cannot tell %s it was removed: %s", node_id, error)
            return
        try:
            writer.write(data)
            await asyncio.wait_for(writer.drain(), 5)
            await asyncio.wait_for(reader.read(), 5)  # the receiver closes when done
        except (OSError, ConnectionError, TimeoutError):
            pass
        finally:
            writer.close()

    async def send_snapshot(self, message: Message, path: Path, chunk_size: int) -> None:
        """Stream a snapshot file to ``message.to`` on its own connection, then the MsgSnap."""
        address = self.peers[message.to].address
        reader, writer = await self.dial(address, message.to)
        sent = 0
        try:
            group = message.group.encode()
            prefix = struct.pack(">H", len(group)) + group
            chunks = iter_chunks(path, chunk_size)
            while True:
                chunk = await asyncio.to_thread(next, chunks, None)
                if chunk is None:
                    break
                writer.write(frame(SNAP_CHUNK, prefix + chunk))
                await writer.drain()
                sent += len(chunk)
            writer.write(frame(SNAP_END, encode_message(message)))
            await writer.drain()
            # wait for the receiver to close: it has the whole file by then
            await asyncio.wait_for(reader.read(), 30)
        finally:
            writer.close()
        log.info("snapshot sent", extra={"peer": message.to, "bytes": sent,
                                          "index": message.snapshot.index})

    # -- receiving -------------------------------------------------------------

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.inbound.add(writer)
        snapshot: ChunkWriter | None = None
        try:
            kind, payload = await asyncio.wait_for(read_frame(reader), 5.0)
            peer = self._check_hello(kind, payload)
            if peer is None:
                writer.write(frame(HELLO_REFUSED, b"cluster or node id mismatch"))
                await writer.drain()
                return
            writer.write(frame(HELLO_OK, b""))
            while True:
                kind, payload = await read_frame(reader)
                if kind == MSG:
                    message = decode_message(payload)
                    group = self.handlers.get(message.group)
                    if group is not None:
                        group.on_message(message)
                elif kind == SNAP_CHUNK:
                    (size,) = struct.unpack_from(">H", payload)
                    name = payload[2 : 2 + size].decode()
                    if snapshot is None:
                        directory = self.snapshot_dir(name)
                        directory.mkdir(parents=True, exist_ok=True)
                        snapshot = ChunkWriter(directory / f"incoming-{peer}.tmp",
                                               directory / f"incoming-{peer}.sqlite")
                    snapshot.write(payload[2 + size :])
                elif kind == REMOVED:
                    fields = json.loads(payload)
                    group = self.handlers.get(fields.get("group"))
                    if group is not None and fields.get("node") == self.node_id:
                        group.on_removed_notice(peer, int(fields.get("index", 0)))
                    return
                elif kind == SNAP_END:
                    message = decode_message(payload)
                    group = self.handlers.get(message.group)
                    if snapshot is None or group is None or message.snapshot is None:
                        return
                    directory = self.snapshot_dir(message.group)
                    final = directory / f"received-{message.snapshot.index}.sqlite"
                    path = await asyncio.to_thread(_finish, snapshot, final)
                    snapshot = None
                    group.on_snapshot(message, path)
                    return
        except (asyncio.IncompleteReadError, ConnectionError, OSError, TimeoutError):
            pass
        except Exception:
            log.exception("bad raft connection")
        finally:
            if snapshot is not None:
                snapshot.abort()
            self.inbound.discard(writer)
            writer.close()

    def _check_hello(self, kind: int, payload: bytes) -> str | None:
        if kind != HELLO:
            return None
        try:
            hello = json.loads(payload)
        except ValueError:
            return None
        if hello.get("cluster") != self.cluster_id or hello.get("to") != self.node_id:
            log.warning("refused raft connection", extra={
                "peer": hello.get("from"), "their_cluster": hello.get("cluster"),
                "to": hello.get("to")})
            return None
        peer = str(hello.get("from"))
        addresses = hello.get("addresses")
        if isinstance(addresses, dict):
            self.on_hello(peer, addresses)
        return peer

    def on_unreachable(self, node_id: str) -> None:
        for group in self.handlers.values():
            group.on_unreachable(node_id)


def _finish(writer: ChunkWriter, final: Path) -> Path:
    path = writer.finish()
    path.replace(final)
    return final
