"""Tests of the state machine's durable store and the snapshot file streaming helpers."""

from __future__ import annotations

import asyncio
import os
import sqlite3
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from respkv.storage.files import ChunkWriter, iter_chunks
from respkv.storage.store import (
    APPLIED_KEY,
    FORMAT,
    FORMAT_KEY,
    TABLE,
    StateStore,
    StoreError,
    StoreFormatError,
    decode_key,
    encode_key,
    read_file,
    read_system,
    scan_file,
)

NASTY_KEYS = [b"", b"\x00", b"a\x00b", b"\r\n", b"\n", b"\xff\xfe", b"k", b"@applied", b"\x00" * 5]


def reopened(path: Path) -> tuple[int, int, dict[bytes, bytes]]:
    with StateStore(path) as store:
        return store.load()


def test_new_store_is_empty(tmp_path: Path) -> None:
    path = tmp_path / "data" / "g1.sqlite"  # the parent directory is created
    with StateStore(path) as store:
        assert store.load() == (0, 0, {})
    assert reopened(path) == (0, 0, {})


def test_round_trip_with_binary_keys(tmp_path: Path) -> None:
    path = tmp_path / "s.sqlite"
    values: dict[bytes, bytes] = {k: b"v" + k for k in NASTY_KEYS}
    values[bytes(range(256))] = bytes(range(256))
    with StateStore(path) as store:
        store.write_batch(values, [], 10, 2)
        store.write_batch({b"later": b"x"}, [b"\r\n", b"absent"], 11, 3)
        index, term, data = store.load()
    expected = {**values, b"later": b"x"}
    del expected[b"\r\n"]
    assert (index, term, data) == (11, 3, expected)
    assert reopened(path) == (11, 3, expected)


@given(st.lists(st.binary(max_size=40), max_size=20))
@settings(max_examples=50, deadline=None)
def test_key_encoding_is_lossless_and_never_reserved(keys: list[bytes]) -> None:
    for key in keys:
        assert decode_key(encode_key(key)) == key
        assert encode_key(key) != APPLIED_KEY


def test_a_key_in_both_upserts_and_deletes_ends_up_deleted(tmp_path: Path) -> None:
    with StateStore(tmp_path / "s.sqlite") as store:
        store.write_batch({b"a": b"1", b"b": b"2"}, [b"a"], 1, 1)
        assert store.load() == (1, 1, {b"b": b"2"})


def test_batches_of_every_chunk_shape(tmp_path: Path) -> None:
    path = tmp_path / "s.sqlite"
    expected: dict[bytes, bytes] = {}
    with StateStore(path) as store:
        for n, size in enumerate([1, 2, 3, 1023, 1024, 1025, 3000]):
            batch = {b"%d:%d" % (n, i): b"%d" % i for i in range(size)}
            gone = [k for k in expected if k.endswith(b"7")]
            for k in gone:
                del expected[k]
            expected.update(batch)
            store.write_batch(batch, gone, n + 1, 1)
        assert store.load() == (7, 1, expected)
    assert reopened(path) == (7, 1, expected)


def test_applied_index_is_atomic_with_data(tmp_path: Path) -> None:
    """After write_batch + flush, a reload sees each batch's data with exactly its index."""
    path = tmp_path / "s.sqlite"
    with StateStore(path) as store:
        for i in range(1, 51):
            store.write_batch({b"n": b"%d" % i, b"k%d" % i: b"x"}, [b"k%d" % (i - 1)], i, 1)
            if i % 10 == 0:
                store.flush()
                assert store.backlog() == 0
                index, _, data = reopened_concurrently(path)
                assert data[b"n"] == b"%d" % index and set(data) == {b"n", b"k%d" % index}


def reopened_concurrently(path: Path) -> tuple[int, int, dict[bytes, bytes]]:
    # A second reader of the same file (as a restarted process would see it).
    return read_file(path)


def test_failed_statement_applies_nothing_and_poisons_the_store(tmp_path: Path) -> None:
    path = tmp_path / "s.sqlite"
    store = StateStore(path)
    store.write_batch({b"a": b"1"}, [], 1, 1)
    store.flush()
    # Sabotage one staging statement, as a disk-full error would: the guarded apply must
    # then change nothing, and the applied index must not move.
    store._db.conn.execute("DROP TABLE stage")
    store._db.conn.execute(
        "CREATE TEMP TABLE stage (op INTEGER NOT NULL, key TEXT NOT NULL, value BLOB,"
        " CHECK (key != 'k62'))"
    )
    store.write_batch({b"a": b"2", b"b": b"2"}, [b"a"], 2, 1)
    with pytest.raises(StoreError):
        store.flush()
    with pytest.raises(StoreError):
        store.write_batch({b"c": b"3"}, [], 3, 1)
    store.close()
    assert reopened(path) == (1, 1, {b"a": b"1"})


def test_values_are_stored_as_given_beside_the_format_and_applied_index(
        tmp_path: Path) -> None:
    path = tmp_path / "s.sqlite"
    with StateStore(path) as store:
        store.write_batch({b"\x00key": b"\x01\x02"}, [], 5, 1)
    conn = sqlite3.connect(path)
    try:
        rows = dict(conn.execute(f'SELECT key, value FROM "{TABLE}"'))
    finally:
        conn.close()
    assert rows == {encode_key(b"\x00key"): b"\x01\x02", FORMAT_KEY: FORMAT,
                    APPLIED_KEY: (5).to_bytes(8, "little") + (1).to_bytes(8, "little")}


def _old_store(path: Path) -> None:
    """A store file as an older respkv wrote it: no format record, values in Python's
    own serialization (bytes that start with its protocol marker)."""
    conn = sqlite3.connect(path)
    try:
        conn.execute(f'CREATE TABLE "{TABLE}" (key TEXT PRIMARY KEY, value BLOB)')
        conn.execute(f'INSERT INTO "{TABLE}" VALUES (?, ?)', (APPLIED_KEY, b"\x80\x05K\x05."))
        conn.execute(f'INSERT INTO "{TABLE}" VALUES (?, ?)', (encode_key(b"k"), b"\x80\x05."))
        conn.commit()
    finally:
        conn.close()


def test_a_store_of_an_older_layout_is_refused_with_the_way_out(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite"
    _old_store(path)
    with pytest.raises(StoreFormatError, match=r"older respkv.*empty --dir and let it join"):
        StateStore(path)


def test_files_that_are_not_stores_are_refused(tmp_path: Path) -> None:
    garbage = tmp_path / "garbage.sqlite"
    garbage.write_bytes(b"not a database at all" * 100)
    with pytest.raises(StoreFormatError):
        read_file(garbage)
    with pytest.raises(StoreFormatError):
        StateStore(garbage)
    other = tmp_path / "other.sqlite"
    conn = sqlite3.connect(other)
    conn.execute("CREATE TABLE t (x)")
    conn.commit()
    conn.close()
    with pytest.raises(StoreFormatError):
        read_file(other)


def test_restore_from_checks_the_file_before_replacing_anything(tmp_path: Path) -> None:
    path, old = tmp_path / "s.sqlite", tmp_path / "old.sqlite"
    _old_store(old)
    with StateStore(path) as store:
        store.write_batch({b"a": b"1"}, [], 3, 1)
        with pytest.raises(StoreFormatError):
            store.restore_from(old)
        assert store.load() == (3, 1, {b"a": b"1"})


def test_a_store_created_but_never_written_starts_fresh(tmp_path: Path) -> None:
    path = tmp_path / "s.sqlite"
    path.write_bytes(b"")  # a crash before the first commit
    with StateStore(path) as store:
        assert store.load() == (0, 0, {})


def test_clear(tmp_path: Path) -> None:
    path = tmp_path / "s.sqlite"
    with StateStore(path) as store:
        store.write_batch({b"a": b"1"}, [], 3, 1)
        store.clear()
        assert store.load() == (0, 0, {})
        store.write_batch({b"b": b"1"}, [], 4, 1)
    assert reopened(path) == (4, 1, {b"b": b"1"})


def test_snapshot_to_and_restore_from_round_trip(tmp_path: Path) -> None:
    a, b = tmp_path / "a.sqlite", tmp_path / "b.sqlite"
    snap = tmp_path / "snap" / "s1.sqlite"
    snap.parent.mkdir()
    data = {b"k%d\x00" % i: b"v%d" % i for i in range(2000)}
    with StateStore(a) as source:
        source.write_batch(data, [], 100, 7)
        assert source.snapshot_to(snap) == (100, 7)
        source.write_batch({b"after": b"1"}, [], 101, 7)  # not in the snapshot
    assert not snap.with_name(snap.name + ".tmp").exists()
    # stream it, as the transport would, into the follower's directory
    with ChunkWriter(tmp_path / "incoming.sqlite.part") as writer:
        for chunk in iter_chunks(snap, chunk_size=4096):
            writer.write(chunk)
    received = tmp_path / "incoming.sqlite"
    assert received.read_bytes() == snap.read_bytes()
    with StateStore(b) as follower:
        follower.write_batch({b"old": b"1"}, [], 50, 3)
        follower.restore_from(received)
        assert follower.load() == (100, 7, data)
        follower.write_batch({b"new": b"1"}, [], 101, 7)
    assert not received.exists()
    assert reopened(b) == (101, 7, {**data, b"new": b"1"})


def test_snapshot_in_a_worker_thread_beside_writes(tmp_path: Path) -> None:
    path, snap = tmp_path / "s.sqlite", tmp_path / "snap.sqlite"

    async def main() -> tuple[int, int]:
        with StateStore(path) as store:
            store.write_batch({b"x%d" % i: b"x" for i in range(5000)}, [], 1, 1)
            task = asyncio.create_task(asyncio.to_thread(store.snapshot_to, snap))
            for i in range(2, 50):
                store.write_batch({b"n": b"%d" % i}, [], i, 1)
                await asyncio.sleep(0)
            return await task

    index, term = asyncio.run(main())
    with StateStore(tmp_path / "r.sqlite") as restored:
        restored.restore_from(snap)
        got_index, got_term, data = restored.load()
    # whatever the snapshot caught, its index and data agree
    assert (got_index, got_term) == (index, term)
    assert int(data.get(b"n", b"1")) == index and len([k for k in data if k != b"n"]) == 5000


def test_closed_store_refuses_use(tmp_path: Path) -> None:
    store = StateStore(tmp_path / "s.sqlite")
    store.close()
    store.close()
    with pytest.raises(StoreError):
        store.write_batch({}, [], 1, 1)


def test_iter_chunks_and_chunk_writer(tmp_path: Path) -> None:
    src = tmp_path / "src.bin"
    payload = os.urandom(10_000)
    src.write_bytes(payload)
    chunks = list(iter_chunks(src, chunk_size=3000))
    assert [len(c) for c in chunks] == [3000, 3000, 3000, 1000]
    assert list(iter_chunks(tmp_path / "src.bin", chunk_size=20_000)) == [payload]
    empty = tmp_path / "empty"
    empty.write_bytes(b"")
    assert list(iter_chunks(empty)) == []

    writer = ChunkWriter(tmp_path / "out.part", tmp_path / "final.bin")
    for chunk in chunks:
        writer.write(chunk)
    assert writer.finish() == tmp_path / "final.bin"
    assert (tmp_path / "final.bin").read_bytes() == payload
    assert not (tmp_path / "out.part").exists()
    with pytest.raises(ValueError):
        writer.write(b"x")

    aborted = ChunkWriter(tmp_path / "other.bin.part")
    aborted.write(b"partial")
    aborted.abort()
    assert not (tmp_path / "other.bin.part").exists() and not (tmp_path / "other.bin").exists()

    with pytest.raises(RuntimeError), ChunkWriter(tmp_path / "third.bin.part") as w:
        w.write(b"x")
        raise RuntimeError("transfer broke")
    assert not (tmp_path / "third.bin.part").exists()


def items_of(path: Path) -> dict[tuple[bytes, bytes], bytes]:
    _, _, records = scan_file(path)
    return {(key, item): value for key, item, value in records if item is not None}


def test_item_records_are_written_deleted_and_cleared_by_key(tmp_path: Path) -> None:
    path = tmp_path / "s.sqlite"
    keys = [b"ab", b"abc", b"a", b"", b"\x00", b"a."]  # prefixes of one another
    with StateStore(path) as store:
        rows = {(key, item): b"v" + key + item for key in keys
                for item in (b"", b"x", b"\x00", b".")}
        store.write_batch({key: b"h" for key in keys}, [], 1, 1, items=dict(rows))
        store.flush()
        assert items_of(path) == rows
        store.write_batch({}, [b"ab"], 2, 1, items={(b"abc", b"x"): None}, cleared=[b"ab"])
        store.flush()
        expected = {row: value for row, value in rows.items()
                    if row[0] != b"ab" and row != (b"abc", b"x")}
        assert items_of(path) == expected
        # cleared first, then the new items: a collection written again from scratch
        store.write_batch({}, [], 3, 1, items={(b"a", b"new"): b"n"}, cleared=[b"a"])
        store.flush()
    expected = {row: value for row, value in expected.items() if row[0] != b"a"}
    expected[b"a", b"new"] = b"n"
    assert items_of(path) == expected
    assert reopened(path)[2] == {key: b"h" for key in keys if key != b"ab"}


def test_system_records_are_kept_beside_the_data(tmp_path: Path) -> None:
    path = tmp_path / "store.sqlite"
    with StateStore(path) as store:
        store.write_batch({b"k": b"v"}, [], 3, 1, system={"acl": b"user a off"})
        assert store.system() == {"acl": b"user a off"}
        store.write_batch({}, [], 4, 1, system={"acl": b""})
        store.flush()
        assert store.system() == {"acl": b""}
        assert store.load() == (4, 1, {b"k": b"v"})  # not a key
    copy = tmp_path / "copy.sqlite"
    with StateStore(path) as store:
        store.snapshot_to(copy)
    assert read_system(copy) == {"acl": b""}
