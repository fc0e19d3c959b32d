"""Collections through the state store: one member changed is one row written, and
what is written reads back as the same keyspace (member order included), after any
mix of changes, replacements and deletions, in the store and in a snapshot."""

from __future__ import annotations

import random
import sqlite3
from pathlib import Path

import pytest

import respkv.commands  # noqa: F401  (registers every command)
from respkv.commands.table import apply_write
from respkv.state.keyspace import Keyspace
from respkv.state.machine import BadSnapshot, StateMachine
from respkv.state.values import Collection, HashValue, ListValue, SetValue, ZSetValue
from respkv.storage.store import TABLE, StateStore


def machine(path: Path) -> StateMachine:
    return StateMachine(Keyspace(), StateStore(path), apply_write)


def reopened(path: Path) -> Keyspace:
    again = machine(path)
    try:
        return again.keyspace
    finally:
        again.close()


def assert_same(ours: Keyspace, theirs: Keyspace) -> None:
    assert theirs.data == ours.data
    assert theirs.expires == ours.expires
    for key, value in ours.data.items():
        if isinstance(value, SetValue):
            assert theirs.data[key].members == value.members  # SPOP picks by this order
        if isinstance(value, ListValue):
            assert list(theirs.data[key].items) == list(value.items)


def mutate(db: Keyspace, rng: random.Random) -> None:
    """One random change to a random key, the way a command makes it."""
    key = b"k%d" % rng.randrange(6)
    value = db.data.get(key)
    member = b"m%d" % rng.randrange(20)
    pick = rng.random()
    if value is None or pick < 0.05:
        kind = rng.choice([HashValue, ListValue, SetValue, ZSetValue, bytes])
        fresh: object = b"str" if kind is bytes else kind()
        if isinstance(fresh, HashValue):
            fresh.put(member, b"v")
        elif isinstance(fresh, ListValue):
            fresh.push_right(member)
        elif isinstance(fresh, SetValue):
            fresh.add(member)
        elif isinstance(fresh, ZSetValue):
            fresh.add(member, 1.5)
        db.set(key, fresh, rng.choice([None, 10**13]))
        return
    if pick < 0.1:
        db.delete(key)
        return
    if isinstance(value, HashValue):
        if rng.random() < 0.6:
            value.put(member, b"v%d" % rng.randrange(5))
        else:
            value.remove(member)
    elif isinstance(value, ListValue):
        action = rng.randrange(6)
        if action == 0:
            value.push_left(member)
        elif action == 1:
            value.push_right(member)
        elif action == 2:
            value.pop_left()
        elif action == 3:
            value.pop_right()
        elif action == 4:
            value.set_at(rng.randrange(len(value)), member)
        else:
            value.replace(rng.sample([*value.items, member], len(value)))
    elif isinstance(value, SetValue):
        if rng.random() < 0.6:
            value.add(member)
        else:
            value.remove(rng.choice(value.members))
    elif isinstance(value, ZSetValue):
        if rng.random() < 0.6:
            value.add(member, rng.choice([1.0, -0.0, 2.5, float("inf")]))
        else:
            value.remove(member)
    if isinstance(value, Collection) and len(value) == 0:
        db.delete(key)
    else:
        db.touch(key)


@pytest.mark.parametrize("seed", range(5))
def test_random_changes_read_back(tmp_path: Path, seed: int) -> None:
    rng = random.Random(seed)
    path = tmp_path / "store.sqlite"
    live = machine(path)
    for _round in range(40):
        for _ in range(rng.randrange(1, 15)):
            mutate(live.keyspace, rng)
        live.applied_index += 1
        live.persist()
        live.flush()
        assert_same(live.keyspace, reopened(path))
    live.close()


class Recording(StateStore):
    """A store that remembers the size of each batch it is given."""

    batches: list[tuple[int, int, int]]

    def write_batch(self, upserts, deletes, applied_index, applied_term, items=None,
                    cleared=(), system=None) -> None:
        self.batches.append((len(upserts), len(items or {}), len(list(cleared))))
        super().write_batch(upserts, deletes, applied_index, applied_term, items, cleared,
                            system)


@pytest.mark.parametrize("kind", [HashValue, ListValue, SetValue, ZSetValue])
def test_one_member_changed_is_one_row_written(tmp_path: Path, kind: type) -> None:
    store = Recording(tmp_path / "store.sqlite")
    store.batches = []
    live = StateMachine(Keyspace(), store, apply_write)
    big = kind()
    for i in range(20_000):
        member = b"member:%d" % i
        if isinstance(big, HashValue):
            big.put(member, b"v")
        elif isinstance(big, ListValue):
            big.push_right(member)
        elif isinstance(big, SetValue):
            big.add(member)
        else:
            big.add(member, float(i))
    live.keyspace.set(b"big", big)
    live.applied_index = 1
    live.persist()
    assert store.batches[-1] == (1, 20_000, 1)  # written whole, once
    if isinstance(big, HashValue):
        big.put(b"member:7", b"changed")
    elif isinstance(big, ListValue):
        big.push_left(b"new")
    elif isinstance(big, SetValue):
        big.add(b"new")
    else:
        big.add(b"member:7", -1.0)
    live.keyspace.touch(b"big")
    live.applied_index = 2
    live.persist()
    assert store.batches[-1] == (1, 1, 0)  # the header and one item row
    live.flush()
    assert_same(live.keyspace, reopened(tmp_path / "store.sqlite"))
    live.close()


def test_a_replaced_collection_leaves_no_rows(tmp_path: Path) -> None:
    path = tmp_path / "store.sqlite"
    live = machine(path)
    live.keyspace.set(b"h", HashValue({b"a": b"1", b"b": b"2"}))
    live.keyspace.set(b"l", ListValue([b"x", b"y"]))
    live.persist()
    live.keyspace.set(b"h", b"now a string")
    live.keyspace.delete(b"l")
    live.persist()
    live.flush()
    conn = sqlite3.connect(path)
    try:
        items = conn.execute(f'SELECT count(*) FROM "{TABLE}" WHERE key LIKE ?',
                             ("m%",)).fetchone()[0]
    finally:
        conn.close()
    assert items == 0
    assert reopened(path).data == {b"h": b"now a string"}
    live.close()


def test_snapshots_carry_collections_and_refuse_a_damaged_member(tmp_path: Path) -> None:
    source = machine(tmp_path / "source.sqlite")
    source.keyspace.set(b"z", ZSetValue({b"a": 1.0, b"b": 2.0}))
    source.keyspace.set(b"s", SetValue([b"x", b"y", b"z"]), 10**13)
    source.applied_index, source.applied_term = 5, 1
    source.persist()
    snap = tmp_path / "snap.sqlite"
    assert source.snapshot(snap) == (5, 1)
    assert StateMachine.check_snapshot(snap) == (5, 1)
    damaged = tmp_path / "damaged.sqlite"
    damaged.write_bytes(snap.read_bytes())
    target = machine(tmp_path / "target.sqlite")
    target.restore(snap)
    assert_same(source.keyspace, target.keyspace)

    conn = sqlite3.connect(damaged)
    try:
        key, value = conn.execute(f'SELECT key, value FROM "{TABLE}" WHERE key LIKE ?',
                                  ("m%",)).fetchone()
        conn.execute(f'UPDATE "{TABLE}" SET value = ? WHERE key = ?',
                     (bytes([value[0] ^ 1]) + value[1:], key))
        conn.commit()
    finally:
        conn.close()
    with pytest.raises(BadSnapshot, match="item record"):
        StateMachine.check_snapshot(damaged)
    source.close()
    target.close()
