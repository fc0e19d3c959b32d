"""SCAN's bucket index and KEYS' snapshots: kept exact through every kind of change."""

from __future__ import annotations

import random
from pathlib import Path

import hiredis

import respkv.commands  # noqa: F401  (registers every command)
from respkv.commands.keyspace import SlicedKeys, keys_sliced, scan_page
from respkv.commands.table import apply_write
from respkv.protocol.reply import encode, finish
from respkv.raft.types import Entry
from respkv.state.entry import encode_command
from respkv.state.keyspace import BUCKETS, Keyspace, bucket_of
from respkv.state.machine import StateMachine
from respkv.state.values import ListValue
from respkv.state.views import KeyspaceDraft, KeyspaceUnion
from respkv.storage.store import StateStore

NOW = 1_700_000_000_000


def assert_indexed(db: Keyspace) -> None:
    """Every key in its bucket, once; nothing else in any bucket."""
    indexed = [key for bucket in db.buckets if bucket is not None for key in bucket]
    assert sorted(indexed) == sorted(db.data)
    for key in db.data:
        assert key in db.buckets[bucket_of(key)]  # type: ignore[operator]
    assert all((bucket is not None) == bool(db.occupied[i])
               for i, bucket in enumerate(db.buckets))


def scan_all(db: object, count: int, now: int = NOW) -> list[bytes]:
    cursor, seen = 0, []
    while True:
        page, cursor = scan_page(db, cursor, count, now)  # type: ignore[arg-type]
        seen += page
        if cursor == 0:
            return seen


def run(db: Keyspace, *args: bytes, now: int = NOW) -> object:
    return apply_write(db, list(args), now)


def test_index_follows_sets_deletes_renames_expiry_and_flush() -> None:
    db = Keyspace()
    rng = random.Random(1)
    for step in range(3000):
        key = b"k%d" % rng.randrange(500)
        other = b"k%d" % rng.randrange(500)
        pick = rng.randrange(8)
        if pick == 0:
            run(db, b"DEL", key, other)
        elif pick == 1:
            run(db, b"RENAME", key, other)
        elif pick == 2:
            run(db, b"SET", key, b"v", b"PX", b"%d" % rng.randint(1, 50))
        elif pick == 3:
            run(db, b"RPUSH", key, b"x")
        elif pick == 4:
            run(db, b"SET", key, b"v", b"KEEPTTL")
        elif pick == 5:
            run(db, b"GET", key, now=NOW + rng.randint(0, 100))  # reads delete nothing
            run(db, b"EXISTS", key)
            run(db, b"RESPKV.REAP", key, now=NOW + 100)  # expired ones go
        elif pick == 6:
            run(db, b"COPY", key, other, b"REPLACE")
        else:
            run(db, b"SET", key, b"v")
        if step % 1000 == 999:
            run(db, b"FLUSHALL")
        for touched in (key, other):  # every step: the keys it touched
            bucket = db.buckets[bucket_of(touched)] or ()
            assert (touched in bucket) == (touched in db.data), (step, touched)
        if step % 50 == 0:  # the whole index: a pass over every bucket
            assert_indexed(db)
    assert_indexed(db)
    assert sorted(scan_all(db, 7)) == sorted(db.live_keys(NOW))


def test_scan_returns_every_key_present_throughout_whatever_changes_between_pages() -> None:
    db = Keyspace()
    stable = [b"stable:%d" % i for i in range(20_000)]
    for key in stable:
        db.set(key, b"v")
    rng = random.Random(2)
    cursor, seen, step = 0, set(), 0
    while True:
        page, cursor = scan_page(db, cursor, rng.choice([1, 10, 1000]), NOW)
        seen.update(page)
        for _ in range(50):  # writes between pages: adds, deletes, expiring keys
            step += 1
            db.set(b"churn:%d" % step, b"v", NOW + rng.randint(-5, 5))
            db.delete(b"churn:%d" % rng.randint(0, step))
        if cursor == 0:
            break
    assert set(stable) <= seen
    assert all(not key.startswith(b"churn") or (at := db.ttl_ms(key)) is None or at > NOW
               for key in seen if key in db.data)


def test_a_page_costs_its_own_buckets() -> None:
    db = Keyspace()
    for i in range(100_000):
        db.set(b"key:%d" % i, b"v")
    page, cursor = scan_page(db, 0, 10, NOW)
    assert 10 <= len(page) < 30  # whole buckets: ~1.5 keys each at this size
    assert 0 < cursor < BUCKETS and all(bucket_of(k) < cursor for k in page)
    assert len(set(scan_all(db, 1000))) == 100_000
    assert scan_page(db, BUCKETS - 1, 10, NOW)[1] == 0  # past the last bucket: done


def test_expired_keys_are_not_scanned_and_dbsize_does_not_count_them() -> None:
    db = Keyspace()
    db.set(b"gone", b"v", NOW)
    db.set(b"later", b"v", NOW + 1)
    db.set(b"kept", b"v")
    assert sorted(scan_all(db, 10)) == [b"kept", b"later"]
    assert db.live_count(NOW) == 2 and db.live_count(NOW + 1) == 1


def test_a_restored_snapshot_and_a_restart_rebuild_the_index(tmp_path: Path) -> None:
    source = StateMachine(Keyspace(), StateStore(tmp_path / "source.sqlite"), apply_write)
    entries = [Entry(1, i, data=encode_command(NOW, [b"SET", b"k%d" % i, b"v"]))
               for i in range(1, 301)]
    source.apply(entries)
    source.persist()
    snap = tmp_path / "snap.sqlite"
    source.snapshot(snap)
    target = StateMachine(Keyspace(), StateStore(tmp_path / "target.sqlite"), apply_write)
    target.keyspace.set(b"before", b"v")  # replaced by the snapshot
    target.restore(snap)
    assert_indexed(target.keyspace)
    assert sorted(scan_all(target.keyspace, 10)) == sorted(b"k%d" % i for i in range(1, 301))
    target.close()
    source.apply([Entry(1, 301, data=encode_command(NOW, [b"DEL", b"k1", b"k2"]))])
    source.persist()
    source.close()
    # a restart: the keyspace is loaded from the store
    reopened = StateMachine(Keyspace(), StateStore(tmp_path / "source.sqlite"), apply_write)
    assert_indexed(reopened.keyspace)
    assert sorted(scan_all(reopened.keyspace, 10)) == sorted(b"k%d" % i for i in range(3, 301))
    reopened.close()


def test_union_and_draft_scan_like_one_keyspace() -> None:
    parts = [Keyspace(), Keyspace()]
    for i in range(300):
        parts[i % 2].set(b"k%d" % i, b"v")
    union = KeyspaceUnion(parts, lambda key: parts[int(key[1:]) % 2])
    assert sorted(scan_all(union, 7)) == sorted(b"k%d" % i for i in range(300))
    draft = KeyspaceDraft(union.owner, NOW, parts)
    draft.delete(b"k0")
    draft.set(b"new", b"v")
    expected = sorted([b"k%d" % i for i in range(1, 300)] + [b"new"])
    assert sorted(scan_all(draft, 7)) == expected
    assert sorted(read_all(draft.key_readers(NOW))) == expected
    assert sorted(read_all(union.key_readers(NOW))) == sorted(b"k%d" % i for i in range(300))
    assert parts[0].snapshots == [] == parts[1].snapshots  # closed once read


def read_all(readers: list) -> list[bytes]:  # type: ignore[type-arg]
    found = []
    for reader in readers:
        while chunk := reader.read(50):
            found += chunk
        reader.close()
    return found


def test_a_sliced_reply_finished_at_once_is_the_same_bytes() -> None:
    db = Keyspace()
    for i in range(20_000):
        db.set(b"key:%d" % i, b"v")
    reply = keys_sliced(db, [b"KEYS", b"key:1*"], NOW)
    assert isinstance(reply, SlicedKeys)
    expected = {k for k in db.data if k.startswith(b"key:1")}
    wire = finish(reply, True)
    assert set(parse(wire)) == expected and len(parse(wire)) == len(expected)
    again = keys_sliced(db, [b"KEYS", b"key:1*"], NOW)
    assert encode(again, False) == wire  # the same order each time: bucket order


def parse(wire: bytes) -> list[bytes]:
    reader = hiredis.Reader()
    reader.feed(wire)
    reply = reader.gets()
    assert isinstance(reply, list) and reader.gets() is False
    return reply


def test_flushall_and_a_snapshot_install_during_a_sliced_keys_change_nothing_it_lists() -> None:
    for change in ("flush", "load"):
        db = Keyspace()
        for i in range(20_000):
            db.set(b"key:%d" % i, b"v")
        steps = keys_sliced(db, [b"KEYS", b"*"], NOW).steps(False)  # type: ignore[union-attr]
        next(steps)
        if change == "flush":
            db.clear()
        else:
            db.load([(b"other", (b"v", None))])
        assert db.snapshots == []  # the rest was kept aside: writes need not tell it
        db.set(b"key:new", b"v")
        assert set(parse(finish_steps(steps))) == {b"key:%d" % i for i in range(20_000)}


def finish_steps(steps) -> bytes:  # type: ignore[no-untyped-def]
    while True:
        try:
            next(steps)
        except StopIteration as stop:
            return stop.value


def test_sliced_keys_is_one_snapshot_whatever_changes_between_slices() -> None:
    db = Keyspace()
    for i in range(30_000):
        db.set(b"key:%d" % i, b"v", NOW if i % 1000 == 0 else None)  # 30 already expired
    db.set(b"list", ListValue([b"x"]))
    reply = keys_sliced(db, [b"KEYS", b"key:*"], NOW)
    assert isinstance(reply, SlicedKeys)
    expected = [key for key in db.live_keys(NOW) if key.startswith(b"key:")]
    steps = reply.steps(False)
    for done in range(10):  # some slices, then writes, then the rest
        next(steps)
        db.delete(b"key:%d" % (done + 1))
        db.set(b"key:new%d" % done, b"v")
        db.set_expire(b"key:%d" % (100 + done), NOW - 1)
    try:
        while True:
            next(steps)
    except StopIteration as stop:
        wire = stop.value
    listed = parse(wire)
    assert wire == encode(listed, False) == encode(listed, True)  # RESP2 and RESP3 alike
    assert len(listed) == len(expected) == 30_000 - 30
    assert set(listed) == set(expected)
    assert db.snapshots == []


def test_small_keys_answers_at_once_as_before() -> None:
    db = Keyspace()
    for key in (b"a", b"b", b"", b"ab"):
        db.set(key, b"v")
    assert keys_sliced(db, [b"KEYS", b"*"], NOW) == [b"a", b"b", b"", b"ab"]
    assert keys_sliced(db, [b"KEYS", b"a*"], NOW) == [b"a", b"ab"]
