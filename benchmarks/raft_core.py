"""Raft core throughput: a 3-node cluster in one process, in-memory network and storage.

    python benchmarks/raft_core.py [--seconds 2] [--codec]

Each round the leader takes one batch of proposals, then every node carries
out its Ready (persist to a list, send, apply, advance) and every message is
delivered, so several batches are in flight (pipelined) at once. Reports
committed entries per second (committed = applied on the leader) and core CPU
time per committed entry, for batches of 1, 16 and 256 proposals of 100 bytes.
With --codec every message is also encoded and decoded, as over a socket.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

from respkv.raft.codec import decode_message, encode_message
from respkv.raft.core import Config, RaftCore, Role

IDS = ("n1", "n2", "n3")


class Node:
    __slots__ = ("applied", "core", "log")

    def __init__(self, nid: str, seed: int) -> None:
        self.core = RaftCore(Config(node_id=nid, voters=IDS, seed=seed, pre_vote=False))
        self.log: list = []
        self.applied = 0


def run(batch: int, seconds: float, codec: bool) -> tuple[float, float, int]:
    nodes = {nid: Node(nid, i) for i, nid in enumerate(IDS)}
    net: list = []

    def pump() -> None:
        for n in nodes.values():
            c = n.core
            if c.has_ready():
                rd = c.ready()
                net.extend(rd.eager_messages)
                if rd.entries:
                    del n.log[rd.entries[0].index - 1 :]
                    n.log.extend(rd.entries)
                net.extend(rd.messages)
                if rd.committed_entries:
                    n.applied = rd.committed_entries[-1].index
                c.advance(rd)
        msgs = net[:]
        net.clear()
        for m in msgs:
            if codec:
                m = decode_message(encode_message(m))
            nodes[m.to].core.step(m)

    leader = nodes["n1"].core
    leader.campaign()
    for _ in range(10):
        pump()
    assert leader.role == Role.LEADER
    data = [b"x" * 100] * batch
    start_applied = nodes["n1"].applied
    t_wall = time.perf_counter()
    t_cpu = time.process_time()
    deadline = t_wall + seconds
    rounds = 0
    while True:
        if batch == 1:
            leader.propose(data[0])
        else:
            leader.propose_batch(data)
        pump()
        rounds += 1
        if rounds % 16 == 0 and time.perf_counter() > deadline:
            break
    for _ in range(10):  # drain
        pump()
    wall = time.perf_counter() - t_wall
    cpu = time.process_time() - t_cpu
    done = nodes["n1"].applied - start_applied
    for n in nodes.values():  # all three agree
        assert n.applied == nodes["n1"].applied
    return done / wall, cpu / done * 1e6, done


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=2.0)
    ap.add_argument("--codec", action="store_true", help="encode+decode every message")
    a = ap.parse_args()
    print(f"3-node in-memory cluster, 100-byte proposals{', with codec' if a.codec else ''}")
    print(f"{'batch':>6} {'committed/s':>12} {'CPU us/entry':>13} {'entries':>9}")
    for batch in (1, 16, 256):
        rate, us, n = run(batch, a.seconds, a.codec)
        print(f"{batch:>6} {rate:>12,.0f} {us:>13.2f} {n:>9}")


if __name__ == "__main__":
    main()
