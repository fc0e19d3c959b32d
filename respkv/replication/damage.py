"""What to tell the operator when a node's files are damaged at start-up, and the
``--repair-wal`` start: one message line each, naming the file and what to do."""

from __future__ import annotations

import time
from pathlib import Path

from respkv.replication.snapshots import read_meta
from respkv.storage.files import CorruptFileError
from respkv.storage.repair import RepairRefused, RepairResult, repair_wal
from respkv.storage.store import StoreFormatError
from respkv.storage.wal import CorruptLogError

READD = ("remove the node (CLUSTER LEAVE <node-id> on another member) and add it again "
         "with an empty --dir: it gets everything from the others")


def wal_advice(error: CorruptLogError) -> str:
    if not error.repairable:
        return f"{error}. --repair-wal cannot fix this; {READD}"
    return (f"{error}. This node's Raft log is damaged before its end. Either start it with "
            "--repair-wal: it keeps the log before the damaged record, moves the rest aside "
            f"into {error.path.name}.corrupt-<time> files next to it (nothing is deleted) and "
            "the node catches up from its leaders. That is safe only while the other members "
            "hold a quorum without this node (check that they have leaders and take writes): "
            "the cut entries may be acknowledged writes that only a quorum with this node "
            f"had. Or {READD}")


def store_advice(error: StoreFormatError, data_dir: Path) -> str:
    path = error.path
    if not error.damaged or path is None:
        return str(error)
    text = f"state store damaged: {error}. "
    group = path.stem
    snap_dir = data_dir / "raft" / group / "snap"
    try:
        meta = read_meta(snap_dir)
    except (OSError, CorruptFileError):
        meta = None
        text += f"Its snapshot meta ({snap_dir / 'meta.json'}) is unreadable too. "
    if path.parent == data_dir / "data" and meta is None and not (snap_dir / "meta.json").exists():
        text += (f"Its log was never compacted, so the store can be rebuilt from the log: "
                 f"move {path} (and any {path.name}-wal, -shm) aside and "
                 "start the node again. ")
    elif meta is not None and (snap_dir / f"snap-{meta.index:020d}.sqlite").exists():
        snap = snap_dir / f"snap-{meta.index:020d}.sqlite"
        text += (f"It can be rebuilt from the latest snapshot and the log: move {path} (and "
                 f"any {path.name}-wal, -shm) aside, copy {snap} to {path} and start the node "
                 "again (the log replays what came after the snapshot). ")
    else:
        text += "No local snapshot covers what the log was compacted to. "
    return text + f"Or {READD}"


def file_advice(error: CorruptFileError) -> str:
    return f"{error}; {READD}"


def advice(error: Exception, data_dir: Path) -> str:
    """The message line for a damaged file met at start-up."""
    if isinstance(error, CorruptLogError):
        return wal_advice(error)
    if isinstance(error, StoreFormatError):
        return store_advice(error, data_dir)
    if isinstance(error, CorruptFileError):
        return file_advice(error)
    if isinstance(error, RepairRefused):
        return f"--repair-wal refused: {error}; {READD}"
    return str(error)


def repair(data_dir: Path) -> RepairResult:
    """Cut the node's WAL at its first damaged record (see respkv.storage.repair)."""
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    return repair_wal(data_dir / "raft" / "wal", stamp)
