#!/usr/bin/env python3
"""Big collections in respkv against a real redis-server, side by side, in one run.

Starts a redis-server (default persistence) and a respkv single node (``--shards 1``)
on free loopback ports, then for each type builds one collection of ``--members``
members (a hash, a list, a set, a sorted set; pipelined batches of 1,000 per command)
and reports:

- the time the build took and the server's resident memory per member (VmRSS growth
  over the build, from /proc), respkv against redis-server;
- redis-benchmark on commands that touch one member of the big collection, or a few
  (HGET, LINDEX in the middle, LRANGE of 100, SISMEMBER, ZSCORE, ZRANK, ZRANGE of 10,
  ZADD of an existing member; HSET, RPUSH, SADD and ZADD adding members, whose cost
  must not grow with the collection), ``--repeat`` rounds alternating the two servers:
  median ops/s, p50 and server CPU per request (utime+stime from /proc), and the
  ratio respkv / redis-server.

Every process started here is stopped by its PID at the end.

    python benchmarks/collections_bench.py
    python benchmarks/collections_bench.py --members 1000000 --repeat 5
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # testsupport/
sys.path.insert(0, str(Path(__file__).resolve().parent))

from server_bench import CLK_TCK, HOST, Bench, Conn, cpu_ticks, parse_csv

BATCH = 1000


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for {pid}")


def build_commands(kind: str, key: str, members: int) -> list[list[str]]:
    """The commands that build the collection, BATCH members each."""
    out = []
    for start in range(0, members, BATCH):
        ids = range(start, min(start + BATCH, members))
        if kind == "hash":
            out.append(["HSET", key, *(x for i in ids for x in (f"field:{i}", f"value:{i}"))])
        elif kind == "list":
            out.append(["RPUSH", key, *(f"item:{i}" for i in ids)])
        elif kind == "set":
            out.append(["SADD", key, *(f"member:{i}" for i in ids)])
        else:
            out.append(["ZADD", key, *(x for i in ids for x in (str(i), f"member:{i}"))])
    return out


def probes(members: int) -> list[tuple[str, list[str]]]:
    """(label, redis-benchmark command) touching the big collections; __rand_int__ is
    redis-benchmark's random number below -r."""
    middle = str(members // 2)
    return [
        ("HGET", ["HGET", "big:hash", "field:__rand_int__"]),
        ("LINDEX middle", ["LINDEX", "big:list", middle]),
        ("LRANGE 100", ["LRANGE", "big:list", middle, str(members // 2 + 99)]),
        ("SISMEMBER", ["SISMEMBER", "big:set", "member:__rand_int__"]),
        ("ZSCORE", ["ZSCORE", "big:zset", "member:__rand_int__"]),
        ("ZRANK", ["ZRANK", "big:zset", "member:__rand_int__"]),
        ("ZRANGE 10", ["ZRANGE", "big:zset", middle, str(members // 2 + 9)]),
        ("ZADD existing", ["ZADD", "big:zset", "__rand_int__", "member:__rand_int__"]),
        # Writes that add to the big collections: their cost must not grow with the size.
        ("HSET new", ["HSET", "big:hash", "new:__rand_int__", "v"]),
        ("RPUSH", ["RPUSH", "big:list", "tail"]),
        ("SADD new", ["SADD", "big:set", "new:__rand_int__"]),
        ("ZADD new", ["ZADD", "big:zset", "__rand_int__", "new:__rand_int__"]),
    ]


class CollectionsBench(Bench):
    def build(self, port: int, pid: int, kind: str) -> dict:
        conn = Conn(port, timeout=120)
        try:
            before = rss_kib(pid)
            started = time.monotonic()
            commands = build_commands(kind, f"big:{kind}", self.args.members)
            for i in range(0, len(commands), 10):  # 10 batches in flight at once
                chunk = commands[i:i + 10]
                conn.pipeline(chunk)
            seconds = time.monotonic() - started
            after = rss_kib(pid)
        finally:
            conn.close()
        return {"seconds": seconds, "bytes_per_member": (after - before) * 1024
                / self.args.members}

    def probe(self, port: int, pid: int, command: list[str]) -> dict:
        requests = self.args.requests
        argv = ["redis-benchmark", "-h", HOST, "-p", str(port), "-n", str(requests),
                "-c", str(self.args.clients), "-r", str(self.args.members), "--csv", *command]
        before = cpu_ticks(pid)
        done = subprocess.run(argv, capture_output=True, timeout=self.args.bench_timeout,
                              check=True)
        after = cpu_ticks(pid)
        row = parse_csv(done.stdout.decode())[-1]
        return {"rps": float(row["rps"]), "p50_ms": float(row["p50_latency_ms"]),
                "cpu_us_per_req": (after - before) / CLK_TCK * 1e6 / requests}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--members", type=int, default=200_000)
    p.add_argument("--requests", type=int, default=20_000)
    p.add_argument("--clients", type=int, default=50)
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--bench-timeout", type=float, default=600.0)
    p.add_argument("--keep", action="store_true", help="keep the temp dir (logs, data)")
    args = p.parse_args(argv)
    for tool in ("redis-server", "redis-benchmark"):
        if shutil.which(tool) is None:
            p.error(f"{tool} not found on PATH")
    args.single_shards = 1
    bench = CollectionsBench(args)
    try:
        redis = bench.start_redis("redis", [])
        respkv = bench.start_respkv_single()
        servers = [(t.name, t.nodes[0].port, t.pids()[0]) for t in (redis, respkv)]
        print(f"{args.members} members per collection; build in batches of {BATCH}")
        print(f"{'type':6} {'server':7} {'build s':>8} {'bytes/member':>13}")
        built: dict[tuple[str, str], dict] = {}
        for kind in ("hash", "list", "set", "zset"):
            for name, port, pid in servers:
                built[(kind, name)] = row = bench.build(port, pid, kind)
                print(f"{kind:6} {name:7} {row['seconds']:>8.2f} "
                      f"{row['bytes_per_member']:>13.0f}", flush=True)
        samples: dict[tuple[str, str], list[dict]] = {}
        for _ in range(args.repeat):
            for label, command in probes(args.members):
                for name, port, pid in servers:
                    samples.setdefault((label, name), []).append(
                        bench.probe(port, pid, command))
        print(f"\nredis-benchmark -c {args.clients} -n {args.requests}, median of "
              f"{args.repeat} rounds; CPU = server utime+stime per request")
        print(f"{'command':14} {'redis ops/s':>11} {'respkv ops/s':>12} {'x ops':>6} "
              f"{'redis cpu us':>12} {'respkv cpu us':>13} {'x cpu':>6}")
        for label, _ in probes(args.members):
            med = {name: {m: statistics.median(r[m] for r in samples[(label, name)])
                          for m in ("rps", "p50_ms", "cpu_us_per_req")}
                   for name, _, _ in servers}
            ours, theirs = med["respkv"], med["redis"]
            print(f"{label:14} {theirs['rps']:>11.0f} {ours['rps']:>12.0f} "
                  f"{ours['rps'] / theirs['rps']:>6.2f} {theirs['cpu_us_per_req']:>12.1f} "
                  f"{ours['cpu_us_per_req']:>13.1f} "
                  f"{ours['cpu_us_per_req'] / theirs['cpu_us_per_req']:>6.2f}")
        return 0
    finally:
        bench.close()


if __name__ == "__main__":
    sys.exit(main())
