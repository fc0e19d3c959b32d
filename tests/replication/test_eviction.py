"""The leader's side of maxmemory: when to propose an eviction entry, for which group,
and when a denyoom write is refused (against stand-in groups: no Raft here)."""

from __future__ import annotations

import asyncio
import random
from dataclasses import dataclass, field

import respkv.commands  # noqa: F401  (registers every command)
from respkv.commands.table import apply_write
from respkv.config import Config
from respkv.replication.eviction import Evictor
from respkv.state.keyspace import Keyspace


@dataclass
class FakeGroup:
    name: str
    leader: bool = True
    disk_full: bool = False
    keyspace: Keyspace = field(default_factory=Keyspace)
    proposed: list[tuple[list[bytes], asyncio.Future]] = field(default_factory=list)

    def is_leader(self) -> bool:
        return self.leader

    def propose(self, args: list[bytes]) -> asyncio.Future:
        future = asyncio.get_running_loop().create_future()
        self.proposed.append((args, future))
        return future

    def apply_proposed(self) -> None:
        """The log applies what was proposed, as every node would."""
        for args, future in self.proposed:
            future.set_result(apply_write(self.keyspace, args, 1))
        self.proposed.clear()


def fill(group: FakeGroup, count: int) -> None:
    for i in range(count):
        apply_write(group.keyspace, [b"SET", f"{group.name}:{i}".encode(), b"v" * 50], 1)


def evictor(groups: list[FakeGroup], **settings: str) -> Evictor:
    config = Config()
    for name, value in settings.items():
        config.set(name, value)
    return Evictor(lambda: groups, config, random.Random(1))  # type: ignore[arg-type, return-value]


def test_each_led_group_evicts_its_share_once_at_a_time() -> None:
    async def main() -> None:
        led, other = FakeGroup("g0"), FakeGroup("g1", leader=False)
        fill(led, 100)
        fill(other, 100)
        total = led.keyspace.used + other.keyspace.used
        ev = evictor([led, other], maxmemory=str(total - 2000), maxmemory_policy="allkeys-lru")
        assert ev.admit()  # over, but an eviction is now on its way
        assert len(led.proposed) == 1 and not other.proposed
        ev.evict()
        assert len(led.proposed) == 1  # one in flight per group
        (_, future), = led.proposed
        asyncio.get_running_loop().call_soon(led.apply_proposed)
        await future  # the evictor's done callback was added before this wait's: it ran
        freed = total - led.keyspace.used - other.keyspace.used
        assert 1000 <= freed < 1300  # half the excess: the other leader frees its half
        assert led.keyspace.evicted == 100 - len(led.keyspace)
        assert not ev.inflight

    asyncio.run(main())


def test_noeviction_and_nothing_to_evict_refuse_and_no_limit_admits() -> None:
    async def main() -> None:
        group = FakeGroup("g0")
        fill(group, 10)
        assert evictor([group]).admit()  # maxmemory 0: no limit
        assert evictor([group], maxmemory=str(group.keyspace.used)).admit()  # at it
        assert not evictor([group], maxmemory="100").admit()  # noeviction
        assert not evictor([group], maxmemory="100", maxmemory_policy="volatile-ttl").admit()
        follower = FakeGroup("g0", leader=False, keyspace=group.keyspace)
        assert not evictor([follower], maxmemory="100",
                           maxmemory_policy="allkeys-random").admit()
        assert evictor([group], maxmemory="100", maxmemory_policy="allkeys-random").admit()
        assert group.proposed and group.proposed[0][0][0] == b"respkv.evict"

    asyncio.run(main())


def test_access_times_are_kept_only_under_an_lru_or_lfu_policy() -> None:
    group = FakeGroup("g0")
    ev = evictor([group], maxmemory_policy="allkeys-lfu")
    ev.sync_tracking()
    assert group.keyspace.access == {}
    ev.config.set("maxmemory-policy", "allkeys-random")
    ev.sync_tracking()
    assert group.keyspace.access is None
