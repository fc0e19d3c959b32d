#!/usr/bin/env python3
"""Bad clients against one respkv node (and, with ``--redis``, a redis-server beside
it), each watched from the outside: the server's resident memory (VmRSS from /proc,
polled) and the worst PING round trip of another client meanwhile.

- flood: a client pipelines ``--flood-mib`` MiB of ``GET`` of a 4 KiB value (or
  ``PING``) and never reads a reply, for ``--seconds`` at most. respkv stops reading
  from it once its output backs up, so it takes in only what the buffers hold.
- subscriber: a subscriber that never reads while messages of 10 KB are published;
  at what size (bytes published) it is dropped, under the default pubsub limit
  (32mb 8mb 60).
- trickle: a 4 MB bulk sent 64 KiB at a time under client-query-buffer-limit 1mb:
  how much was sent when the connection was closed.

Every process started here is stopped by its PID at the end. Run it in a network
namespace of its own if other servers share the machine:

    python benchmarks/limits_bench.py
    python benchmarks/limits_bench.py --flood-mib 1024 --seconds 30 --redis
"""

from __future__ import annotations

import argparse
import socket
import sys
import tempfile
import threading
import time
from contextlib import ExitStack
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # testsupport/

import hiredis
import redis

from testsupport.ports import free_port
from testsupport.processes import Node, redis_server


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for {pid}")


class Watch:
    """Polls the server's RSS and times PINGs from another client, in a thread."""

    def __init__(self, port: int, pid: int) -> None:
        self.client = redis.Redis(port=port, socket_timeout=30)
        self.pid = pid
        self.before = rss_kib(pid)
        self.peak = self.before
        self.worst_ping = 0.0
        self.pings = 0
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while not self.stop.is_set():
            started = time.perf_counter()
            self.client.ping()
            self.worst_ping = max(self.worst_ping, time.perf_counter() - started)
            self.pings += 1
            self.peak = max(self.peak, rss_kib(self.pid))
            self.stop.wait(0.005)

    def done(self) -> str:
        self.stop.set()
        self.thread.join()
        self.client.close()
        return (f"RSS {self.before / 1024:.0f} -> peak {self.peak / 1024:.0f} MiB "
                f"(+{(self.peak - self.before) / 1024:.0f}), {self.pings} PINGs by another "
                f"client, worst {self.worst_ping * 1000:.1f} ms")


def flood(port: int, pid: int, mib: int, seconds: float, command: str) -> str:
    client = redis.Redis(port=port)
    client.set("flood:value", b"x" * 4096)
    client.close()
    one = hiredis.pack_command(("GET", "flood:value") if command == "get" else ("PING",))
    chunk = one * max(1, (1 << 20) // len(one))  # about 1 MiB of requests a send
    total = mib << 20
    watch = Watch(port, pid)
    sock = socket.create_connection(("127.0.0.1", port))
    sock.settimeout(0.2)
    sent = 0
    deadline = time.monotonic() + seconds
    view = memoryview(chunk)
    offset = 0
    while sent < total and time.monotonic() < deadline:
        try:
            n = sock.send(view[offset:])
        except TimeoutError:
            continue  # the server stopped reading: keep trying until the deadline
        sent += n
        offset = (offset + n) % len(chunk)
    stalled = sent < total
    line = (f"flood ({command}): {sent / (1 << 20):.1f} of {mib} MiB taken in "
            f"{'(then the server stopped reading) ' if stalled else ''}"
            f"in {seconds if stalled else 'less than ' + str(seconds)} s; {watch.done()}")
    sock.close()
    return line


def subscriber(port: int, pid: int) -> str:
    client = redis.Redis(port=port)
    stuck = socket.create_connection(("127.0.0.1", port))
    stuck.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
    stuck.sendall(hiredis.pack_command(("SUBSCRIBE", "bench")))
    stuck.recv(100)
    watch = Watch(port, pid)
    message = b"m" * 10_000
    published = 0
    started = time.monotonic()
    while client.publish("bench", message) and published < 1 << 30:
        published += len(message)
    elapsed = time.monotonic() - started
    stuck.close()
    client.close()
    return (f"subscriber: dropped after {published / (1 << 20):.1f} MiB published "
            f"({elapsed:.2f} s); {watch.done()}")


def trickle(port: int, pid: int) -> str:
    client = redis.Redis(port=port)
    saved = client.config_get("client-query-buffer-limit")
    client.config_set("client-query-buffer-limit", "1mb")
    watch = Watch(port, pid)
    sock = socket.create_connection(("127.0.0.1", port))
    sock.sendall(b"*3\r\n$3\r\nSET\r\n$8\r\ntrickled\r\n$4000000\r\n")
    sent = 0
    closed = "not closed"
    try:
        while sent < 4_000_000:
            sock.sendall(b"y" * 65536)
            sent += 65536
            time.sleep(0.005)  # a slow client: pacing, not synchronisation
        sock.settimeout(5)
        closed = "closed" if sock.recv(100) == b"" else "answered"
    except (BrokenPipeError, ConnectionResetError):
        closed = "closed"
    line = (f"trickle: 4 MB bulk under a 1 MiB query limit: {closed} after "
            f"{sent / (1 << 20):.2f} MiB sent; {watch.done()}")
    sock.close()
    client.config_set("client-query-buffer-limit", saved["client-query-buffer-limit"])
    client.close()
    return line


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--flood-mib", type=int, default=1024)
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--redis", action="store_true", help="also against redis-server")
    args = parser.parse_args()
    with ExitStack() as stack:
        base = Path(stack.enter_context(tempfile.TemporaryDirectory()))
        node = Node(free_port(), base / "n1", ["--shards", "1"]).start()
        stack.callback(node.stop)
        targets = [("respkv", node.port, node.proc.pid)]
        if args.redis:
            port = stack.enter_context(redis_server())
            pid = int(redis.Redis(port=port).info("server")["process_id"])
            targets.append(("redis-server", port, pid))
        for name, port, pid in targets:
            for command in ("get", "ping"):
                print(f"{name}: {flood(port, pid, args.flood_mib, args.seconds, command)}",
                      flush=True)
            print(f"{name}: {subscriber(port, pid)}", flush=True)
            print(f"{name}: {trickle(port, pid)}", flush=True)


if __name__ == "__main__":
    main()
