"""Pub/Sub on a node: who listens to what, and delivery.

As in Redis Cluster, a message published on any node reaches the subscribers of
every node: the publishing node delivers to its own connections and sends the
message to every peer over the cluster's own connections (a BROADCAST frame of
the Raft port, not the log), and each peer delivers to its connections. Delivery
is at most once, as Redis': a peer that is not connected at that moment misses it.
PUBLISH answers how many of this node's connections received the message, and the
PUBSUB counts are this node's, as in Redis Cluster.

Shard channels (SSUBSCRIBE, SPUBLISH) work the same way; their names are keys, so
one SSUBSCRIBE must name channels of one slot.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Protocol

import hiredis

from respkv.commands import errors
from respkv.commands.glob import stringmatch
from respkv.protocol.parser import ProtocolError, RequestParser
from respkv.protocol.reply import Frames, Push, Reply, encode
from respkv.replication.slots import key_slot

CHANNEL, PATTERN, SHARD = "channel", "pattern", "shard"
_KINDS = {CHANNEL: (b"subscribe", b"unsubscribe"), PATTERN: (b"psubscribe", b"punsubscribe"),
          SHARD: (b"ssubscribe", b"sunsubscribe")}


class Subscriber(Protocol):
    """A connection as the hub sees it."""

    id: int
    resp3: bool
    subscriptions: dict[str, set[bytes]]  # kind -> names

    def push(self, data: bytes) -> None:
        """Send out-of-band bytes (a message) after the replies already queued."""


class PubSubHub:
    def __init__(self, broadcast: Callable[[bytes], int]) -> None:
        self.broadcast = broadcast  # to every peer: their subscribers get it too
        self.listeners: dict[str, dict[bytes, dict[int, Subscriber]]] = {
            CHANNEL: {}, PATTERN: {}, SHARD: {}}
        self.received_from_peers = 0

    # -- subscribing ---------------------------------------------------------

    def subscribe(self, session: Subscriber, kind: str, names: list[bytes]) -> Reply:
        if kind == SHARD and len({key_slot(name) for name in names}) > 1:
            return errors.CROSSSLOT
        mine = session.subscriptions[kind]
        table = self.listeners[kind]
        word = _KINDS[kind][0]
        frames = Frames()
        for name in names:
            if name not in mine:
                mine.add(name)
                table.setdefault(name, {})[session.id] = session
            frames.append(Push([word, name, self._count(session, kind)]))
        return frames

    def unsubscribe(self, session: Subscriber, kind: str, names: list[bytes]) -> Reply:
        mine = session.subscriptions[kind]
        word = _KINDS[kind][1]
        if not names:
            if not mine:
                return Frames([Push([word, None, self._count(session, kind)])])
            names = sorted(mine)
        frames = Frames()
        for name in names:
            self._drop(session, kind, name)
            frames.append(Push([word, name, self._count(session, kind)]))
        return frames

    def forget(self, session: Subscriber) -> None:
        """A closed (or RESET) connection leaves every channel."""
        for kind, names in session.subscriptions.items():
            for name in list(names):
                self._drop(session, kind, name)

    def _drop(self, session: Subscriber, kind: str, name: bytes) -> None:
        session.subscriptions[kind].discard(name)
        table = self.listeners[kind]
        listeners = table.get(name)
        if listeners is not None:
            listeners.pop(session.id, None)
            if not listeners:
                del table[name]

    @staticmethod
    def _count(session: Subscriber, kind: str) -> int:
        """The count Redis puts in a (un)subscribe reply: channels and patterns
        together, shard channels apart."""
        subs = session.subscriptions
        if kind == SHARD:
            return len(subs[SHARD])
        return len(subs[CHANNEL]) + len(subs[PATTERN])

    # -- publishing ----------------------------------------------------------

    def publish(self, channel: bytes, message: bytes, shard: bool = False) -> int:
        """Deliver here and send to every peer; how many connections here got it."""
        kind = b"s" if shard else b"c"
        self.broadcast(hiredis.pack_command((kind, channel, message)))
        return self.deliver(channel, message, shard)

    def on_broadcast(self, payload: bytes) -> None:
        """A peer's message (the transport calls this); raises ValueError when it is
        not one, and the transport then closes that peer's connection."""
        # the request parser, not a bare hiredis Reader: bulks only, and no allocation
        # for a "*99999999" (a peer's bytes, as a client's, are parsed with limits)
        try:
            # "*": an inline line is a client's convenience, never what a peer sends
            requests = RequestParser().feed(payload) if payload[:1] == b"*" else []
        except ProtocolError:
            requests = []
        fields = requests[0] if len(requests) == 1 else None
        if fields is None or len(fields) != 3 or fields[0] not in (b"c", b"s"):
            raise ValueError("malformed pub/sub message")
        self.received_from_peers += 1
        self.deliver(fields[1], fields[2], fields[0] == b"s")

    def deliver(self, channel: bytes, message: bytes, shard: bool) -> int:
        if shard:
            return self._send(self.listeners[SHARD].get(channel, {}).values(),
                              Push([b"smessage", channel, message]))
        count = self._send(self.listeners[CHANNEL].get(channel, {}).values(),
                           Push([b"message", channel, message]))
        for pattern, listeners in self.listeners[PATTERN].items():
            if stringmatch(pattern, channel):
                count += self._send(listeners.values(),
                                    Push([b"pmessage", pattern, channel, message]))
        return count

    @staticmethod
    def _send(listeners: Iterable[Subscriber], push: Push) -> int:
        encoded: dict[bool, bytes] = {}
        count = 0
        for listener in list(listeners):
            data = encoded.get(listener.resp3)
            if data is None:
                data = encoded[listener.resp3] = encode(push, listener.resp3)
            listener.push(data)
            count += 1
        return count

    # -- PUBSUB --------------------------------------------------------------

    def names(self, kind: str, pattern: bytes | None) -> list[bytes]:
        return [name for name in self.listeners[kind]
                if pattern is None or stringmatch(pattern, name)]

    def numsub(self, kind: str, names: list[bytes]) -> dict[bytes, int]:
        table = self.listeners[kind]
        return {name: len(table.get(name, ())) for name in names}

    def numpat(self) -> int:
        return len(self.listeners[PATTERN])
