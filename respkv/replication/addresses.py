"""Where the other nodes are: the address book.

It maps node ids to their raft and client addresses (and TLS client address, for a
node with a tls-port: clients on TLS are sent there). Addresses travel in the
context of membership-change log entries and beside snapshots; each node keeps
its book in peers.json, written before the change that taught it is applied, so
a restart never forgets an address it needs.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from respkv.storage.files import write_json_atomically


@dataclass
class Addresses:
    raft: str
    client: str
    tls: str = ""  # the TLS client port's address; "" when the node has none

    def to_dict(self) -> dict[str, str]:
        fields = {"raft": self.raft, "client": self.client}
        if self.tls:  # a node without TLS says what it always said
            fields["tls"] = self.tls
        return fields

    def to_bytes(self) -> bytes:
        return json.dumps(self.to_dict()).encode()

    @classmethod
    def from_dict(cls, fields: dict) -> Addresses:
        """Raises KeyError or TypeError when ``fields`` are not addresses."""
        return cls(str(fields["raft"]), str(fields["client"]), str(fields.get("tls", "")))

    @classmethod
    def from_bytes(cls, data: bytes) -> Addresses | None:
        try:
            return cls.from_dict(json.loads(data))
        except (ValueError, KeyError, TypeError, AttributeError):
            return None


def split_address(address: str) -> tuple[str, int]:
    """``host:port`` (or ``[v6]:port``) as (host, port); raises ValueError."""
    host, _, port = address.rpartition(":")
    return host.strip("[]") or "127.0.0.1", int(port)


class AddressBook:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.entries: dict[str, Addresses] = {}
        if path.exists():
            for node, fields in json.loads(path.read_text()).items():
                self.entries[node] = Addresses.from_dict(fields)

    def get(self, node_id: str) -> Addresses | None:
        return self.entries.get(node_id)

    def tls_of(self, client: str) -> str | None:
        """The TLS address of the node whose plain client address is ``client``."""
        for addresses in self.entries.values():
            if addresses.client == client:
                return addresses.tls or None
        return None

    def learn(self, node_id: str, addresses: Addresses) -> None:
        if self.entries.get(node_id) != addresses:
            self.entries[node_id] = addresses
            self.save()

    def merge(self, others: dict[str, Addresses]) -> None:
        changed = False
        for node, addresses in others.items():
            if self.entries.get(node) != addresses:
                self.entries[node] = addresses
                changed = True
        if changed:
            self.save()

    def save(self) -> None:
        write_json_atomically(self.path, {n: a.to_dict() for n, a in self.entries.items()})

    def to_bytes(self) -> bytes:
        return json.dumps({n: a.to_dict() for n, a in self.entries.items()}).encode()

    @staticmethod
    def parse(data: bytes) -> dict[str, Addresses]:
        try:
            fields = json.loads(data)
            return {n: Addresses.from_dict(f) for n, f in fields.items()}
        except (ValueError, KeyError, TypeError, AttributeError):
            return {}


def is_loopback(host: str) -> bool:
    """A host name or address of this machine's loopback interface."""
    host = host.strip("[]")
    return host.startswith("127.") or host in ("::1", "localhost") \
        or host.startswith("::ffff:127.")
