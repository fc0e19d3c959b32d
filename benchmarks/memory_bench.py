#!/usr/bin/env python3
"""Memory per key: small string keys in respkv against a real redis-server, side by side.

Starts a redis-server (no persistence: its memory is the dataset's) and a respkv single
node (``--shards 1``) on free loopback ports, loads ``--keys`` keys ``key:<n>`` with
``--value-bytes`` byte values into each (MSET batches of 1,000, pipelined), and reports
the growth of each server's resident memory (VmRSS from /proc) per key, and for respkv
the state store's size on disk per key; and the growth of INFO's ``used_memory`` per key
(respkv's is its dataset estimate, what ``maxmemory`` is held to: it should be near its
RSS per key). Then it sends SAVE to each and measures RSS again: on respkv SAVE takes
a snapshot and compacts the log, whose entries (the load's MSETs, up to
``snapshot-bytes`` of them until a snapshot is taken by itself) are held in memory
until then; "after SAVE" is the data's own cost. Every process started here is
stopped by its PID.

    python benchmarks/memory_bench.py
    python benchmarks/memory_bench.py --keys 1000000 --value-bytes 16
"""

from __future__ import annotations

import argparse
import shutil
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # testsupport/
sys.path.insert(0, str(Path(__file__).resolve().parent))

from collections_bench import rss_kib
from server_bench import Bench, Conn, command

BATCH = 1000


def load(port: int, keys: int, value: bytes) -> float:
    conn = Conn(port, timeout=120)
    started = time.monotonic()
    try:
        batches = [["MSET", *(x for i in range(start, min(start + BATCH, keys))
                              for x in (f"key:{i}", value))] for start in range(0, keys, BATCH)]
        for i in range(0, len(batches), 10):  # 10 batches in flight at once
            conn.pipeline(batches[i:i + 10])
    finally:
        conn.close()
    return time.monotonic() - started


def settle(port: int, keys: int) -> None:
    """Wait until the server says it holds every key (respkv applies asynchronously to
    the reply of none of them, but the store write-out lags)."""
    deadline = time.monotonic() + 120
    while int(command(port, "DBSIZE", timeout=30)) < keys and time.monotonic() < deadline:
        time.sleep(0.2)
    time.sleep(2.0)  # respkv writes the applied state to its store every second


def used_memory(port: int) -> int:
    info = command(port, "INFO", "memory", timeout=30)
    text = info.decode() if isinstance(info, bytes) else str(info)
    for line in text.splitlines():
        if line.startswith("used_memory:"):
            return int(line.split(":", 1)[1])
    raise RuntimeError("INFO memory has no used_memory")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--keys", type=int, default=1_000_000)
    p.add_argument("--value-bytes", type=int, default=16)
    args = p.parse_args(argv)
    if shutil.which("redis-server") is None:
        p.error("redis-server not found on PATH")
    args.single_shards, args.keep = 1, False
    bench = Bench(args)
    value = b"v" * args.value_bytes
    try:
        redis = bench.start_redis("redis", ["--save", "", "--appendonly", "no"])
        respkv = bench.start_respkv_single()
        print(f"{args.keys} keys of {args.value_bytes}-byte values, MSET batches of {BATCH}")
        print(f"{'server':7} {'load s':>7} {'RSS bytes/key':>14} {'after SAVE':>11} "
              f"{'used_memory/key':>16} {'store bytes/key':>16}")
        for target in (redis, respkv):
            port, pid = target.nodes[0].port, target.pids()[0]
            before, used_before = rss_kib(pid), used_memory(port)
            seconds = load(port, args.keys, value)
            settle(port, args.keys)
            per_key = (rss_kib(pid) - before) * 1024 / args.keys
            command(port, "SAVE", timeout=120)
            saved_per_key = (rss_kib(pid) - before) * 1024 / args.keys
            used_per_key = (used_memory(port) - used_before) / args.keys
            store = ""
            if target.kind == "respkv":
                files = (bench.dir / "s1" / "data").glob("*.sqlite*")
                store = f"{sum(f.stat().st_size for f in files) / args.keys:.0f}"
            print(f"{target.name:7} {seconds:>7.1f} {per_key:>14.0f} {saved_per_key:>11.0f} "
                  f"{used_per_key:>16.0f} "
                  f"{store:>16}", flush=True)
        return 0
    finally:
        bench.close()


if __name__ == "__main__":
    sys.exit(main())
