"""Tests of the Raft WAL: round trips, crashes, torn tails, corruption, compaction."""

from __future__ import annotations

import asyncio
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from respkv.raft.types import Entry, EntryKind, HardState
from respkv.storage.wal import WAL, CorruptLogError


def entries(first: int, last: int, term: int = 1, tag: bytes = b"") -> list[Entry]:
    kinds = list(EntryKind)
    return [
        Entry(term, i, kinds[i % len(kinds)], tag + b"cmd-%d\r\n\x00" % i)
        for i in range(first, last + 1)
    ]


def segments(d: Path) -> list[Path]:
    return sorted(d.glob("*.wal"))


def crash(wal: WAL) -> None:
    """Drop the WAL as a killed process would: close the files, write nothing pending."""
    for seg in wal._segments:
        if seg.fd is not None:
            os.close(seg.fd)
            seg.fd = None
    wal._closed = True


def reload(d: Path, **kw: int) -> tuple[WAL, list[Entry]]:
    wal = WAL.open(d, **kw)
    return wal, wal.load().entries


def test_empty_directory_is_created(tmp_path: Path) -> None:
    d = tmp_path / "a" / "wal"
    with WAL.open(d) as wal:
        state = wal.load()
        assert (state.hard_state, state.snapshot_index, state.entries) == (HardState(), 0, [])
        assert wal.last_index() == 0
    assert d.is_dir()


def test_round_trip_and_reopen(tmp_path: Path) -> None:
    wal = WAL.open(tmp_path)
    wal.load()
    wal.append(entries(1, 100))
    wal.set_hard_state(HardState(term=3, vote="n2", commit=40))
    wal.sync()
    wal.append(entries(101, 120))
    wal.close()  # close syncs what is pending
    wal, got = reload(tmp_path)
    assert got == entries(1, 120)
    assert wal.load().hard_state == HardState(term=3, vote="n2", commit=40)
    assert wal.last_index() == 120 and wal.last_term() == 1
    wal.append(entries(121, 121, term=4))
    wal.close()
    assert reload(tmp_path)[1] == entries(1, 120) + entries(121, 121, term=4)


def test_load_again_rereads_disk(tmp_path: Path) -> None:
    with WAL.open(tmp_path) as wal:
        assert wal.load().entries == []
        wal.append(entries(1, 5))
        assert wal.load().entries == entries(1, 5)


def test_unsynced_appends_are_lost_in_a_crash(tmp_path: Path) -> None:
    wal = WAL.open(tmp_path)
    wal.append(entries(1, 10))
    wal.sync()
    wal.append(entries(11, 20))
    wal.set_hard_state(HardState(term=9))
    crash(wal)
    wal, got = reload(tmp_path)
    assert got == entries(1, 10)
    assert wal.load().hard_state == HardState()


def test_conflicting_append_truncates_across_crash(tmp_path: Path) -> None:
    wal = WAL.open(tmp_path)
    wal.append(entries(1, 10, term=1))
    wal.sync()
    wal.append(entries(6, 8, term=2))  # a new leader overwrites 6..10
    assert wal.last_index() == 8 and wal.last_term() == 2
    wal.sync()
    crash(wal)
    wal, got = reload(tmp_path)
    assert got == entries(1, 5, term=1) + entries(6, 8, term=2)
    wal.append(entries(9, 9, term=2))
    wal.append(entries(1, 2, term=5))  # truncate back to the very start
    wal.close()
    assert reload(tmp_path)[1] == entries(1, 2, term=5)


def test_append_rejects_gaps_and_covered_indexes(tmp_path: Path) -> None:
    with WAL.open(tmp_path) as wal:
        with pytest.raises(ValueError):
            wal.append(entries(2, 3))
        wal.append(entries(1, 10))
        with pytest.raises(ValueError):
            wal.append([Entry(1, 11), Entry(1, 13)])
        assert wal.last_index() == 10
        wal.compact(5, 1)
        with pytest.raises(ValueError):
            wal.append(entries(5, 6))
        wal.append(entries(6, 6, term=2))
        assert wal.load().entries == entries(6, 6, term=2)


@pytest.mark.parametrize(
    "hs",
    [HardState(), HardState(7, None, 3), HardState(7, "", 3), HardState(2**40, "nœud-é", 2**50)],
)
def test_hard_state_persists(tmp_path: Path, hs: HardState) -> None:
    with WAL.open(tmp_path) as wal:
        wal.set_hard_state(HardState(1, "x", 1))
        wal.set_hard_state(hs)
    with WAL.open(tmp_path) as wal:
        assert wal.load().hard_state == hs
        assert wal.hard_state() == hs


def _last_record_span(tmp_path: Path) -> tuple[Path, int, int]:
    """A log of 20 entries whose last record is entry 20; returns (file, start, end)."""
    with WAL.open(tmp_path) as wal:
        wal.append(entries(1, 19))
        wal.sync()
        seg = segments(tmp_path)[-1]
        start = seg.stat().st_size
        wal.append(entries(20, 20, tag=b"last"))
    return seg, start, seg.stat().st_size


def test_torn_tail_at_every_offset_keeps_earlier_records(tmp_path: Path) -> None:
    src = tmp_path / "src"
    seg, start, end = _last_record_span(src)
    for cut in range(start, end):
        d = tmp_path / f"cut{cut}"
        shutil.copytree(src, d)
        os.truncate(d / seg.name, cut)
        wal, got = reload(d)
        assert got == entries(1, 19), cut
        assert (d / seg.name).stat().st_size == start  # the torn bytes are gone
        wal.append(entries(20, 21, term=2))  # and appends land after the good records
        wal.close()
        assert reload(d)[1] == entries(1, 19) + entries(20, 21, term=2)


def test_zeroed_tail_is_cut(tmp_path: Path) -> None:
    seg, _, end = _last_record_span(tmp_path)
    with seg.open("ab") as f:
        f.write(b"\x00" * 4096)  # a file system extended the file but lost the data
    wal, got = reload(tmp_path)
    wal.close()
    assert got == entries(1, 19) + entries(20, 20, tag=b"last")
    assert seg.stat().st_size == end


def test_corrupt_last_record_is_dropped(tmp_path: Path) -> None:
    seg, start, end = _last_record_span(tmp_path)
    data = bytearray(seg.read_bytes())
    data[end - 3] ^= 0x40
    seg.write_bytes(bytes(data))
    wal, got = reload(tmp_path)
    wal.close()
    assert got == entries(1, 19)
    assert seg.stat().st_size == start


def test_corrupt_byte_in_the_middle_raises_with_file_and_offset(tmp_path: Path) -> None:
    with WAL.open(tmp_path) as wal:
        wal.append(entries(1, 10))
        wal.sync()
        seg = segments(tmp_path)[-1]
        start = seg.stat().st_size
        wal.append(entries(11, 11))
        wal.sync()
        wal.append(entries(12, 30))
    data = bytearray(seg.read_bytes())
    for pos in (start, start + 5, start + 20):  # crc, length, payload of entry 11
        broken = bytearray(data)
        broken[pos] ^= 0x01
        seg.write_bytes(bytes(broken))
        with pytest.raises(CorruptLogError) as info:
            WAL.open(tmp_path)
        assert info.value.path == seg and info.value.offset == start
        assert str(seg) in str(info.value) and f"offset {start}" in str(info.value)
    seg.write_bytes(bytes(data))
    assert reload(tmp_path)[1] == entries(1, 30)


def test_corruption_in_a_non_last_segment_raises(tmp_path: Path) -> None:
    with WAL.open(tmp_path, segment_bytes=1000) as wal:
        for i in range(1, 60):
            wal.append(entries(i, i))
            wal.sync()
    segs = segments(tmp_path)
    assert len(segs) >= 3
    first = segs[0]
    data = bytearray(first.read_bytes())
    data[-2] ^= 0xFF  # its LAST record: not a torn tail, since later segments exist
    first.write_bytes(bytes(data))
    with pytest.raises(CorruptLogError) as info:
        WAL.open(tmp_path, segment_bytes=1000)
    assert info.value.path == first


def test_missing_middle_segment_raises(tmp_path: Path) -> None:
    with WAL.open(tmp_path, segment_bytes=500) as wal:
        wal.append(entries(1, 1))
        for i in range(2, 40):
            wal.append(entries(i, i))
            wal.sync()
    segments(tmp_path)[1].unlink()
    with pytest.raises(CorruptLogError):
        WAL.open(tmp_path, segment_bytes=500)


def test_segments_roll_and_compaction_deletes_covered_ones(tmp_path: Path) -> None:
    wal = WAL.open(tmp_path, segment_bytes=1000)
    for i in range(1, 201, 5):
        wal.append(entries(i, i + 4))
        wal.sync()
    wal.set_hard_state(HardState(5, "n1", 150))
    wal.sync()
    before = segments(tmp_path)
    assert len(before) >= 5
    assert all(p.stat().st_size <= 1000 for p in before[:-1])
    wal.compact(120, 1)
    after = segments(tmp_path)
    assert after[0] != before[0] and before[-1] in after  # the newest is never deleted
    assert len(after) < len(before)
    wal.close()
    wal, got = reload(tmp_path, segment_bytes=1000)
    state = wal.load()
    assert (state.snapshot_index, state.snapshot_term) == (120, 1)
    assert state.hard_state == HardState(5, "n1", 150)
    assert got == entries(121, 200)
    # everything covered: all but the newest segment or two (the marker may roll) go
    wal.compact(200, 1)
    wal.close()
    assert len(segments(tmp_path)) <= 2
    wal, got = reload(tmp_path, segment_bytes=1000)
    assert got == [] and wal.last_index() == 200 and wal.snapshot_point() == (200, 1)
    wal.append(entries(201, 202, term=2))
    wal.close()
    assert reload(tmp_path)[1] == entries(201, 202, term=2)


def test_compact_with_mismatching_term_or_beyond_the_log_discards_it(tmp_path: Path) -> None:
    with WAL.open(tmp_path) as wal:
        wal.append(entries(1, 10, term=1))
        wal.compact(5, 2)  # the snapshot's entry 5 has term 2: our 6..10 are stale
        assert wal.last_index() == 5 and wal.last_term() == 2
        wal.append(entries(6, 7, term=2))
    wal, got = reload(tmp_path)
    assert got == entries(6, 7, term=2)
    wal.compact(50, 3)
    wal.compact(40, 3)  # older than what we have: ignored
    wal.close()
    wal, got = reload(tmp_path)
    assert got == [] and wal.snapshot_point() == (50, 3) and wal.last_index() == 50


def test_sync_from_a_worker_thread(tmp_path: Path) -> None:
    async def main() -> None:
        wal = WAL.open(tmp_path, segment_bytes=4096)
        for i in range(1, 500, 50):
            wal.append(entries(i, i + 49))
            await asyncio.to_thread(wal.sync)
        await asyncio.to_thread(wal.compact, 300, 1)
        await asyncio.to_thread(wal.close)

    asyncio.run(main())
    assert reload(tmp_path)[1] == entries(301, 500)


def test_closed_wal_refuses_use(tmp_path: Path) -> None:
    wal = WAL.open(tmp_path)
    wal.close()
    wal.close()
    with pytest.raises(RuntimeError):
        wal.append(entries(1, 1))


# ---- a model-based test -------------------------------------------------------------


@dataclass
class Model:
    entries: list[Entry] = field(default_factory=list)
    hs: HardState = field(default_factory=HardState)
    snap: tuple[int, int] = (0, 0)

    @property
    def last(self) -> int:
        return self.entries[-1].index if self.entries else self.snap[0]

    def term_at(self, index: int) -> int | None:
        if index == self.snap[0]:
            return self.snap[1]
        found = [e.term for e in self.entries if e.index == index]
        return found[0] if found else None

    def copy(self) -> Model:
        return Model(list(self.entries), self.hs, self.snap)


ops = st.one_of(
    st.tuples(st.just("append"), st.integers(0, 6), st.integers(1, 8), st.integers(1, 5)),
    st.tuples(st.just("hs"), st.integers(0, 9), st.sampled_from([None, "a", "b"])),
    st.tuples(st.just("sync")),
    st.tuples(st.just("compact"), st.integers(0, 12), st.booleans()),
    st.tuples(st.just("crash")),
    st.tuples(st.just("reopen")),
)


def _apply(op: tuple, wal: WAL, cur: Model) -> None:
    if op[0] == "append":
        _, back, n, term = op
        first = max(cur.snap[0] + 1, cur.last + 1 - back)
        new = entries(first, first + n - 1, term=term, tag=b"t%d" % term)
        wal.append(new)
        cur.entries = [e for e in cur.entries if e.index < first] + new
    elif op[0] == "hs":
        cur.hs = HardState(term=op[1], vote=op[2], commit=op[1])
        wal.set_hard_state(cur.hs)
    elif op[0] == "compact":
        index = cur.snap[0] + op[1] - 2
        term = cur.term_at(index) if op[2] and cur.term_at(index) is not None else 99
        wal.compact(index, term)
        if index > cur.snap[0]:
            if cur.term_at(index) == term:
                cur.entries = [e for e in cur.entries if e.index > index]
            else:
                cur.entries = []
            cur.snap = (index, term)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(ops, max_size=40), st.sampled_from([300, 1000, 64 << 20]))
def test_wal_matches_an_in_memory_model(program: list[tuple], segment_bytes: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        wal = WAL.open(d, segment_bytes=segment_bytes)
        cur, durable = Model(), Model()
        for op in program:
            if op[0] in ("append", "hs", "compact"):
                snap = cur.snap
                _apply(op, wal, cur)
                if cur.snap != snap:
                    durable = cur.copy()  # a compaction that does something syncs
            elif op[0] == "sync":
                wal.sync()
                durable = cur.copy()
            else:
                if op[0] == "crash":
                    crash(wal)
                    cur = durable.copy()
                else:
                    wal.close()
                    durable = cur.copy()
                wal = WAL.open(d, segment_bytes=segment_bytes)
                state = wal.load()
                assert state.entries == cur.entries
                assert state.hard_state == cur.hs
                assert (state.snapshot_index, state.snapshot_term) == cur.snap
            assert wal.last_index() == cur.last
        wal.close()
        state = WAL.open(d, segment_bytes=segment_bytes).load()
        assert (state.entries, state.hard_state) == (cur.entries, cur.hs)
        assert (state.snapshot_index, state.snapshot_term) == cur.snap


def test_disk_full_leaves_no_torn_record_and_sync_resumes(tmp_path: Path, monkeypatch) -> None:
    """ENOSPC part-way through a write: the partial bytes are cut off, the records stay
    pending, and the next sync (once there is room) writes them exactly once."""
    import errno

    from respkv.storage import wal as wal_module

    wal = WAL.open(tmp_path / "wal")
    wal.append([Entry(1, 1, EntryKind.NORMAL, b"before")])
    wal.sync()
    real_write_all = wal_module._write_all

    def half_then_enospc(fd: int, data: bytes) -> None:
        os.write(fd, data[: len(data) // 2])
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(wal_module, "_write_all", half_then_enospc)
    wal.append([Entry(1, 2, EntryKind.NORMAL, b"x" * 1000), Entry(1, 3, EntryKind.NORMAL, b"y")])
    with pytest.raises(wal_module.DiskFull):
        wal.sync()
    with pytest.raises(wal_module.DiskFull):
        wal.sync()  # still full: still retryable, not a failed WAL
    monkeypatch.setattr(wal_module, "_write_all", real_write_all)
    wal.sync()
    wal.append([Entry(1, 4, EntryKind.NORMAL, b"after")])
    wal.close()
    state = WAL.open(tmp_path / "wal").load()
    assert [(e.index, e.data[:1]) for e in state.entries] == [
        (1, b"b"), (2, b"x"), (3, b"y"), (4, b"a")]


# -- several groups in one WAL ---------------------------------------------------------


def test_groups_share_segments_but_not_logs(tmp_path: Path) -> None:
    """Interleaved appends, hard states and a conflict truncation of one group
    leave every other group's log as it was."""
    with WAL.open(tmp_path) as wal:
        for first in range(1, 60, 10):
            for group in (0, 1, 2):
                wal.append(entries(first, first + 9, tag=b"g%d" % group), group)
            wal.sync()
        wal.set_hard_state(HardState(4, "n1", 30), 1)
        wal.append(entries(25, 27, term=2, tag=b"g2"), 2)  # replaces 25..60 of group 2
    with WAL.open(tmp_path) as wal:
        assert wal.groups() == [0, 1, 2]
        assert wal.load(0).entries == entries(1, 60, tag=b"g0")
        assert wal.load(1).entries == entries(1, 60, tag=b"g1")
        assert wal.load(1).hard_state == HardState(4, "n1", 30)
        assert wal.load(0).hard_state == HardState()
        assert wal.load(2).entries == entries(1, 24, tag=b"g2") + entries(25, 27, term=2,
                                                                          tag=b"g2")
        assert wal.last_index(2) == 27 and wal.last_index(0) == 60


def test_a_segment_goes_only_once_every_group_compacted_past_it(tmp_path: Path) -> None:
    wal = WAL.open(tmp_path, segment_bytes=1000)
    for first in range(1, 200, 5):
        wal.append(entries(first, first + 4), 0)
        wal.append(entries(first, first + 4, tag=b"one"), 1)
        wal.sync()
    before = segments(tmp_path)
    assert len(before) >= 5
    wal.compact(200, 1, 0)  # group 1 still needs every entry: nothing may go
    assert segments(tmp_path)[: len(before)] == before
    wal.compact(100, 1, 1)  # now the segments with only entries <= 100 of both go
    after = segments(tmp_path)
    assert after[0] != before[0] and before[-1] in after
    wal.close()
    with WAL.open(tmp_path, segment_bytes=1000) as wal:
        assert wal.load(0).entries == [] and wal.snapshot_point(0) == (200, 1)
        assert wal.load(1).entries == entries(101, 200, tag=b"one")
        assert wal.snapshot_point(1) == (100, 1)


def test_a_quiet_group_is_told_it_holds_the_oldest_segment(tmp_path: Path) -> None:
    """Group 1 wrote once, long ago; group 0 keeps writing and compacting. Until
    group 1 compacts too (its driver takes a snapshot when told), nothing goes."""
    wal = WAL.open(tmp_path, segment_bytes=1000)
    wal.append(entries(1, 2, tag=b"quiet"), 1)
    for first in range(1, 200, 5):
        wal.append(entries(first, first + 4), 0)
        wal.sync()
    wal.compact(200, 1, 0)
    assert len(segments(tmp_path)) >= 5  # pinned by group 1's two entries
    assert wal.holds_oldest_segment(1) and not wal.holds_oldest_segment(0)
    wal.compact(2, 1, 1)
    assert len(segments(tmp_path)) <= 2
    assert not wal.holds_oldest_segment(1)
    wal.close()
