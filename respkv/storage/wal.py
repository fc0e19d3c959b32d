"""The durable Raft logs (entries, hard state, snapshot point) of a node's groups.

Every group of a node writes to one WAL, so that one fsync per loop turn makes all
of them durable: with a file per group, a node of three groups paid three fsyncs.

On disk: a directory of segment files ``<seq:016x>.wal``, replayed in seq order. Each
segment is a sequence of records::

    crc32 u32 | length u32 | type u8 | payload (length bytes)      (little endian)

The crc (zlib.crc32) covers length, type and payload, so a flipped length is caught too.
Every payload starts with the group (u16). Record types:

    ENTRY       group u16 | term u64 | index u64 | kind u8 | data
    HARD_STATE  group u16 | term u64 | commit u64 | has_vote u8 | vote (utf-8)
    SNAPSHOT    group u16 | index u64 | term u64 | keep_suffix u8

A group's log is the result of replaying its records in order: an entry whose index is
<= the current last index truncates the log from there (Raft conflict truncation needs
no record of its own); the last HARD_STATE wins; a SNAPSHOT drops entries <= index (or
the whole log when ``keep_suffix`` is 0: the log did not match the snapshot). A segment
is deleted once every group's snapshot covers every entry it holds.

Threading contract: ``append``/``set_hard_state`` only encode into memory; ``sync`` and
``compact`` do the I/O. They may run in a worker thread (``asyncio.to_thread``) provided
no other thread calls into the WAL until they return: with several groups on one event
loop, that means never (the node syncs on the loop). The WAL has no lock. Misuse is
detected and raises.

Durability ordering: a new segment file is created only by ``sync``, after every earlier
segment was fsynced, and the directory is fsynced right after the creation; so after a
crash only the LAST segment can have a torn tail, and a damaged record anywhere else is
real corruption.
"""

from __future__ import annotations

import errno
import json
import logging
import os
import re
import struct
import zlib
from array import array
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from itertools import pairwise
from pathlib import Path
from typing import Self

from respkv.raft.types import Entry, EntryKind, HardState
from respkv.storage.files import fsync_path

logger = logging.getLogger(__name__)

_HEAD = struct.Struct("<IIB")  # crc, payload length, type
_HEAD_SIZE = _HEAD.size
_CRC = struct.Struct("<I")
_ENTRY_FIXED = struct.Struct("<IBHQQB")  # length, type, group, term, index, kind: crc'd prefix
_GROUP = struct.Struct("<H")  # every payload's first field
_ENTRY_META = struct.Struct("<QQB")  # term, index, kind (after the group)
_HS = struct.Struct("<HQQB")  # group, term, commit, has_vote; vote follows
_SNAP = struct.Struct("<HQQB")  # group, index, term, keep_suffix
_LEN_TYPE = struct.Struct("<IB")

T_ENTRY = 1
T_HARD_STATE = 2
T_SNAPSHOT = 3
_TYPES = frozenset((T_ENTRY, T_HARD_STATE, T_SNAPSHOT))
_ENTRY_OVERHEAD = _GROUP.size + _ENTRY_META.size  # payload bytes before the data
# Refuse absurd lengths early, so a damaged length field cannot make us read gigabytes.
_MAX_PAYLOAD = 1 << 30
_KINDS: tuple[EntryKind, ...] = tuple(EntryKind(k) for k in range(max(EntryKind) + 1))
_N_KINDS = len(_KINDS)
_SUFFIX = ".wal"
_NO_SPACE = (errno.ENOSPC, errno.EDQUOT)
_SEGMENT_NAME = re.compile(r"[0-9a-f]{16}\.wal")
# Written by a repair (respkv.storage.repair): per group, the (term, index) the log
# reached before it was cut. The node neither votes for a log below it nor campaigns
# with one, until its own log is past it again: the entries cut off may have been
# part of a quorum's acknowledgement.
VOTE_FLOOR_FILE = "vote-floor.json"
RESERVE_FILE = "reserve"  # see WAL.keep_reserve


class DiskFull(OSError):
    """The disk has no room for the log's records. Nothing partial was left behind:
    the records stay pending and a later ``sync`` (once space is freed) writes them."""


class CorruptLogError(Exception):
    """A damaged record that is not a torn tail: committed data may be at stake.

    ``record`` is (group, index, term) of the damaged entry as its own bytes say (they
    may be damaged too), ``after`` the same of the last good entry before it; either may
    be None. ``repairable``: cutting the log at ``offset`` of ``path`` leaves a whole log
    (see respkv.storage.repair)."""

    def __init__(self, path: Path, offset: int, reason: str, *,
                 record: tuple[int, int, int] | None = None,
                 after: tuple[int, int, int] | None = None, repairable: bool = True) -> None:
        text = f"{path}: corrupt WAL record at byte offset {offset}: {reason}"
        if record is not None:
            text += " (the record says: group {}, entry {}, term {})".format(*record)
        if after is not None:
            text += "; last good entry before it: group {}, entry {}, term {}".format(*after)
        super().__init__(text)
        self.path = path
        self.offset = offset
        self.reason = reason
        self.record = record
        self.after = after
        self.repairable = repairable


@dataclass(slots=True)
class WalState:
    hard_state: HardState
    snapshot_index: int
    snapshot_term: int
    entries: list[Entry] = field(default_factory=list)


@dataclass(slots=True)
class _Segment:
    seq: int
    path: Path
    size: int = 0  # bytes written or pending
    max_index: dict[int, int] = field(default_factory=dict)  # per group: highest entry index
    fd: int | None = None


class _BadRecord(Exception):
    def __init__(self, offset: int, reason: str) -> None:
        super().__init__(reason)
        self.offset = offset
        self.reason = reason


def _record(rtype: int, payload: bytes) -> bytes:
    body = _LEN_TYPE.pack(len(payload), rtype) + payload
    return _CRC.pack(zlib.crc32(body)) + body


def _hard_state_record(group: int, hs: HardState) -> bytes:
    vote = b"" if hs.vote is None else hs.vote.encode()
    return _record(T_HARD_STATE, _HS.pack(group, hs.term, hs.commit, hs.vote is not None) + vote)


def _segment_path(directory: Path, seq: int) -> Path:
    return directory / f"{seq:016x}{_SUFFIX}"


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _iter_records(buf: bytes) -> Iterator[tuple[int, int, int, int]]:
    """Yield (offset, type, payload start, payload end); raise _BadRecord at the first bad one."""
    view = memoryview(buf)
    end_of_buf = len(buf)
    off = 0
    unpack = _HEAD.unpack_from
    crc32 = zlib.crc32
    while off < end_of_buf:
        if end_of_buf - off < _HEAD_SIZE:
            raise _BadRecord(off, "truncated record header")
        crc, length, rtype = unpack(buf, off)
        end = off + _HEAD_SIZE + length
        if length > _MAX_PAYLOAD or end > end_of_buf:
            raise _BadRecord(off, f"record length {length} runs past the end of the file")
        if crc32(view[off + 4 : end]) != crc:
            raise _BadRecord(off, "checksum mismatch")
        if rtype not in _TYPES:
            raise _BadRecord(off, f"unknown record type {rtype}")
        yield off, rtype, off + _HEAD_SIZE, end
        off = end


def peek_entry(buf: bytes, off: int) -> tuple[int, int, int] | None:
    """(group, index, term) of the ENTRY record at ``off`` as its bytes say, checksum or
    not: for messages about a damaged record. None if it does not even look like one."""
    if len(buf) - off < _HEAD_SIZE + _ENTRY_OVERHEAD:
        return None
    _, length, rtype = _HEAD.unpack_from(buf, off)
    if rtype != T_ENTRY or length < _ENTRY_OVERHEAD:
        return None
    (group,) = _GROUP.unpack_from(buf, off + _HEAD_SIZE)
    term, index, _ = _ENTRY_META.unpack_from(buf, off + _HEAD_SIZE + _GROUP.size)
    return group, index, term


@dataclass(frozen=True, slots=True)
class Salvaged:
    """What one well-formed record found by ``salvage`` says."""

    offset: int
    group: int
    rtype: int
    term: int = 0  # ENTRY: the entry's; HARD_STATE: the current term
    index: int = 0  # ENTRY only
    hard_state: HardState | None = None  # HARD_STATE only


def salvage(buf: bytes, start: int = 0) -> Iterator[Salvaged]:
    """Every well-formed record from ``start`` on, skipping damage byte by byte: what a
    damaged segment still says (for repairs only: slow on long damaged stretches)."""
    view = memoryview(buf)
    off = start
    while off < len(buf):
        if not _valid_record_at(buf, view, off):
            off += 1
            continue
        _, length, rtype = _HEAD.unpack_from(buf, off)
        begin, end = off + _HEAD_SIZE, off + _HEAD_SIZE + length
        (group,) = _GROUP.unpack_from(buf, begin) if length >= _GROUP.size else (-1,)
        if rtype == T_ENTRY and length >= _ENTRY_OVERHEAD:
            term, index, _ = _ENTRY_META.unpack_from(buf, begin + _GROUP.size)
            yield Salvaged(off, group, rtype, term, index)
        elif rtype == T_HARD_STATE and length >= _HS.size:
            _, term, commit, has_vote = _HS.unpack_from(buf, begin)
            vote = buf[begin + _HS.size : end].decode(errors="replace") if has_vote else None
            yield Salvaged(off, group, rtype, term, hard_state=HardState(term, vote, commit))
        elif group >= 0:
            yield Salvaged(off, group, rtype)
        off = end


def _valid_record_at(buf: bytes, view: memoryview, off: int) -> bool:
    if len(buf) - off < _HEAD_SIZE:
        return False
    crc, length, rtype = _HEAD.unpack_from(buf, off)
    end = off + _HEAD_SIZE + length
    return rtype in _TYPES and end <= len(buf) and zlib.crc32(view[off + 4 : end]) == crc


def _valid_record_after(buf: bytes, start: int) -> bool:
    """True if any well-formed record starts after `start`: then the damage is not a torn tail.

    Byte by byte, because a damaged length field means we cannot know where the next record
    begins. Only run on start-up, on the (normally short) damaged tail.
    """
    view = memoryview(buf)
    return any(_valid_record_at(buf, view, off) for off in range(start, len(buf)))


class _Replay:
    """Rebuilds the logical log from records, in order, across segments."""

    def __init__(self) -> None:
        self.hard_state = HardState()
        self.snap_index = 0
        self.snap_term = 0
        self.entries: list[Entry] = []
        self.entry_index = 0  # index of the last ENTRY record seen
        self._next = -1  # index that simply extends `entries` (-1: none, take the slow path)

    @property
    def last_index(self) -> int:
        return self.entries[-1].index if self.entries else self.snap_index

    def apply(self, rtype: int, buf: bytes, start: int, end: int) -> None:
        if rtype == T_ENTRY:
            self.entry(buf, start, end)
        elif rtype == T_HARD_STATE:
            _, term, commit, has_vote = _HS.unpack_from(buf, start)
            vote = buf[start + _HS.size : end].decode() if has_vote else None
            self.hard_state = HardState(term=term, vote=vote, commit=commit)
        else:
            self._snapshot(*_SNAP.unpack_from(buf, start)[1:])

    def entry(self, buf: bytes, start: int, end: int) -> None:
        term, index, kind = _ENTRY_META.unpack_from(buf, start + _GROUP.size)
        if kind >= _N_KINDS:
            raise ValueError(f"unknown entry kind {kind}")
        self.entry_index = index
        if index != self._next:  # start-up cost matters: the common case first
            if index <= self.snap_index:
                return  # covered by the snapshot; append() never writes these
            self._make_room(index)
        self.entries.append(Entry(term, index, _KINDS[kind], buf[start + _ENTRY_OVERHEAD : end]))
        self._next = index + 1

    def _make_room(self, index: int) -> None:
        entries = self.entries
        if entries and index <= entries[-1].index:
            # Conflict truncation; an index before our first entry restarts the list (the
            # segments that held the older entries were compacted away).
            del entries[max(0, index - entries[0].index) :]
        elif entries:
            raise ValueError(f"entry {index} leaves a gap after {entries[-1].index}")

    def _snapshot(self, index: int, term: int, keep_suffix: int) -> None:
        # No contiguity check here: an old marker may precede entries whose predecessors
        # were compacted away; the final check in _read_all covers the result.
        if keep_suffix and self.entries:
            del self.entries[: max(0, index + 1 - self.entries[0].index)]
        else:
            self.entries.clear()
        self.snap_index, self.snap_term = index, term
        self._next = self.entries[-1].index + 1 if self.entries else -1

    def state(self) -> WalState:
        return WalState(self.hard_state, self.snap_index, self.snap_term, self.entries)


@dataclass(slots=True)
class _Log:
    """What the WAL knows of one group's log, kept in memory."""

    hs: HardState = field(default_factory=HardState)
    snap_index: int = 0
    snap_term: int = 0
    last_index: int = 0
    terms: array = field(default_factory=lambda: array("q"))  # of (snap_index, last_index]
    loaded: WalState | None = None  # as recovered by open(), until load() takes it


class WAL:
    """See the module docstring for the format and the threading contract. Methods
    about one log take its ``group`` (0 by default: a WAL of one group)."""

    def __init__(self, directory: Path, segment_bytes: int) -> None:
        self._dir = directory
        self._segment_bytes = segment_bytes
        self._segments: list[_Segment] = []  # in seq order; the last one is active
        self._pending: list[bytes] = []  # encoded, not yet written, for the active segment
        self._sealed: list[tuple[_Segment, list[bytes]]] = []  # rolled since the last sync
        self._logs: dict[int, _Log] = {}
        self._busy = False  # inside sync/compact: catches a second thread touching the WAL
        self.bytes_written = 0  # records written to segments since open (metrics)
        self._failed: BaseException | None = None
        self._closed = False
        self._floors: dict[int, tuple[int, int]] = {}
        self._reserve_bytes = 0
        self.reserve_releases = 0  # times the reserve was given up to a full disk

    # ---- opening -----------------------------------------------------------------

    @classmethod
    def open(cls, directory: Path, *, segment_bytes: int = 64 << 20) -> WAL:
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        wal = cls(directory, segment_bytes)
        wal._recover()
        return wal

    def _recover(self) -> None:
        self._list_segments()
        for group, replay in self._read_all().items():
            self._logs[group] = _Log(
                replay.hard_state, replay.snap_index, replay.snap_term, replay.last_index,
                array("q", [e.term for e in replay.entries]), replay.state())
        self._open_active()
        self._floors = read_vote_floors(self._dir)
        if self._floors and all(self._past(group, floor)
                                for group, floor in self._floors.items()):
            logger.info("WAL %s: caught up past the repair's vote floor; removing it",
                        self._dir)
            (self._dir / VOTE_FLOOR_FILE).unlink()
            fsync_path(self._dir)
            self._floors = {}
        elif self._floors:
            logger.warning("WAL %s was repaired: this node votes and campaigns in a group "
                           "only once its log is past the group's floor (term, index): %s",
                           self._dir, self._floors)

    def _past(self, group: int, floor: tuple[int, int]) -> bool:
        return (self.last_term(group), self.last_index(group)) >= floor

    def vote_floor(self, group: int = 0) -> tuple[int, int] | None:
        """(term, index) this group's log must reach again before the node votes or
        campaigns in it (after a repair cut it); None when there is none."""
        return self._floors.get(group)

    def _log(self, group: int) -> _Log:
        log_ = self._logs.get(group)
        if log_ is None:
            log_ = self._logs[group] = _Log(loaded=_Replay().state())
        return log_

    def _read_all(self) -> dict[int, _Replay]:
        replays: dict[int, _Replay] = {}
        existing = [s for s in self._segments if s.fd is not None or s.path.exists()]
        for seg in existing:
            self._replay_segment(seg, replays, is_last=seg is existing[-1])
        for group, replay in replays.items():
            entries = replay.entries
            if entries and entries[0].index != replay.snap_index + 1:
                raise CorruptLogError(
                    existing[0].path,
                    0,
                    f"group {group}'s log starts at {entries[0].index} but its snapshot is "
                    f"{replay.snap_index}",
                    repairable=False,
                )
        return replays

    def _list_segments(self) -> list[_Segment]:
        names = (p.name for p in self._dir.glob("*" + _SUFFIX))
        seqs = sorted(int(n[:16], 16) for n in names if _SEGMENT_NAME.fullmatch(n))
        for prev, seq in pairwise(seqs):
            if seq != prev + 1:
                # Compaction deletes oldest first with a dir fsync each time: never a hole.
                missing = _segment_path(self._dir, prev + 1)
                raise CorruptLogError(missing, 0, "segment missing from the middle of the log")
        self._segments = [_Segment(s, _segment_path(self._dir, s)) for s in seqs]
        return self._segments

    def _replay_segment(self, seg: _Segment, replays: dict[int, _Replay], *,
                        is_last: bool) -> None:
        buf = seg.path.read_bytes()
        group_of = _GROUP.unpack_from
        last_entry = -1  # offset of the last good ENTRY record, for messages
        try:
            for offset, rtype, start, end in _iter_records(buf):
                try:
                    (group,) = group_of(buf, start)
                    replay = replays.get(group)
                    if replay is None:
                        replay = replays[group] = _Replay()
                    if rtype == T_ENTRY:
                        replay.entry(buf, start, end)
                        last_entry = offset
                        if replay.entry_index > seg.max_index.get(group, 0):
                            seg.max_index[group] = replay.entry_index
                    else:
                        replay.apply(rtype, buf, start, end)
                except ValueError as err:  # well-formed record whose content makes no sense
                    raise CorruptLogError(seg.path, offset, str(err),
                                          record=peek_entry(buf, offset)) from None
            seg.size = len(buf)
        except _BadRecord as bad:
            if not is_last or _valid_record_after(buf, bad.offset + 1):
                after = peek_entry(buf, last_entry) if last_entry >= 0 else None
                raise CorruptLogError(seg.path, bad.offset, bad.reason,
                                      record=peek_entry(buf, bad.offset), after=after) from None
            self._cut_tail(seg, bad)

    def _cut_tail(self, seg: _Segment, bad: _BadRecord) -> None:
        # A write interrupted by a crash: never synced, so never acknowledged. Cut it off
        # so that later appends do not land after garbage.
        logger.warning(
            "WAL %s: cutting torn tail at byte offset %d (%s)", seg.path, bad.offset, bad.reason
        )
        os.truncate(seg.path, bad.offset)
        fd = os.open(seg.path, os.O_WRONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        seg.size = bad.offset

    def _open_active(self) -> None:
        if not self._segments:
            self._segments.append(_Segment(1, _segment_path(self._dir, 1)))
            return  # the file is created by the first sync
        active = self._segments[-1]
        active.fd = os.open(active.path, os.O_WRONLY | os.O_APPEND)

    # ---- reading -----------------------------------------------------------------

    def groups(self) -> list[int]:
        return sorted(self._logs)

    def load(self, group: int = 0) -> WalState:
        """A group's log: as recovered by open(), else synced and re-read from disk."""
        self._check_usable()
        log_ = self._log(group)
        if log_.loaded is not None:
            state, log_.loaded = log_.loaded, None  # do not pin the entries in memory
            return state
        self.sync()
        replay = self._read_all().get(group)
        return (replay or _Replay()).state()

    def last_index(self, group: int = 0) -> int:
        return self._log(group).last_index

    def last_term(self, group: int = 0) -> int:
        log_ = self._log(group)
        return log_.terms[-1] if log_.terms else log_.snap_term

    def hard_state(self, group: int = 0) -> HardState:
        return self._log(group).hs

    def snapshot_point(self, group: int = 0) -> tuple[int, int]:
        log_ = self._log(group)
        return log_.snap_index, log_.snap_term

    # ---- writing (event loop thread; memory only) ---------------------------------

    def append(self, entries: list[Entry], group: int = 0) -> None:
        """Record entries; an index <= last_index() replaces the log from there on."""
        if not entries:
            return
        self._check_usable()
        log_ = self._log(group)
        first = entries[0].index
        if first <= log_.snap_index or first > log_.last_index + 1:
            raise ValueError(f"append at {first}: log is ({log_.snap_index}, {log_.last_index}]")
        blob, terms = _encode_entries(group, entries, first)
        del log_.terms[first - log_.snap_index - 1 :]
        log_.terms.extend(terms)
        log_.last_index = first + len(entries) - 1
        self._add(log_, group, blob, log_.last_index)

    def set_hard_state(self, hs: HardState, group: int = 0) -> None:
        self._check_usable()
        log_ = self._log(group)
        if hs != log_.hs:
            log_.hs = hs
            self._add(log_, group, _hard_state_record(group, hs), 0)

    def _add(self, log_: _Log, group: int, blob: bytes, max_index: int) -> None:
        log_.loaded = None  # stale now: a later load() re-reads the disk
        active = self._segments[-1]
        if active.size and active.size + len(blob) > self._segment_bytes:
            active = self._roll()
        self._pending.append(blob)
        active.size += len(blob)
        if max_index > active.max_index.get(group, 0):
            active.max_index[group] = max_index

    def _roll(self) -> _Segment:
        # No file is created here: sync() creates it once the older segments are fsynced.
        old = self._segments[-1]
        self._sealed.append((old, self._pending))
        self._pending = []
        new = _Segment(old.seq + 1, _segment_path(self._dir, old.seq + 1))
        self._segments.append(new)
        return new

    # ---- I/O (may run in a worker thread) ---------------------------------------------

    def sync(self) -> bool:
        """Write and fsync everything appended since the last sync (group commit): one
        write and one fsync per segment touched, plus a directory fsync per segment created.
        False when there was nothing to write.

        May run in a worker thread (``await asyncio.to_thread(wal.sync)``) as long as no
        other thread calls into the WAL until it returns; appends made meanwhile raise."""
        self._check_usable()
        if not (self._pending or self._sealed):
            return False
        with self._io():
            self._flush()
        return True

    def compact(self, snapshot_index: int, snapshot_term: int, group: int = 0) -> None:
        """Durably record a snapshot covering up to snapshot_index; drop covered segments.

        As in Raft's InstallSnapshot: the entries after the point are kept only if the log
        holds the point with the same term; otherwise the whole log is discarded.
        """
        self._check_usable()
        log_ = self._log(group)
        if snapshot_index <= log_.snap_index:
            return  # an older snapshot than the one we have: nothing to do
        keep = (
            snapshot_index <= log_.last_index
            and log_.terms[snapshot_index - log_.snap_index - 1] == snapshot_term
        )
        marker = _record(T_SNAPSHOT, _SNAP.pack(group, snapshot_index, snapshot_term, keep))
        # The hard state is written again so it survives the deletion of its segment.
        self._add(log_, group, marker + _hard_state_record(group, log_.hs), 0)
        if keep:
            del log_.terms[: snapshot_index - log_.snap_index]
        else:
            log_.terms = array("q")
            log_.last_index = snapshot_index
        log_.snap_index, log_.snap_term = snapshot_index, snapshot_term
        with self._io():
            self._flush()  # the marker must be durable before any segment goes
            self._delete_covered()

    @contextmanager
    def _io(self) -> Iterator[None]:
        self._busy = True
        try:
            yield
        except DiskFull:
            raise  # retryable: _write_out cut the partial write off again
        except BaseException as err:
            # After a failed write or fsync the file's state is unknown (and a retried
            # fsync can report success for lost pages): refuse all further use.
            self._failed = err
            raise
        finally:
            self._busy = False

    def _flush(self) -> None:
        # Each part is dropped from the queue only once durable, so a DiskFull
        # part-way leaves exactly what still has to be written.
        while self._sealed:
            seg, chunks = self._sealed[0]
            fd = self._write_out(seg, chunks)
            os.close(fd)
            seg.fd = None
            self._sealed.pop(0)
        self._write_out(self._segments[-1], self._pending)
        self._pending = []

    def _write_out(self, seg: _Segment, chunks: list[bytes]) -> int:
        try:
            return self._write_once(seg, chunks)
        except DiskFull:
            if not self._release_reserve():
                raise
            return self._write_once(seg, chunks)

    def _write_once(self, seg: _Segment, chunks: list[bytes]) -> int:
        if seg.fd is None:
            flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND
            try:
                seg.fd = os.open(seg.path, flags, 0o644)
            except OSError as err:
                if err.errno in _NO_SPACE:
                    raise DiskFull(err.errno, f"{seg.path}: {err.strerror}") from err
                raise
            # Make the name durable before any later segment can exist.
            fsync_path(self._dir)
        if chunks:
            start = os.lseek(seg.fd, 0, os.SEEK_END)
            data = b"".join(chunks)
            try:
                _write_all(seg.fd, data)
            except OSError as err:
                if err.errno not in _NO_SPACE:
                    raise
                os.ftruncate(seg.fd, start)  # no torn record left for the retry to follow
                raise DiskFull(err.errno, f"{seg.path}: {err.strerror}") from err
            self.bytes_written += len(data)
            os.fsync(seg.fd)
        return seg.fd

    # ---- the reserve ---------------------------------------------------------------

    def keep_reserve(self, size: int) -> bool:
        """Hold ``size`` bytes of the disk in a file of the log's own (RESERVE_FILE),
        given up the moment a write finds the disk full: the records in hand (votes,
        acknowledgements of entries already taken) still get to the disk, so a disk
        that fills faster than writes are refused does not stall the node. True when
        the reserve is in place; call again (from the loop, between syncs) once there
        is room to take it back."""
        self._reserve_bytes = size
        path = self._dir / RESERVE_FILE
        if not size:
            return True
        try:
            if path.stat().st_size >= size:
                return True
        except FileNotFoundError:
            pass
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o644)
            try:
                os.posix_fallocate(fd, 0, size)  # blocks really taken, not a sparse file
                os.fsync(fd)
            finally:
                os.close(fd)
        except OSError as err:
            path.unlink(missing_ok=True)
            if err.errno in _NO_SPACE:
                return False
            raise
        return True

    def has_reserve(self) -> bool:
        return (self._dir / RESERVE_FILE).exists()

    def _release_reserve(self) -> bool:
        path = self._dir / RESERVE_FILE
        try:
            path.unlink()
        except FileNotFoundError:
            return False
        logger.warning("WAL %s: disk full; released the log's reserve (%d bytes) to write "
                       "what is in hand", self._dir, self._reserve_bytes)
        self.reserve_releases += 1
        return True

    def disk_bytes(self) -> int:
        """The bytes of every segment, written or pending."""
        return sum(seg.size for seg in self._segments)

    def holds_oldest_segment(self, group: int, min_segments: int = 3) -> bool:
        """True when the log has ``min_segments`` or more segments and ``group`` has
        entries past its snapshot in the oldest: its snapshot is what would let the
        WAL shrink. A group that writes little must not pin the log of busy ones."""
        if len(self._segments) < min_segments:
            return False
        return self._segments[0].max_index.get(group, 0) > self._log(group).snap_index

    def _covered(self, seg: _Segment) -> bool:
        """Every entry in ``seg`` is in its group's snapshot. A group's SNAPSHOT and
        HARD_STATE records are written again at each compaction, and the newest
        segment is never deleted, so the latest of each survives."""
        return all(index <= self._log(group).snap_index
                   for group, index in seg.max_index.items())

    def _delete_covered(self) -> None:
        # Oldest first, fsyncing the directory each time, so a crash leaves no hole.
        while len(self._segments) > 1 and self._covered(self._segments[0]):
            seg = self._segments.pop(0)
            seg.path.unlink()
            fsync_path(self._dir)

    def close(self) -> None:
        if self._closed:
            return
        try:
            if self._failed is None:
                self.sync()
        finally:
            self._closed = True
            for seg in self._segments:
                if seg.fd is not None:
                    os.close(seg.fd)
                    seg.fd = None

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _check_usable(self) -> None:
        if self._closed:
            raise RuntimeError(f"WAL {self._dir} is closed")
        if self._failed is not None:
            raise RuntimeError(f"WAL {self._dir} failed earlier: {self._failed!r}")
        if self._busy:
            raise RuntimeError(f"WAL {self._dir} used by two threads at once")


def read_vote_floors(directory: Path) -> dict[int, tuple[int, int]]:
    """The vote floors a repair left in ``directory`` (see VOTE_FLOOR_FILE)."""
    path = Path(directory) / VOTE_FLOOR_FILE
    try:
        fields = json.loads(path.read_text())
        return {int(group): (int(term), int(index))
                for group, (term, index) in fields["floors"].items()}
    except FileNotFoundError:
        return {}
    except (OSError, ValueError, KeyError, TypeError) as error:
        # Starting without it could let this node vote with the log a repair cut.
        raise CorruptLogError(path, 0, f"unreadable vote floor file: {error!r}",
                              repairable=False) from None


def _encode_entries(group: int, entries: list[Entry], first: int) -> tuple[bytes, list[int]]:
    """One bytes object for a batch: the hot path, so locals and no per-entry calls of ours."""
    parts: list[bytes] = []
    terms: list[int] = []
    pack = _ENTRY_FIXED.pack
    pack_crc = _CRC.pack
    crc32 = zlib.crc32
    index = first
    for e in entries:
        if e.index != index:
            raise ValueError(f"entries not contiguous: {e.index} where {index} was expected")
        data = e.data
        fixed = pack(_ENTRY_OVERHEAD + len(data), T_ENTRY, group, e.term, index, e.kind)
        parts += (pack_crc(crc32(data, crc32(fixed))), fixed, data)
        terms.append(e.term)
        index += 1
    return b"".join(parts), terms
