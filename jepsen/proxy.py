"""A fault proxy in front of every node's raft port.

Raft connections are one-way: the dialing node sends, the acceptor only
answers the HELLO. A node is started with ``--raft-advertise`` pointing at its
proxy, so every peer dials the proxy; the proxy reads the HELLO frame
(``length u32 | type u8=1 | JSON {"from", "to", ...}``) to learn which
directed link (from -> to) the connection carries, dials the node's real raft
port, forwards the HELLO and then relays frame by frame, applying that link's
rule to each frame:

- ``cut``: the connection is closed and new ones are closed after the HELLO;
- ``drop``: each message frame (type 4) is dropped with this probability
  (snapshot frames never are: a TCP stream does not lose bytes in the middle);
- ``delay``: every frame is held this long (order is kept).

With mutual TLS on the Raft ports (``tls``: the nodes run with tls-cluster), a proxy
ends the TLS of the connection it accepts and opens its own to the node, each with
the nodes' certificate: it reads frames in the clear between the two, and each node
still dials, accepts and verifies TLS as it would without the proxy.

The proxies run on one asyncio loop in a thread of their own; the ``Network``
methods may be called from any thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import struct
import threading
import time
from dataclasses import dataclass

from respkv.replication.transport import HELLO, MAX_FRAME, MSG
from respkv.tlsconfig import PeerTls

_HEAD = struct.Struct(">IB")


@dataclass
class Rule:
    cut: bool = False
    drop: float = 0.0
    delay: float = 0.0

    @property
    def healthy(self) -> bool:
        return not self.cut and not self.drop and not self.delay


class Network:
    def __init__(self, seed: int = 0, tls: PeerTls | None = None) -> None:
        self.tls = tls
        self.rules: dict[tuple[str, str], Rule] = {}
        self.random = random.Random(seed)
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="proxies", daemon=True)
        self.servers: dict[str, asyncio.AbstractServer] = {}
        self.links: dict[tuple[str, str], set[asyncio.StreamWriter]] = {}
        self.frames = {"relayed": 0, "dropped": 0, "refused": 0}
        self.thread.start()

    # -- proxies -------------------------------------------------------------------

    def add_node(self, node_id: str, listen_port: int, target_port: int) -> None:
        """Listen on ``listen_port`` for connections to ``node_id`` (real raft port
        ``target_port``)."""
        future = asyncio.run_coroutine_threadsafe(
            self._listen(node_id, listen_port, target_port), self.loop)
        future.result(10)

    async def _listen(self, node_id: str, listen_port: int, target_port: int) -> None:
        async def accept(reader, writer):
            await self._relay(node_id, target_port, reader, writer)

        self.servers[node_id] = await asyncio.start_server(
            accept, "127.0.0.1", listen_port, reuse_address=True, limit=MAX_FRAME,
            ssl=self.tls.server if self.tls is not None else None)

    async def _relay(self, to: str, target_port: int, reader: asyncio.StreamReader,
                     writer: asyncio.StreamWriter) -> None:
        up_writer = None
        link = None
        try:
            head = await asyncio.wait_for(reader.readexactly(_HEAD.size), 5)
            length, kind = _HEAD.unpack(head)
            if kind != HELLO or not 1 <= length <= 1 << 16:
                return
            payload = await reader.readexactly(length - 1)
            hello = json.loads(payload)
            # the HELLO names both ends (a node may come back under a new id)
            link = (str(hello.get("from")), str(hello.get("to") or to))
            if self.rule(*link).cut:
                self.frames["refused"] += 1
                return
            up_reader, up_writer = await asyncio.wait_for(asyncio.open_connection(
                "127.0.0.1", target_port, ssl=self.tls.client if self.tls else None), 2)
            self.links.setdefault(link, set()).update((writer, up_writer))
            up_writer.write(head + payload)
            back = asyncio.ensure_future(_pipe(up_reader, writer))
            try:
                await self._forward(link, reader, up_writer)
            finally:
                back.cancel()
        except (OSError, asyncio.IncompleteReadError, TimeoutError, ValueError,
                ConnectionError):
            pass
        finally:
            if link is not None:
                self.links.get(link, set()).difference_update((writer, up_writer))
            writer.close()
            if up_writer is not None:
                up_writer.close()

    async def _forward(self, link: tuple[str, str], reader: asyncio.StreamReader,
                       writer: asyncio.StreamWriter) -> None:
        queue: asyncio.Queue[tuple[float, bytes] | None] = asyncio.Queue()

        async def send() -> None:
            while True:
                item = await queue.get()
                if item is None:
                    return
                release, data = item
                wait = release - time.monotonic()
                if wait > 0:
                    await asyncio.sleep(wait)
                if writer.is_closing():
                    return
                writer.write(data)
                if writer.transport.get_write_buffer_size() > 1 << 20:
                    await writer.drain()

        sender = asyncio.ensure_future(send())
        try:
            while True:
                head = await reader.readexactly(_HEAD.size)
                length, kind = _HEAD.unpack(head)
                if not 1 <= length <= MAX_FRAME:
                    return
                body = await reader.readexactly(length - 1)
                rule = self.rule(*link)
                if rule.cut:
                    return
                if kind == MSG and rule.drop and self.random.random() < rule.drop:
                    self.frames["dropped"] += 1
                    continue
                self.frames["relayed"] += 1
                if rule.delay or queue.qsize():
                    queue.put_nowait((time.monotonic() + rule.delay, head + body))
                elif writer.is_closing():
                    return
                else:
                    writer.write(head + body)
                    if writer.transport.get_write_buffer_size() > 1 << 20:
                        await writer.drain()
                if sender.done():
                    return
        finally:
            queue.put_nowait(None)
            with contextlib.suppress(asyncio.CancelledError, OSError, ConnectionError):
                await asyncio.wait_for(sender, 5)

    # -- rules -------------------------------------------------------------------------

    def rule(self, source: str, to: str) -> Rule:
        return self.rules.get((source, to)) or Rule()

    def set_rule(self, source: str, to: str, rule: Rule) -> None:
        self.rules[(source, to)] = rule
        if rule.cut:
            self.loop.call_soon_threadsafe(self._close_link, (source, to))

    def _close_link(self, link: tuple[str, str]) -> None:
        for writer in list(self.links.get(link, ())):
            if writer is not None:
                writer.close()

    def cut(self, source: str, to: str) -> None:
        self.set_rule(source, to, Rule(cut=True))

    def partition(self, *sides: list[str] | set[str]) -> None:
        """Cut every link between nodes on different sides, both ways."""
        for i, side in enumerate(sides):
            for other in sides[i + 1:]:
                for a in side:
                    for b in other:
                        self.cut(a, b)
                        self.cut(b, a)

    def heal(self) -> None:
        self.rules.clear()

    def describe(self) -> dict[str, str]:
        return {f"{a}->{b}": ("cut" if r.cut else f"drop={r.drop} delay={r.delay}")
                for (a, b), r in sorted(self.rules.items()) if not r.healthy}

    def stop(self) -> None:
        async def close() -> None:
            for server in self.servers.values():
                server.close()
            for writers in self.links.values():
                for writer in writers:
                    if writer is not None:
                        writer.close()

        with contextlib.suppress(Exception):
            asyncio.run_coroutine_threadsafe(close(), self.loop).result(5)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Acceptor -> dialer: HELLO_OK and EOF only; copied as is."""
    with contextlib.suppress(OSError, ConnectionError, asyncio.CancelledError):
        while True:
            data = await reader.read(65536)
            if not data or writer.is_closing():
                break
            writer.write(data)
        writer.close()
