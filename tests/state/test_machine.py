"""The state machine's snapshot seam: a snapshot is checked whole before it is used."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

import respkv.commands  # noqa: F401  (registers every command)
from respkv.commands.table import apply_write
from respkv.raft.types import Entry
from respkv.state.codec import encode_value
from respkv.state.entry import encode_command
from respkv.state.keyspace import Keyspace
from respkv.state.machine import BadSnapshot, StateMachine
from respkv.storage.store import TABLE, StateStore, encode_key


def machine(path: Path) -> StateMachine:
    return StateMachine(Keyspace(), StateStore(path), apply_write)


def snapshot_of(tmp_path: Path, count: int = 50) -> tuple[Path, StateMachine]:
    source = machine(tmp_path / "source.sqlite")
    entries = [Entry(1, i, data=encode_command(1000, [b"SET", b"k%d" % i, b"v%d" % i]))
               for i in range(1, count + 1)]
    assert source.apply(entries) == ["OK"] * count
    source.persist()
    snap = tmp_path / "snap.sqlite"
    assert source.snapshot(snap) == (count, 1)
    return snap, source


def test_a_good_snapshot_passes_and_restores(tmp_path: Path) -> None:
    snap, source = snapshot_of(tmp_path)
    assert StateMachine.check_snapshot(snap) == (50, 1)
    target = machine(tmp_path / "target.sqlite")
    target.restore(snap)
    assert target.applied_index == 50
    assert target.keyspace.data == source.keyspace.data
    source.close()
    target.close()


def corrupt_one_value(path: Path) -> None:
    conn = sqlite3.connect(path)
    try:
        conn.execute(f'UPDATE "{TABLE}" SET value = ? WHERE key = ?',
                     (encode_value(b"v7")[:-1] + b"\x00", encode_key(b"k7")))
        conn.commit()
    finally:
        conn.close()


def test_a_snapshot_with_one_bad_record_is_refused(tmp_path: Path) -> None:
    snap, source = snapshot_of(tmp_path)
    corrupt_one_value(snap)
    with pytest.raises(BadSnapshot, match="checksum"):
        StateMachine.check_snapshot(snap)
    source.close()


def test_files_that_are_not_snapshots_are_refused(tmp_path: Path) -> None:
    garbage = tmp_path / "garbage.sqlite"
    garbage.write_bytes(b"\x80\x05" + b"x" * 5000)
    with pytest.raises(BadSnapshot):
        StateMachine.check_snapshot(garbage)
    with pytest.raises(BadSnapshot):
        StateMachine.check_snapshot(tmp_path / "missing.sqlite")
