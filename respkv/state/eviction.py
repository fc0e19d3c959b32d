"""Which keys to evict when the dataset is over ``maxmemory``: Redis' policies, by
sampling as Redis does.

The leader of a group calls ``choose`` on its keyspace and proposes the keys it names
as one log entry (``respkv.evict``): the choice may use this node's access times and
randomness, since only the chosen names travel, and every node deletes those.

- ``allkeys-*`` sample any key, ``volatile-*`` only keys with a TTL.
- ``*-lru`` (and ``*-lfu``, run as their LRU counterpart) evict the sampled key least
  recently used, by ``Keyspace.access``; ``volatile-ttl`` the one soonest to expire;
  ``*-random`` the first sampled.
- A pool of the best candidates seen is kept across picks and calls, as Redis'
  eviction pool, so a pick does not take a hot key because one sample held only hot
  keys.
"""

from __future__ import annotations

import random
from collections.abc import Callable

from respkv.state.keyspace import BUCKETS, Keyspace, key_cost

POLICIES = ("volatile-lru", "volatile-lfu", "volatile-random", "volatile-ttl",
            "allkeys-lru", "allkeys-lfu", "allkeys-random", "noeviction")  # Redis' order
ACCESS_POLICIES = frozenset({"volatile-lru", "volatile-lfu", "allkeys-lru", "allkeys-lfu"})
POOL_SIZE = 16  # Redis' EVPOOL_SIZE
MAX_MISSES = 16  # samples in a row that find only keys already chosen, before giving up


def tracks_access(policy: str) -> bool:
    """The policy needs per-key access times."""
    return policy in ACCESS_POLICIES


def choose(keyspace: Keyspace, policy: str, samples: int, target: int, limit: int,
           rng: random.Random, pool: dict[bytes, int] | None = None) -> list[bytes]:
    """Keys to delete to free about ``target`` bytes (by ``key_cost``), at most
    ``limit`` of them; [] when the policy evicts nothing or finds no candidate.
    ``pool``: the candidates left by the previous call on this keyspace and policy
    (kept by the caller, as Redis keeps its pool between evictions), updated here."""
    if policy == "noeviction" or target <= 0:
        return []
    volatile = policy.startswith("volatile-")
    if not (keyspace.expires if volatile else keyspace.data):
        return []
    sample = _volatile_sampler(keyspace, rng) if volatile else _any_sampler(keyspace, rng)
    score = _scorer(keyspace, policy)
    chosen: list[bytes] = []
    taken: set[bytes] = set()
    data = keyspace.data
    if pool is None or policy.endswith("-random"):
        pool = {}  # candidate -> score, lower goes first
    else:  # what was sampled before, scored anew: it may have been used or deleted since
        alive = keyspace.expires if volatile else data
        for key in list(pool):
            if key in alive:
                pool[key] = score(key)
            else:
                del pool[key]
    freed = 0
    candidates = len(keyspace.expires if volatile else data)
    misses = 0
    while freed < target and len(chosen) < limit and len(taken) < candidates:
        for key in sample(samples):
            if key not in taken:
                pool[key] = score(key)
        if not pool:
            misses += 1
            if misses > MAX_MISSES:  # few keys left untaken: the next check goes on
                break
            continue
        misses = 0
        best = min(pool, key=pool.__getitem__)
        del pool[best]
        if len(pool) > POOL_SIZE:  # keep the best few: the rest are sampled again later
            for key in sorted(pool, key=pool.__getitem__)[POOL_SIZE:]:
                del pool[key]
        taken.add(best)
        chosen.append(best)
        freed += key_cost(best, data[best])
    return chosen


def _scorer(keyspace: Keyspace, policy: str) -> Callable[[bytes], int]:
    if policy == "volatile-ttl":
        return keyspace.expires.__getitem__
    if policy in ACCESS_POLICIES:
        access = keyspace.access or {}
        return lambda key: access.get(key, 0)
    order = iter(range(1 << 62))  # random: first sampled, first out
    return lambda key: next(order)


def _any_sampler(keyspace: Keyspace, rng: random.Random) -> Callable[[int], list[bytes]]:
    """Random keys: a random SCAN bucket, then the next that holds keys (found at C
    speed), then a random key of it."""
    buckets, occupied = keyspace.buckets, keyspace.occupied

    def sample(count: int) -> list[bytes]:
        found = []
        for _ in range(count):
            at = occupied.find(1, rng.randrange(BUCKETS))
            if at < 0:
                at = occupied.find(1)
                if at < 0:
                    break
            bucket = buckets[at]
            assert bucket is not None
            found.append(bucket[rng.randrange(len(bucket))])
        return found

    return sample


def _volatile_sampler(keyspace: Keyspace, rng: random.Random) -> Callable[[int], list[bytes]]:
    """Random keys with a TTL: sampled among all keys while at least a quarter have one;
    else from a list of the TTL keys (made once per call, at most a quarter of them)."""
    expires = keyspace.expires
    if len(expires) * 4 >= len(keyspace.data):
        any_key = _any_sampler(keyspace, rng)

        def sample(count: int) -> list[bytes]:
            found: list[bytes] = []
            for _ in range(8):  # a quarter or more hit: 8 rounds almost always fill it
                found += [key for key in any_key(count) if key in expires]
                if len(found) >= count:
                    break
            return found[:count]

        return sample
    keys = list(expires)

    def sample_listed(count: int) -> list[bytes]:
        return [keys[rng.randrange(len(keys))] for _ in range(count)] if keys else []

    return sample_listed
