"""The floor under every Raft message on this machine: a bare loopback round trip.

Two processes, each an asyncio Protocol on uvloop (as respkv's transport is), bounce one
small message back and forth, one in flight at a time, as a read round's heartbeat and
its answer do. No Raft, no codec, no RESP: what it costs is the kernel's share (a
loopback TCP send, the wake-up of the process that sleeps in epoll, the receive) plus the
few lines of Python that echo.

Prints the round-trip time and the CPU each side spent per round trip (utime + stime from
getrusage / /proc). Compare the CPU with respkv's cost per read round:
``benchmarks/server_bench.py --mode cluster --read-modes`` prints GET with read-consistency
stale, lease and linearizable side by side; the difference between lease and linearizable,
times the reads per round (INFO raft: reads_in_rounds / read_rounds), is a round's CPU.

    python benchmarks/hop_floor.py [--round-trips 20000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import uvloop

MESSAGE = b"x" * 60  # about a heartbeat frame


class Echo(asyncio.Protocol):
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.transport.write(data)


class Bouncer(asyncio.Protocol):
    def __init__(self, round_trips: int, done: asyncio.Future[None]) -> None:
        self.left = round_trips
        self.done = done

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport
        transport.write(MESSAGE)

    def data_received(self, data: bytes) -> None:
        self.left -= 1
        if self.left:
            self.transport.write(data)
        elif not self.done.done():
            self.done.set_result(None)


async def serve(port_file: str) -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(Echo, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    partial = Path(port_file + ".partial")
    partial.write_text(str(port))
    partial.replace(port_file)  # whole or absent: the other side polls for it
    await asyncio.Event().wait()  # until killed


async def bounce(port: int, round_trips: int) -> tuple[float, float]:
    """Seconds per round trip and this process' CPU seconds per round trip."""
    loop = asyncio.get_running_loop()
    done: asyncio.Future[None] = loop.create_future()
    start = time.perf_counter()
    before = resource.getrusage(resource.RUSAGE_SELF)
    transport, _ = await loop.create_connection(
        lambda: Bouncer(round_trips, done), "127.0.0.1", port)
    transport.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    await done
    after = resource.getrusage(resource.RUSAGE_SELF)
    elapsed = time.perf_counter() - start
    transport.close()
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return elapsed / round_trips, cpu / round_trips


def cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--round-trips", type=int, default=20000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--serve", metavar="PORT_FILE", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        uvloop.run(serve(args.serve))
        return 0
    port_file = Path(tempfile.gettempdir()) / f"hop_floor.{os.getpid()}.port"
    echo = subprocess.Popen([sys.executable, __file__, "--serve", str(port_file)])
    try:
        deadline = time.monotonic() + 10
        while not port_file.exists():
            if time.monotonic() > deadline or echo.poll() is not None:
                raise RuntimeError("the echo process did not start")
            time.sleep(0.02)
        port = int(port_file.read_text())
        rtts, mine, theirs = [], [], []
        for _ in range(args.repeat):
            echo_before = cpu_seconds(echo.pid)
            rtt, cpu = uvloop.run(bounce(port, args.round_trips))
            rtts.append(rtt)
            mine.append(cpu)
            theirs.append((cpu_seconds(echo.pid) - echo_before) / args.round_trips)
        print(f"loopback round trip, one message in flight, {args.round_trips} x "
              f"{args.repeat} (medians):")
        print(f"  round-trip time                   {statistics.median(rtts) * 1e6:7.1f} us")
        sender, echoer = statistics.median(mine), statistics.median(theirs)
        print(f"  CPU per round trip, sender side   {sender * 1e6:7.1f} us")
        print(f"  CPU per round trip, echo side     {echoer * 1e6:7.1f} us")
        print(f"  CPU per round trip, both          {(sender + echoer) * 1e6:7.1f} us")
    finally:
        echo.kill()
        echo.wait()
        port_file.unlink(missing_ok=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
