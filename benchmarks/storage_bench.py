"""Micro-benchmarks of respkv.storage: WAL append/sync/load, StateStore batches/load/snapshot.

    python benchmarks/storage_bench.py [--dir DIR]

DIR should be on the disk the server will use (default: a temporary directory).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from respkv.raft.types import Entry
from respkv.storage import WAL, StateStore

CMD = b"*3\r\n$3\r\nSET\r\n$12\r\nkey:00000001\r\n$16\r\nvalue-0000000001\r\n"


def bench_wal(base: Path, rounds: int = 2000, batch: int = 256) -> None:
    wal = WAL.open(base / "wal")
    append_us, sync_cpu_us, sync_wall_us = [], [], []
    index = 1
    for _ in range(rounds):
        entries = [Entry(1, i, data=CMD) for i in range(index, index + batch)]
        index += batch
        t0 = time.perf_counter()
        wal.append(entries)
        t1 = time.perf_counter()
        c0 = time.thread_time()
        wal.sync()
        c1 = time.thread_time()
        t2 = time.perf_counter()
        append_us.append((t1 - t0) * 1e6)
        sync_cpu_us.append((c1 - c0) * 1e6)
        sync_wall_us.append((t2 - t1) * 1e6)
    wal.close()
    print(f"WAL: {rounds} x (append {batch} entries of {len(CMD)} B + sync)")
    print(f"  append  median {statistics.median(append_us):7.1f} us  (encode, memory only)")
    print(f"  sync    median {statistics.median(sync_cpu_us):7.1f} us CPU (write+fsync syscalls)")
    print(
        f"  sync    median {statistics.median(sync_wall_us):7.1f} us wall, "
        f"p99 {statistics.quantiles(sync_wall_us, n=100)[98]:7.1f} us"
    )
    t0 = time.perf_counter()
    wal = WAL.open(base / "wal")
    n = len(wal.load().entries)
    print(f"  open+load of {n} entries: {time.perf_counter() - t0:.2f} s")
    wal.close()


def bench_store(base: Path, total: int = 100_000) -> None:
    for batch in (100, 1000):
        path = base / f"store{batch}.sqlite"
        with StateStore(path) as store:
            caller = 0.0
            t0 = time.perf_counter()
            for b in range(total // batch):
                upserts = {b"key:%08d" % (b * batch + i): b"value-%010d" % i for i in range(batch)}
                c0 = time.perf_counter()
                store.write_batch(upserts, [], b + 1, 1)
                caller += time.perf_counter() - c0
            store.flush()
            wall = time.perf_counter() - t0
        print(
            f"StateStore write_batch, batches of {batch}: {total / wall:,.0f} keys/s end to end;"
            f" caller thread {caller / total * 1e6:.2f} us/key"
        )
    path = base / "store1000.sqlite"
    with StateStore(path) as store:
        t0 = time.perf_counter()
        _, _, data = store.load()
        print(f"StateStore load of {len(data):,} keys: {time.perf_counter() - t0:.3f} s")
        t0 = time.perf_counter()
        store.snapshot_to(base / "snap.sqlite")
        size = (base / "snap.sqlite").stat().st_size
        print(f"StateStore snapshot_to ({size / 1e6:.1f} MB): {time.perf_counter() - t0:.3f} s")
    with StateStore(base / "restored.sqlite") as store:
        t0 = time.perf_counter()
        store.restore_from(base / "snap.sqlite")
        store.load()
        print(f"StateStore restore_from + load: {time.perf_counter() - t0:.3f} s")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--dir", type=Path, default=None)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        bench_wal(Path(tmp))
        bench_store(Path(tmp))


if __name__ == "__main__":
    main()
