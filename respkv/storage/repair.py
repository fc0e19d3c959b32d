"""Repair of a WAL damaged before its end (``respkv server --repair-wal``).

The log is cut at the first damaged record: every record before it stays, the rest
(the damaged segment's bytes from there on, and every later segment) is moved aside
into ``<segment>.corrupt-<stamp>`` files next to it, never deleted. The node then gets
what it lost from its group's leader, as a follower that fell behind does.

Cutting a log can lose an acknowledged write only if this node was part of the
quorum that acknowledged it and the others who have it do not make a quorum without
it. So the repair is safe while the other members hold a quorum, and the node must
not help elect a leader that lacks the entries it cut: before cutting, the repair
writes each group's *vote floor* (``wal.VOTE_FLOOR_FILE``): the highest (term, index)
found in the whole log, readable parts after the damage included, with one more index
for a group whose last entry may be the damaged record. The Raft core neither grants
a vote to a candidate whose log is below the floor nor campaigns until its own log
is past it (``raft.core.Config.vote_floor``).

The latest term and vote readable anywhere are kept, so a vote given in a term whose
record was cut is not given twice.

Order on disk: the floor file, the copy of the damaged tail (fsynced), the renames of
the later segments (directory fsynced), then the truncation: a crash part-way leaves
either the old log or the cut one, with its floor either way.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

from respkv.raft.types import HardState
from respkv.storage.files import fsync_path, write_json_atomically
from respkv.storage.wal import (
    T_ENTRY,
    T_HARD_STATE,
    VOTE_FLOOR_FILE,
    WAL,
    CorruptLogError,
    peek_entry,
    read_vote_floors,
    salvage,
)

logger = logging.getLogger(__name__)


class RepairRefused(Exception):
    """The damage is not of a kind a cut can fix: the node must be re-added."""


@dataclass(slots=True)
class RepairResult:
    damage: CorruptLogError | None  # None: the log was whole, nothing was done
    moved_aside: list[Path] = field(default_factory=list)
    floors: dict[int, tuple[int, int]] = field(default_factory=dict)
    kept_last: dict[int, int] = field(default_factory=dict)  # per group: last index kept


@dataclass(slots=True)
class _Seen:
    """The most a group's records say, over every readable record."""

    term: int = 0  # of entries
    index: int = 0
    hs: HardState | None = None  # the one of the highest term
    after_cut: bool = False  # has an entry after the cut


def _segments(directory: Path) -> list[tuple[int, Path]]:
    found = []
    for path in directory.glob("*.wal"):
        try:
            found.append((int(path.name[:16], 16), path))
        except ValueError:
            continue
    return sorted(found)


def _scan(buf: bytes, seen: dict[int, _Seen], after_cut: bool) -> None:
    for record in salvage(buf):
        info = seen.setdefault(record.group, _Seen())
        if record.rtype == T_ENTRY:
            info.term = max(info.term, record.term)
            info.index = max(info.index, record.index)
            info.after_cut |= after_cut
        elif record.rtype == T_HARD_STATE and record.hard_state is not None and (
                info.hs is None or record.term > info.hs.term):
            info.hs = record.hard_state


def repair_wal(directory: Path, stamp: str) -> RepairResult:
    """Cut the WAL in ``directory`` at its first damaged record (see the module
    docstring); ``stamp`` names the files moved aside. Raises RepairRefused."""
    directory = Path(directory)
    try:
        WAL.open(directory).close()  # a torn tail is cut here, as at any start
        return RepairResult(None)
    except CorruptLogError as error:
        damage = error
    if not damage.repairable:
        raise RepairRefused(str(damage))
    segments = _segments(directory)
    if damage.path.exists():
        cut_seq, cut_offset = int(damage.path.name[:16], 16), damage.offset
    else:  # a segment missing from the middle: cut where it would start
        cut_seq, cut_offset = int(damage.path.name[:16], 16), 0
    seen: dict[int, _Seen] = {}
    for seq, path in segments:
        buf = path.read_bytes()
        if seq < cut_seq:
            _scan(buf, seen, after_cut=False)
        elif seq == cut_seq:
            _scan(buf[:cut_offset], seen, after_cut=False)
            _scan(buf[cut_offset + 1 :], seen, after_cut=True)
        else:
            _scan(buf, seen, after_cut=True)
    damaged = None
    if damage.path.exists():
        damaged = peek_entry(damage.path.read_bytes(), cut_offset)
    damaged_group = damaged[0] if damaged is not None and damaged[0] in seen else None
    floors = dict(read_vote_floors(directory))
    for group, info in seen.items():
        # The damaged record may be this group's last entry: ask for one index more.
        maybe_last = not info.after_cut and damaged_group in (None, group)
        floor = (info.term, info.index + 1 if maybe_last else info.index)
        floors[group] = max(floors.get(group, (0, 0)), floor)
    write_json_atomically(directory / VOTE_FLOOR_FILE, {
        "floors": {str(g): list(f) for g, f in sorted(floors.items())},
        "repaired_at": stamp, "damage": str(damage)})
    moved = _move_aside(directory, segments, cut_seq, cut_offset, stamp)
    with WAL.open(directory) as wal:
        for group, info in seen.items():
            hs = wal.hard_state(group)
            if info.hs is not None and info.hs.term > hs.term:
                # commit from the kept log: the cut may have taken the entries it counted
                wal.set_hard_state(HardState(info.hs.term, info.hs.vote,
                                             min(hs.commit, wal.last_index(group))), group)
        kept = {group: wal.last_index(group) for group in wal.groups()}
        wal.sync()
    logger.warning("WAL %s repaired: cut at %s byte %d; moved aside: %s; vote floors "
                   "(term, index): %s", directory, damage.path.name, cut_offset,
                   ", ".join(p.name for p in moved), floors)
    return RepairResult(damage, moved, floors, kept)


def _move_aside(directory: Path, segments: list[tuple[int, Path]], cut_seq: int,
                cut_offset: int, stamp: str) -> list[Path]:
    moved: list[Path] = []
    cut = directory / f"{cut_seq:016x}.wal"
    truncate = cut.exists() and cut_offset > 0
    if truncate:
        aside = cut.with_name(f"{cut.name}.corrupt-{stamp}")
        with open(cut, "rb") as src, open(aside, "xb") as out:
            src.seek(cut_offset)
            while chunk := src.read(1 << 20):
                out.write(chunk)
            out.flush()
            os.fsync(out.fileno())
        moved.append(aside)
    for seq, path in segments:
        if seq > cut_seq or (seq == cut_seq and not truncate):
            aside = path.with_name(f"{path.name}.corrupt-{stamp}")
            os.rename(path, aside)
            moved.append(aside)
    fsync_path(directory)
    if truncate:
        os.truncate(cut, cut_offset)
        fsync_path(cut)
    return moved
