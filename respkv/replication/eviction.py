"""maxmemory on a replicated keyspace: each group's leader evicts through the log.

The node's memory figure is the sum of its groups' estimates (``Keyspace.used``;
every node holds every group, so every node sees about the same figure). While it is
over ``maxmemory``, each group this node leads proposes one ``respkv.evict`` entry at
a time, naming keys the policy chose (respkv.state.eviction) to free its share of the
excess (in proportion to the group's size, so the leaders of the other groups, doing
the same, do not free it three times over). Every node deletes the named keys when
it applies the entry, in log order.

This runs every ``CHECK_INTERVAL`` and before a ``denyoom`` write is accepted
(``admit``): such a write is refused (-OOM) when over the limit and nothing can be
evicted (noeviction, or no candidate: volatile-* with no key with a TTL). An
accepted write is proposed after the eviction entry, so it lands after it in the log.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Callable

from respkv.config import Config
from respkv.protocol.reply import Reply
from respkv.replication.group import RaftGroup
from respkv.state.eviction import choose, tracks_access

logger = logging.getLogger(__name__)

CHECK_INTERVAL = 0.1  # seconds between the leader's looks at memory
EVICT_BATCH = 1000  # keys at most in one eviction entry
EVICT_BYTES = 1 << 20  # and about this much of key names at most (max-entry-bytes)


class Evictor:
    def __init__(self, groups: Callable[[], list[RaftGroup]], config: Config,
                 rng: random.Random | None = None) -> None:
        self.groups = groups
        self.config = config
        self.rng = rng or random.Random()
        self.inflight: dict[str, asyncio.Future[Reply]] = {}  # group name -> its eviction
        self.tracking: bool | None = None
        self.pools: dict[tuple[str, str], dict[bytes, int]] = {}  # (group, policy) -> pool

    def used(self) -> int:
        return sum(group.keyspace.used for group in self.groups())

    def evicted(self) -> int:
        return sum(group.keyspace.evicted for group in self.groups())

    def sync_tracking(self) -> None:
        """Keep per-key access times only while the policy needs them."""
        wanted = tracks_access(self.config.maxmemory_policy)
        if wanted != self.tracking:
            for group in self.groups():
                group.keyspace.track_access(wanted)
            self.tracking = wanted

    def admit(self) -> bool:
        """May a denyoom write go ahead? Starts evicting when over the limit."""
        limit = self.config.maxmemory
        if not limit or self.used() <= limit:
            return True
        if self.config.maxmemory_policy == "noeviction":
            return False
        return self.evict()

    def evict(self) -> bool:
        """Over the limit: propose evictions in the groups this node leads that have
        none in flight. True while some eviction of this node is on its way."""
        config = self.config
        groups = self.groups()
        total = sum(group.keyspace.used for group in groups)
        excess = total - config.maxmemory
        if excess <= 0 or config.maxmemory_policy == "noeviction":
            return False
        self.sync_tracking()
        for group in groups:
            if group.name in self.inflight or not group.is_leader() or group.disk_full:
                continue
            keyspace = group.keyspace
            share = -(-excess * keyspace.used // total) if total else 0  # rounded up
            policy = config.maxmemory_policy
            pool = self.pools.setdefault((group.name, policy), {})
            keys = choose(keyspace, policy, config.maxmemory_samples, share, EVICT_BATCH,
                          self.rng, pool)
            if not keys:
                continue
            keys = _fitting(keys)
            future = group.propose([b"respkv.evict", *keys])
            self.inflight[group.name] = future
            future.add_done_callback(lambda done, name=group.name: self._done(name, done))
        return bool(self.inflight)

    def _done(self, name: str, future: asyncio.Future[Reply]) -> None:
        if self.inflight.get(name) is future:
            del self.inflight[name]
        if not future.cancelled() and future.exception() is not None:
            # lost the lead, stopping: the next check decides again
            logger.debug("eviction not applied: %s", future.exception())

    async def run(self) -> None:
        while True:
            await asyncio.sleep(CHECK_INTERVAL)
            self.sync_tracking()
            if self.config.maxmemory and self.used() > self.config.maxmemory:
                self.evict()


def _fitting(keys: list[bytes]) -> list[bytes]:
    """The first keys whose names fit in EVICT_BYTES (one at least): the rest are
    evicted by the next entry."""
    size = 0
    for count, key in enumerate(keys):
        size += len(key)
        if size > EVICT_BYTES:
            return keys[:max(count, 1)]
    return keys
