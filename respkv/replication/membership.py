"""Who this node is (node.json) and where the others are (the address book).

node.json is written once when a node bootstraps or joins, and again if it is
removed, so a restart with the same command line comes back as the same node
of the same cluster, and a removed node refuses to start.

The address book maps node ids to their raft and client addresses. Addresses
travel in the context of membership-change log entries and beside snapshots;
each node keeps its book in peers.json, written before the change that
taught it is applied, so a restart never forgets an address it needs.
"""

from __future__ import annotations

import hashlib
import json
import os
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path


class NodeRefused(RuntimeError):
    """This directory cannot be served by this node (other cluster, removed...)."""


@dataclass
class Addresses:
    raft: str
    client: str

    def to_bytes(self) -> bytes:
        return json.dumps({"raft": self.raft, "client": self.client}).encode()

    @classmethod
    def from_bytes(cls, data: bytes) -> Addresses | None:
        try:
            fields = json.loads(data)
            return cls(str(fields["raft"]), str(fields["client"]))
        except (ValueError, KeyError, TypeError):
            return None


@dataclass
class NodeInfo:
    node_id: str
    cluster_id: str
    removed: bool = False
    # per group: log index of the change that added this node (absent: founder)
    joined_at: dict[str, int] = field(default_factory=dict)
    shards: int = 1  # Raft groups of the cluster (node.json from before sharding: 1)


def write_json_atomically(path: Path, value: object) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    with open(tmp, "w") as f:
        json.dump(value, f, indent=1, sort_keys=True)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def load_node_info(directory: Path) -> NodeInfo | None:
    path = directory / "node.json"
    if not path.exists():
        return None
    fields = json.loads(path.read_text())
    joined_at = fields.get("joined_at", {})
    if isinstance(joined_at, int):  # written by a single-group version
        joined_at = {"g0": joined_at}
    return NodeInfo(fields["node_id"], fields["cluster_id"], bool(fields.get("removed")),
                    {str(k): int(v) for k, v in joined_at.items()}, int(fields.get("shards", 1)))


def save_node_info(directory: Path, info: NodeInfo) -> None:
    write_json_atomically(directory / "node.json", asdict(info))


def new_cluster_id() -> str:
    return uuid.uuid4().hex


def cluster_node_id(node_id: str) -> str:
    """The 40-hex id Redis Cluster clients expect, derived from our node id."""
    return hashlib.sha1(node_id.encode()).hexdigest()


class AddressBook:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.entries: dict[str, Addresses] = {}
        if path.exists():
            for node, fields in json.loads(path.read_text()).items():
                self.entries[node] = Addresses(fields["raft"], fields["client"])

    def get(self, node_id: str) -> Addresses | None:
        return self.entries.get(node_id)

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
        write_json_atomically(self.path, {n: asdict(a) for n, a in self.entries.items()})

    def to_bytes(self) -> bytes:
        return json.dumps({n: asdict(a) for n, a in self.entries.items()}).encode()

    @staticmethod
    def parse(data: bytes) -> dict[str, Addresses]:
        try:
            fields = json.loads(data)
            return {n: Addresses(f["raft"], f["client"]) for n, f in fields.items()}
        except (ValueError, KeyError, TypeError, AttributeError):
            return {}
