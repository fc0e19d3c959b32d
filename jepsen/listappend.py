"""The list-append workload (Elle's): transactions of appends and reads on lists.

Each ``txn`` op is one ``MULTI`` ... ``EXEC`` of 1 to ``--max-txn-length``
micro-ops, each ``RPUSH k v`` (``["append", k, v]``, v unique over the run)
or ``LRANGE k 0 -1`` (``["r", k, list]``), on the keys ``{la}0, {la}1, ...``:
one hash tag, so one Raft group, and every transaction is one log entry of it.
A few keys (``--active-keys``) are in use at a time; a key that has had
``--max-writes-per-key`` appends is retired for a fresh one, which keeps the
lists, the reads and the dependency graph small while every key still sees
contention. The op's ``value`` holds the micro-ops as sent (reads with None),
its ``result`` the same with what each read returned, and ``extra["lengths"]``
the length each RPUSH answered.

Transactions go to the tag's leader (``MOVED`` is followed: the refused
transaction did nothing, so it is the same op). After recovery every key is
read on every node, one ``LRANGE`` op per key and node (a read of one key is
atomic; several keys read one after the other would not be). jepsen.elle
checks the history.
"""

from __future__ import annotations

import argparse
import sys
import threading
from collections import Counter
from typing import Any

import redis

from jepsen.elle import check_list_append
from jepsen.history import FAIL, OK, History, Op
from jepsen.nodes import JCluster
from jepsen.workloads import BaseClient, Checked, TxnClient, Workload, read_retrying

TAG = "{la}"


def key_name(number: int) -> str:
    return f"{TAG}{number}"


class KeyPool:
    """The keys in use and the values appended, shared by the workload's clients."""

    def __init__(self, active: int, max_writes: int) -> None:
        self.lock = threading.Lock()
        self.active = list(range(active))
        self.next_key = active
        self.max_writes = max_writes
        self.writes: Counter[int] = Counter()
        self.last_value = 0

    def pick(self, rng: Any) -> int:
        with self.lock:
            return rng.choice(self.active)

    def append(self, key: int) -> int:
        """A fresh value to append to ``key``; retires the key once it has had its
        share of appends."""
        with self.lock:
            self.last_value += 1
            self.writes[key] += 1
            if self.writes[key] >= self.max_writes and key in self.active:
                self.active[self.active.index(key)] = self.next_key
                self.next_key += 1
            return self.last_value

    def used(self) -> list[str]:
        with self.lock:
            return [key_name(k) for k in range(self.next_key)]


def decode_list(reply: object) -> list[int] | None:
    if not isinstance(reply, list):
        return None
    try:
        return [int(v) for v in reply]
    except (TypeError, ValueError):
        return None


class ListAppendClient(TxnClient):
    def __init__(self, number: int, history: History, names: dict[int, str], home: int,
                 seed: int, stop: threading.Event, pool: KeyPool, max_length: int = 4,
                 timeout: float = 1.5, think: float = 0.002) -> None:
        super().__init__(number, history, names, home, seed, stop, timeout, think)
        self.pool = pool
        self.max_length = max_length

    def choose(self) -> str:
        return "txn"

    def generate(self) -> list[list[Any]]:
        mops: list[list[Any]] = []
        for _ in range(self.random.randint(1, self.max_length)):
            key = self.pool.pick(self.random)
            if self.random.random() < 0.5:
                mops.append(["append", key_name(key), self.pool.append(key)])
            else:
                mops.append(["r", key_name(key), None])
        return mops

    def one(self, kind: str) -> Op:
        mops = self.generate()
        commands = [("RPUSH", k, v) if f == "append" else ("LRANGE", k, 0, -1)
                    for f, k, v in mops]
        op = self.history.invoke(self.number, "txn", TAG, mops,
                                 node=self.node_name(self.target))
        for _hop in range(3):
            op.node = self.node_name(self.target)
            result = self.transaction(self.target, commands)
            if result.kind == "moved" and result.port in self.names:
                self.target = result.port
                continue
            break
        if result.kind in ("moved", "aborted"):  # nothing ran (no WATCH: never aborted)
            result.kind = "fail"
        if result.kind != "ok":
            return self.settle(op, result)
        done: list[list[Any]] = []
        lengths: list[int | None] = []
        for (f, k, v), reply in zip(mops, result.replies, strict=True):
            if f == "append":
                if not isinstance(reply, int):
                    result.kind, result.error = "bad", f"RPUSH {k} answered {reply!r}"
                done.append([f, k, v])
                lengths.append(reply if isinstance(reply, int) else None)
            else:
                values = decode_list(reply)
                if values is None:
                    result.kind, result.error = "bad", f"LRANGE {k} answered {reply!r}"
                done.append([f, k, values])
                lengths.append(None)
        op.extra["lengths"] = lengths
        return self.settle(op, result, done)


class ListAppendWorkload(Workload):
    name = "list-append"

    def __init__(self, args: argparse.Namespace) -> None:
        super().__init__(args)
        self.pool = KeyPool(args.active_keys, args.max_writes_per_key)

    def clients(self, first: int, history: History, names: dict[int, str],
                cluster: JCluster, stop: threading.Event) -> list[BaseClient]:
        args = self.args
        return [ListAppendClient(first + i, history, names,
                                 cluster.nodes[i % len(cluster.nodes)].port, args.seed, stop,
                                 self.pool, max_length=args.max_txn_length,
                                 timeout=args.timeout, think=args.think)
                for i in range(args.clients)]

    def final_reads(self, cluster: JCluster, history: History, timeout: float) -> None:
        keys = self.pool.used()
        for node in cluster.nodes:
            try:
                for key in keys:
                    op = history.invoke(-1, "txn", TAG, [["r", key, None]], node=node.node_id)
                    try:
                        reply = read_retrying(node, timeout, "LRANGE", key, 0, -1)
                    except (redis.RedisError, OSError) as error:
                        history.complete(op, FAIL, error=str(error)[:200])
                        raise
                    values = decode_list(reply)
                    history.complete(op, OK, [["r", key, values]] if values is not None
                                     else f"BAD:LRANGE {key} answered {reply!r}")
                self.read_nodes.add(node.node_id)
            except (redis.RedisError, OSError) as error:
                print(f"final read on {node.node_id} failed: {error}", file=sys.stderr)

    def check(self, ops: list[Op]) -> Checked:
        result = check_list_append(ops)
        problems = []
        if not result.valid:
            first = result.problems()[0]
            problems.append(f"list-append: {', '.join(result.kinds)}; first: {first}")
        return Checked(result.valid, {"list_append": result.summary()}, problems,
                       result.problems()[:60])
