"""Who this node is: node.json, written once when a node bootstraps or joins and again
if it is removed, so a restart with the same command line comes back as the same
node of the same cluster, and a removed node refuses to start."""

from __future__ import annotations

import json
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path

from respkv.storage.files import write_json_atomically


class NodeRefused(RuntimeError):
    """This directory cannot be served by this node (other cluster, removed...)."""


@dataclass
class NodeInfo:
    node_id: str
    cluster_id: str
    removed: bool = False
    # per group: log index of the change that added this node (absent: founder)
    joined_at: dict[str, int] = field(default_factory=dict)
    shards: int = 1  # Raft groups of the cluster


def load_node_info(directory: Path) -> NodeInfo | None:
    path = directory / "node.json"
    if not path.exists():
        return None
    fields = json.loads(path.read_text())
    joined_at = fields.get("joined_at", {})
    if isinstance(joined_at, int):  # a single-group node.json
        joined_at = {"g0": joined_at}
    return NodeInfo(fields["node_id"], fields["cluster_id"], bool(fields.get("removed")),
                    {str(k): int(v) for k, v in joined_at.items()}, int(fields.get("shards", 1)))


def save_node_info(directory: Path, info: NodeInfo) -> None:
    write_json_atomically(directory / "node.json", asdict(info))


def new_cluster_id() -> str:
    return uuid.uuid4().hex
