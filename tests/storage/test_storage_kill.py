"""Kill -9 a writer process mid-flight; what it reported durable must survive, consistent."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

from respkv.storage import WAL, StateStore

WAL_WRITER = """
import sys
from pathlib import Path
from respkv.raft.types import Entry, HardState
from respkv.storage import WAL
wal = WAL.open(Path(sys.argv[1]), segment_bytes=64 << 10)
last = wal.last_index()
while True:
    batch = [Entry(1, i, data=b"x" * (i % 300)) for i in range(last + 1, last + 51)]
    wal.append(batch)
    wal.set_hard_state(HardState(term=1, vote="a", commit=last))
    last += 50
    wal.sync()
    if last % 2000 == 0:
        wal.compact(last - 1000, 1)
    print(last, flush=True)
"""

STORE_WRITER = """
import sys
from pathlib import Path
from respkv.storage import StateStore
store = StateStore(Path(sys.argv[1]))
index, _, _ = store.load()
while True:
    index += 1
    value = b"%d" % index
    store.write_batch({b"n": value, b"k%d" % (index % 500): value}, [b"gone"], index, 1)
    if index % 20 == 0:
        store.flush()
        print(index, flush=True)
"""


def run_and_kill(script: str, target: Path, seconds: float) -> int:
    """Run `script`, SIGKILL it after `seconds`; return the last index it reported."""
    proc = subprocess.Popen(
        [sys.executable, "-c", script, str(target)], stdout=subprocess.PIPE, text=True
    )
    time.sleep(seconds)
    proc.send_signal(signal.SIGKILL)
    out, _ = proc.communicate()
    lines = out.split()
    return int(lines[-1]) if lines else 0


def test_wal_survives_kill_9(tmp_path: Path) -> None:
    reported = 0
    for attempt in range(4):
        reported = max(reported, run_and_kill(WAL_WRITER, tmp_path, 0.3 + 0.1 * attempt))
        with WAL.open(tmp_path, segment_bytes=64 << 10) as wal:
            state = wal.load()
            assert wal.last_index() >= reported
            indexes = [e.index for e in state.entries]
            assert indexes == list(range(state.snapshot_index + 1, wal.last_index() + 1))
            assert all(e.data == b"x" * (e.index % 300) for e in state.entries)


def test_store_survives_kill_9(tmp_path: Path) -> None:
    path = tmp_path / "s.sqlite"
    reported = 0
    for attempt in range(3):
        reported = max(reported, run_and_kill(STORE_WRITER, path, 0.5 + 0.1 * attempt))
        with StateStore(path) as store:
            index, term, data = store.load()
        assert index >= reported and term == 1
        assert data[b"n"] == b"%d" % index and data[b"k%d" % (index % 500)] == b"%d" % index
