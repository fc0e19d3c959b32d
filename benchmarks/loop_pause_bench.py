#!/usr/bin/env python3
"""How long KEYS, SCAN, RANDOMKEY and DBSIZE over a big keyspace stall the event loop.

Starts one respkv node (its own temporary dir, a free loopback port), loads
``--keys`` keys (2,000,000 by default) with pipelined MSETs, then runs each phase
while a second process sends PING every 5 ms on its own connection and records
every round trip:

- ``idle``: nothing else, the baseline;
- ``KEYS *`` and ``KEYS <pattern>`` (``--pattern``, ~1/10 of the keys by default);
- ``SCAN COUNT 1000``: a full iteration (``--scan-pages`` stops it early: an older
  respkv paid a pass over every key per page);
- ``RANDOMKEY x100`` and ``DBSIZE x100``;
- ``SET``: redis-benchmark's SET throughput (``-P 16``), over the loaded keys
  (overwrites: the keys are named as redis-benchmark names them) and over new
  keys (each one an insert into the SCAN index).

For each phase it prints the wall time, the worst PING round trip that overlapped
it, and INFO's ``max_loop_pause_ms`` (reset with CONFIG RESETSTAT before the
phase; ``-`` where the server has no such field). Also the node's RSS after the
load, per key. The phases start once the node has settled after the load (its
store still writes the last keys out for a while). The node is stopped by its
PID at the end.

    python benchmarks/loop_pause_bench.py
    python benchmarks/loop_pause_bench.py --keys 200000 --scan-pages 5
"""

from __future__ import annotations

import argparse
import multiprocessing
import re
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from multiprocessing.connection import Connection
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from testsupport.ports import free_port
from testsupport.processes import Node

PING_EVERY = 0.005


def pinger(port: int, out: Connection, stop: Connection) -> None:
    """PING every 5 ms until told to stop; send back (sent, latency) pairs."""
    sock = socket.create_connection(("127.0.0.1", port))
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    samples: list[tuple[float, float]] = []
    next_at = time.monotonic()
    while not stop.poll():
        now = time.monotonic()
        if now < next_at:
            time.sleep(next_at - now)  # pacing the probe, not synchronisation
        sent = time.monotonic()
        sock.sendall(b"PING\r\n")
        reply = b""
        while not reply.endswith(b"\r\n"):
            reply += sock.recv(64)
        samples.append((sent, time.monotonic() - sent))
        next_at = sent + PING_EVERY
    sock.close()
    out.send(samples)


def rss_kib(pid: int) -> int:
    text = Path(f"/proc/{pid}/status").read_text()
    found = re.search(r"VmRSS:\s+(\d+)", text)
    return int(found[1]) if found else 0


def load(client, count: int, batch: int = 1000) -> None:  # type: ignore[no-untyped-def]
    pipe = client.pipeline(transaction=False)
    for start in range(0, count, batch):
        pipe.mset({b"key:%012d" % i: b"v" for i in range(start, min(start + batch, count))})
        if len(pipe) >= 20:
            pipe.execute()
    pipe.execute()


def max_pause(client) -> str:  # type: ignore[no-untyped-def]
    value = client.info("stats").get("max_loop_pause_ms")
    return "-" if value is None else str(value)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--keys", type=int, default=2_000_000)
    parser.add_argument("--pattern", default="*7", help="~1/10 of the keys by default")
    parser.add_argument("--scan-pages", type=int, default=0, help="0: the whole scan")
    parser.add_argument("--shards", type=int, default=0, help="0: the server's default")
    parser.add_argument("--set-requests", type=int, default=200_000)
    args = parser.parse_args()

    base = Path(tempfile.mkdtemp(prefix="loop-pause-"))
    extra = ["--shards", str(args.shards)] if args.shards else []
    node = Node(free_port(), base / "n1", args=extra).start()
    assert node.proc is not None
    try:
        client = node.client(socket_timeout=600)
        rss_before = rss_kib(node.proc.pid)
        started = time.monotonic()
        load(client, args.keys)
        loaded = time.monotonic() - started
        assert client.dbsize() == args.keys
        rss_after = rss_kib(node.proc.pid)
        print(f"loaded {args.keys} keys in {loaded:.1f} s "
              f"({args.keys / loaded:,.0f} keys/s); RSS +{(rss_after - rss_before) / 1024:.0f} MiB"
              f" ({(rss_after - rss_before) * 1024 / args.keys:.0f} bytes/key)")

        def scan() -> int:
            cursor, pages, seen = 0, 0, 0
            while True:
                cursor, page = client.scan(cursor, count=1000)
                pages += 1
                seen += len(page)
                if cursor == 0 or pages == args.scan_pages:
                    return seen

        settle_until = time.monotonic() + 60
        if max_pause(client) == "-":  # a server without the field: give it 10 s
            time.sleep(10)
        while time.monotonic() < settle_until:  # until a quiet second (or a minute)
            client.config_resetstat()
            time.sleep(1)
            pause = max_pause(client)
            if pause == "-" or int(pause) < 50:
                break
        print(f"settled {time.monotonic() - started - loaded:.0f} s after the load")

        def set_bench(key_range: int) -> str:
            out = subprocess.run(
                ["redis-benchmark", "-p", str(node.port), "-t", "set", "-n",
                 str(args.set_requests), "-P", "16", "-r", str(key_range), "-q"],
                capture_output=True, text=True, check=True, timeout=600).stdout
            found = re.search(r"([\d.]+) requests per second", out.replace("\r", "\n"))
            return f"{float(found[1]):,.0f} SET/s" if found else out.strip()[-60:]

        phases: list[tuple[str, Callable[[], object]]] = [
            ("idle (1 s)", lambda: time.sleep(1)),
            ("KEYS *", lambda: f"{len(client.keys('*'))} keys"),
            (f"KEYS {args.pattern}", lambda: f"{len(client.keys(args.pattern))} keys"),
            ("SCAN COUNT 1000" + (f" ({args.scan_pages} pages)" if args.scan_pages else ""),
             lambda: f"{scan()} keys"),
            ("RANDOMKEY x100", lambda: [client.randomkey() for _ in range(100)] and "ok"),
            ("DBSIZE x100", lambda: [client.dbsize() for _ in range(100)][-1]),
            ("SET -P 16, loaded keys", lambda: set_bench(args.keys)),
            ("SET -P 16, new keys", lambda: set_bench(10**11)),
        ]
        results = []
        for name, run in phases:
            stop_recv, stop_send = multiprocessing.Pipe(duplex=False)
            out_recv, out_send = multiprocessing.Pipe(duplex=False)
            probe = multiprocessing.Process(target=pinger, args=(node.port, out_send, stop_recv))
            client.config_resetstat()
            probe.start()
            time.sleep(0.2)  # let the probe take its first samples before the phase
            begin = time.monotonic()
            what = run()
            end = time.monotonic()
            pause = max_pause(client)
            stop_send.send(True)
            samples = out_recv.recv()
            probe.join(10)
            worst = max((lat for sent, lat in samples if sent + lat >= begin and sent <= end),
                        default=0.0)
            results.append((name, end - begin, worst * 1000, pause, what))
        print(f"\n{'phase':<32} {'wall s':>8} {'worst PING ms':>14} {'max_loop_pause_ms':>18}"
              "  result")
        for name, wall, worst, pause, what in results:
            print(f"{name:<32} {wall:>8.2f} {worst:>14.1f} {pause:>18}  {what}")
    finally:
        node.stop(timeout=120)


if __name__ == "__main__":
    main()
