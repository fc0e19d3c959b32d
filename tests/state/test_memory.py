"""The keyspace's memory estimate (``Keyspace.used``) and the eviction policies' choices."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

import respkv.commands  # noqa: F401  (registers every command)
from respkv.commands.table import apply_write
from respkv.raft.types import Entry
from respkv.state.entry import encode_command
from respkv.state.eviction import choose
from respkv.state.keyspace import KEY_OVERHEAD, Keyspace, key_cost
from respkv.state.machine import StateMachine
from respkv.state.values import COLLECTION_TYPES
from respkv.storage.store import StateStore

NOW = 1_000_000


def run(db: Keyspace, *args: str | bytes) -> object:
    return apply_write(db, [a if isinstance(a, bytes) else a.encode() for a in args], NOW)


def recounted(db: Keyspace) -> int:
    """The estimate computed from scratch: what the incremental one must equal."""
    total = 0
    for key, value in db.data.items():
        if isinstance(value, COLLECTION_TYPES):
            kept = value.nbytes
            value.recount()
            assert value.nbytes == kept, f"{key!r}: nbytes drifted"
        total += key_cost(key, value)
    return total


WRITES = [
    ("SET", "s", "hello"), ("APPEND", "s", " world"), ("SETRANGE", "s", "20", "x"),
    ("SET", "s", "short"), ("INCR", "n"), ("INCRBY", "n", "1000000"), ("GETDEL", "n"),
    ("SETEX", "t", "100", "v"), ("MSET", "a", "1", "b", "22"),
    ("HSET", "h", "f1", "v1", "f2", "value-two"), ("HSET", "h", "f1", "longer value"),
    ("HINCRBY", "h", "c", "5"), ("HDEL", "h", "f2"), ("HSETNX", "h", "f3", "x"),
    ("RPUSH", "l", "a", "bb", "ccc", "dddd", "eeeee"), ("LPUSH", "l", "z"),
    ("LPOP", "l"), ("RPOP", "l"), ("LSET", "l", "0", "replaced"), ("LTRIM", "l", "1", "-1"),
    ("LINSERT", "l", "BEFORE", "ccc", "ins"), ("LREM", "l", "0", "ccc"),
    ("RPOPLPUSH", "l", "l2"),
    ("SADD", "set", "m1", "m2", "m3", "m4"), ("SREM", "set", "m2"), ("SPOP", "set"),
    ("SMOVE", "set", "set2", "m4"), ("SINTERSTORE", "set3", "set", "set"),
    ("ZADD", "z", "1", "a", "2", "bb", "3", "ccc"), ("ZINCRBY", "z", "5", "a"),
    ("ZREM", "z", "bb"), ("ZPOPMIN", "z"), ("ZADD", "z", "1", "q"),
    ("ZUNIONSTORE", "z2", "1", "z"), ("COPY", "h", "h2"), ("RENAME", "h2", "h3"),
    ("SETBIT", "bits", "100", "1"), ("PFADD", "hll", "a", "b"),
    ("EXPIRE", "s", "100"), ("PERSIST", "s"),
]


def test_every_write_keeps_the_estimate_exact_and_deleting_all_returns_it_to_zero() -> None:
    db = Keyspace()
    assert db.used == 0
    for write in WRITES:
        run(db, *write)
        assert db.used == recounted(db), write
    assert db.used > 0
    run(db, "DEL", *[key for key in list(db.data)])
    assert db.data == {}
    assert db.used == 0


def test_string_cost_is_key_and_value_lengths_plus_overhead() -> None:
    db = Keyspace()
    run(db, "SET", "key", "12345")
    assert db.used == KEY_OVERHEAD + 3 + 5
    run(db, "SET", "key", "1")
    assert db.used == KEY_OVERHEAD + 3 + 1


@pytest.mark.parametrize("fill, drain", [
    (("RPUSH", "k", *[f"item{i}" for i in range(50)]), ("LTRIM", "k", "1", "0")),
    (("SADD", "k", *[f"m{i}" for i in range(50)]), ("SPOP", "k", "50")),
    (("HSET", "k", *[f"f{i // 2}" for i in range(100)]), ("HDEL", "k",
                                                         *[f"f{i}" for i in range(50)])),
    (("ZADD", "k", *[w for i in range(50) for w in (str(i), f"z{i}")]),
     ("ZREMRANGEBYRANK", "k", "0", "-1")),
])
def test_a_collection_emptied_by_its_own_commands_counts_nothing(
        fill: tuple[str, ...], drain: tuple[str, ...]) -> None:
    db = Keyspace()
    run(db, *fill)
    assert db.used == recounted(db) > 0
    run(db, *drain)
    assert db.data == {}
    assert db.used == 0


def test_flushall_and_expired_keys_deleted_in_apply() -> None:
    db = Keyspace()
    for write in WRITES:
        run(db, *write)
    run(db, "FLUSHALL")
    assert db.used == 0
    run(db, "SET", "gone", "v", "PX", "1")
    apply_write(db, [b"GET", b"gone"], NOW + 10)  # not a write: ignored
    apply_write(db, [b"SET", b"other", b"v"], NOW + 10)
    apply_write(db, [b"respkv.reap", b"gone"], NOW + 10)
    assert db.used == KEY_OVERHEAD + len(b"other") + 1


def test_the_estimate_survives_a_snapshot_restore(tmp_path: Path) -> None:
    source = StateMachine(Keyspace(), StateStore(tmp_path / "a.sqlite"), apply_write)
    entries = [Entry(1, i, data=encode_command(NOW, [w.encode() for w in write]))
               for i, write in enumerate(WRITES, 1)]
    source.apply(entries)
    source.persist()
    snap = tmp_path / "snap.sqlite"
    source.snapshot(snap)
    target = StateMachine(Keyspace(), StateStore(tmp_path / "b.sqlite"), apply_write)
    target.restore(snap)
    assert target.keyspace.used == source.keyspace.used == recounted(target.keyspace)
    run(target.keyspace, "DEL", *list(target.keyspace.data))
    assert target.keyspace.used == 0


def test_evict_entry_deletes_the_named_keys_and_counts_them() -> None:
    db = Keyspace()
    run(db, "MSET", "a", "1", "b", "2", "c", "3")
    assert run(db, "respkv.evict", "a", "b", "missing") == 2
    assert list(db.data) == [b"c"]
    assert db.evicted == 2
    assert db.used == KEY_OVERHEAD + 2


# -- the policies' choices ---------------------------------------------------------


def filled(count: int, ttl_every: int = 0) -> Keyspace:
    db = Keyspace()
    db.track_access(True)
    for i in range(count):
        if ttl_every and i % ttl_every == 0:
            run(db, "SET", f"k{i}", "v", "PX", str(1000 + i))
        else:
            run(db, "SET", f"k{i}", "v")
    return db


def test_allkeys_lru_spares_the_recently_read() -> None:
    db = filled(1000)
    hot = [f"k{i}".encode() for i in range(0, 1000, 100)]
    for key in hot:
        db.get_for_read(key, NOW)
    chosen = choose(db, "allkeys-lru", 5, 500 * key_cost(b"k100", b"v"), 1000,
                    random.Random(1))
    assert len(chosen) >= 490 and len(set(chosen)) == len(chosen)
    assert not set(hot) & set(chosen)


def test_allkeys_lru_takes_older_keys_first() -> None:
    db = filled(1000)
    chosen = choose(db, "allkeys-lru", 10, 100 * key_cost(b"k100", b"v"), 1000,
                    random.Random(2))
    # written in order k0..k999: the oldest half should make up most of the choice
    old = sum(1 for key in chosen if int(key[1:]) < 500)
    assert old > 0.8 * len(chosen)


def test_volatile_policies_choose_only_keys_with_a_ttl() -> None:
    db = filled(1000, ttl_every=10)
    for policy in ("volatile-lru", "volatile-random", "volatile-ttl", "volatile-lfu"):
        chosen = choose(db, policy, 5, 30 * key_cost(b"k100", b"v"), 1000, random.Random(3))
        assert chosen and all(key in db.expires for key in chosen), policy
    assert choose(filled(100), "volatile-lru", 5, 10_000, 1000, random.Random(4)) == []


def test_volatile_ttl_takes_the_soonest_to_expire() -> None:
    db = filled(100, ttl_every=1)  # k{i} expires at NOW + 1000 + i
    chosen = choose(db, "volatile-ttl", 5, 10 * key_cost(b"k10", b"v"), 1000,
                    random.Random(5))
    assert sum(db.expires[key] - NOW - 1000 for key in chosen) / len(chosen) < 40


def test_random_and_noeviction_and_the_limit() -> None:
    db = filled(200)
    chosen = choose(db, "allkeys-random", 5, 10 ** 9, 50, random.Random(6))
    assert len(chosen) == 50 and len(set(chosen)) == 50
    assert choose(db, "noeviction", 5, 10 ** 9, 50, random.Random(6)) == []
    everything = choose(db, "allkeys-lru", 5, 10 ** 9, 1000, random.Random(7))
    assert len(everything) > 150  # samples find most keys even as few remain


def test_the_pool_kept_between_calls_spares_hot_keys_one_eviction_at_a_time() -> None:
    db = filled(1000)
    hot = {f"k{i}".encode() for i in range(0, 1000, 100)}
    for key in hot:
        db.get_for_read(key, NOW)
    pool: dict[bytes, int] = {}
    rng = random.Random(8)
    for _ in range(600):  # the way a leader evicts a key for each write over the limit
        (key,) = choose(db, "allkeys-lru", 5, 1, 1, rng, pool)
        assert key not in hot
        db.delete(key)


def test_random_writes_of_every_type_never_drift_the_estimate() -> None:
    rng = random.Random(1)
    names = [f"{{a}}k{i}" for i in range(6)]

    def k() -> str:
        return rng.choice(names)

    def v() -> str:
        return "x" * rng.randrange(20)

    makers = [
        lambda: ("SET", k(), v()), lambda: ("APPEND", k(), v()),
        lambda: ("SETRANGE", k(), str(rng.randrange(10)), v()), lambda: ("GETSET", k(), v()),
        lambda: ("INCR", k()), lambda: ("DEL", k(), k()), lambda: ("RENAME", k(), k()),
        lambda: ("COPY", k(), k(), "REPLACE"), lambda: ("HSET", k(), v(), v()),
        lambda: ("HDEL", k(), v()), lambda: ("HINCRBYFLOAT", k(), v(), "1.5"),
        lambda: ("LPUSH", k(), v(), v()), lambda: ("RPUSH", k(), v()),
        lambda: ("LPOP", k(), "2"), lambda: ("LREM", k(), "1", v()),
        lambda: ("LTRIM", k(), "1", "-2"), lambda: ("LINSERT", k(), "AFTER", v(), v()),
        lambda: ("LSET", k(), "0", v()), lambda: ("LMOVE", k(), k(), "LEFT", "RIGHT"),
        lambda: ("LMPOP", "2", k(), k(), "LEFT", "COUNT", "2"),
        lambda: ("SADD", k(), v(), v()), lambda: ("SREM", k(), v()),
        lambda: ("SPOP", k(), "2"), lambda: ("SMOVE", k(), k(), v()),
        lambda: ("SDIFFSTORE", k(), k(), k()), lambda: ("SUNIONSTORE", k(), k(), k()),
        lambda: ("ZADD", k(), str(rng.randrange(5)), v()),
        lambda: ("ZADD", k(), "INCR", "1", v()), lambda: ("ZREM", k(), v()),
        lambda: ("ZPOPMAX", k(), "2"), lambda: ("ZRANGESTORE", k(), k(), "0", "-1"),
        lambda: ("ZREMRANGEBYSCORE", k(), "0", "2"), lambda: ("ZINTERSTORE", k(), "2", k(), k()),
        lambda: ("SETBIT", k(), str(rng.randrange(64)), "1"),
        lambda: ("BITOP", "OR", k(), k(), k()), lambda: ("PFADD", k(), v()),
        lambda: ("PFMERGE", k(), k()), lambda: ("HSETNX", k(), v(), v()),
        lambda: ("ZUNIONSTORE", k(), "2", k(), k()), lambda: ("GETDEL", k()),
        lambda: ("RPOPLPUSH", k(), k()), lambda: ("ZMPOP", "1", k(), "MIN"),
        lambda: ("LPUSHX", k(), v()), lambda: ("MSETNX", k(), v()),
    ]
    db = Keyspace()
    for _ in range(5000):
        write = rng.choice(makers)()
        run(db, *write)
        assert db.used == recounted(db), write
    run(db, "FLUSHALL")
    assert db.used == 0
