"""Which peers this node hears from: the failure detector behind CLUSTER NODES'
``fail?``/``fail`` flags and link states, CLUSTER INFO's ``cluster_state``, and a
follower's choice between sending a writer to its leader (-MOVED) and telling it
the cluster is down for now.

The transport sends every peer a PING frame each ping interval on its outgoing
connection, besides Raft's own traffic, so a node hears from every live peer even
when neither leads a group the other follows; any frame received counts. A peer
silent for longer than an election timeout is suspected (Redis Cluster's PFAIL,
shown ``fail?``), silent for twice that it is failed (``fail``). Unlike Redis
Cluster's FAIL, which the masters agree on by gossip, ``fail`` is this node's own
verdict: each node reports what it sees.
"""

from __future__ import annotations

import enum
import time
from dataclasses import dataclass, field


class Health(enum.Enum):
    UP = "up"
    SUSPECT = "fail?"
    FAILED = "fail"


@dataclass
class PeerHealth:
    suspect_after: float  # seconds of silence: an election timeout
    since: float = field(default_factory=time.monotonic)  # a peer never heard: from here
    heard: dict[str, float] = field(default_factory=dict)  # node id -> monotonic time
    pings_sent: int = 0
    pings_received: int = 0

    @property
    def ping_interval(self) -> float:
        return self.suspect_after / 5

    def silent_for(self, node: str, now: float | None = None) -> float:
        """Seconds since ``node`` was last heard (since this node started, if never)."""
        now = time.monotonic() if now is None else now
        return now - self.heard.get(node, self.since)

    def of(self, node: str) -> Health:
        silence = self.silent_for(node)
        if silence > 2 * self.suspect_after:
            return Health.FAILED
        if silence > self.suspect_after:
            return Health.SUSPECT
        return Health.UP

    def reachable(self, node: str) -> bool:
        return self.of(node) is Health.UP

    def last_heard_unix_ms(self, node: str) -> int:
        """When ``node`` was last heard, in Unix milliseconds (0: never)."""
        heard = self.heard.get(node)
        if heard is None:
            return 0
        return int((time.time() - (time.monotonic() - heard)) * 1000)
