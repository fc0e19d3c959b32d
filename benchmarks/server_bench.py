#!/usr/bin/env python3
"""respkv against a real redis-server, side by side, in one run.

Starts, on free loopback ports and in a temporary directory:

- ``redis-aof``: redis-server with ``appendonly yes``, ``appendfsync always``, no RDB;
- ``redis``: redis-server with its default persistence (``appendonly no``);
- ``respkv``: a respkv single node (``--mode single``; the server's default number of
  shards, or ``--single-shards N``);
- ``respkv-3``: a sharded respkv 3-node cluster (``--mode cluster``): ``--shards N``
  Raft groups g0..g{N-1} (default 3), group i owning an even contiguous share of the
  16384 hash slots; every node is in every group, and the leaders are spread (group i
  prefers the i-th node by id: n1 leads g0, n2 g1, n3 g2). n1 bootstraps, n2 and n3
  ``--join`` it; the benchmark starts once every group has one leader all nodes agree
  on, all three voters, every node caught up, and (with N >= 3) every node leading a
  group.

then runs redis-benchmark against each (SET and GET, 50 clients, without and with
``-P 16``; with ``--types`` also LPUSH, RPUSH, LPOP, RPOP, SADD, HSET, SPOP, ZADD,
ZPOPMIN, LRANGE_100 and MSET, writes compared with redis-aof and reads with redis),
``--repeat`` times, interleaving the servers inside each round so that the
noise of a shared machine falls on all of them alike. On the sharded cluster, SET and
GET run with ``redis-benchmark --cluster --threads 1`` pointed at n1 (each key sent to the leader
of its group, following the slot map), and "GET 1 node" runs without ``--cluster``
against n2 alone: the keys of groups n2 does not lead (2/3 of them with 3 shards) are
follower reads, which is what measures their cost. With ``--shards 1`` (one group, one
leader) SET and GET run on the leader and GET also on a follower. It reports medians
of ops/s, p50, p99 and the server CPU per request (utime+stime from /proc/PID/stat,
summed over the three nodes of the cluster), the ratios respkv / redis-server: SET
against redis-aof (every write on disk before the reply, as respkv), GET against redis,
with the same pipelining, and the leader changes during the benchmarks (every node's
count of leader changes, summed over groups, and each group's term, before and after).

``--mode cluster`` (and ``both``) also measures failover: with a writer running on the
keys of one group (``failover:{fo}:N``, one hash tag), kill -9 that group's leader,
time to the next write acknowledged by another node (following MOVED), restart the
killed node on its dir, wait until the whole cluster is healthy again (every group,
leaders spread), ``--failovers`` times.

Every process started here is stopped by its PID at the end, also on Ctrl-C.

    python benchmarks/server_bench.py --mode both
    python benchmarks/server_bench.py --mode cluster --shards 1
    python benchmarks/server_bench.py --quick --json /tmp/bench.json
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import io
import json
import os
import platform
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import hiredis

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # testsupport/

from respkv.replication.peerauth import new_token
from respkv.replication.slots import key_slot, slot_ranges
from testsupport.info import agreed_leaders, group_lines, members, parse_info
from testsupport.ports import free_ports
from testsupport.processes import Processes
from testsupport.waiting import wait_for

CLK_TCK = os.sysconf("SC_CLK_TCK")
HOST = "127.0.0.1"

# The speed goals: (respkv target, test, baseline target, minimum ratio, what it means).
# A test also matches the labels that add a "(...)" note to it ("GET 1 node (2/3 follower)").
# On the sharded cluster, SET and GET are the redis-benchmark --cluster rows.
TARGETS = [
    ("respkv", "SET", "redis-aof", 0.5, "single node: SET, 50 clients, vs appendfsync always"),
    ("respkv", "GET", "redis", 0.7, "single node: GET, 50 clients, vs in-memory redis"),
    ("respkv", "GET -P16", "redis", 0.3, "single node: GET -P 16 vs in-memory redis"),
    ("respkv-3", "SET", "redis-aof", 0.3,
     "cluster SET (key's group leader) vs appendfsync always"),
    ("respkv-3", "GET", "redis", 0.6, "linearizable GET (key's group leader) vs redis"),
    ("respkv-3", "GET follower", "redis", 0.6, "linearizable GET (follower) vs redis"),
    ("respkv-3", "GET 1 node", "redis", 0.6,
     "linearizable GET on one node (mostly follower reads) vs redis"),
]
# --types: redis-benchmark's tests of the other data types. Writes are compared with
# redis-aof (on disk before the reply, as respkv), reads with redis.
TYPE_TESTS = ("lpush", "rpush", "lpop", "rpop", "sadd", "hset", "spop", "zadd", "zpopmin",
              "lrange_100", "mset")
WRITE_TESTS = frozenset({"set", "incr", "lpush", "rpush", "lpop", "rpop", "sadd", "hset",
                         "spop", "zadd", "zpopmin", "mset"})
# --read-modes: cluster GET rows beside the default (linearizable: from the leader's
# lease): a ReadIndex round for every batch, and no check at all
READ_MODES = ("strict", "stale")
FAILOVER_KEY = "failover:{fo}:"  # one hash tag: every key of the writer in one group
FAILOVER_TARGET_S = 1.5
POLL_S = 0.05  # waiting on the servers: INFO less often than the tests poll


def cpu_ticks(pid: int) -> int:
    """utime + stime of a process (all its threads), in clock ticks."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])  # fields 14 and 15 of proc(5)


# ---------------------------------------------------------------------------- tiny RESP client


class RespError(Exception):
    pass


class Conn:
    """A minimal blocking RESP client: no retries, no hidden reconnects (redis-py retries
    by default, which would blur failover timing)."""

    def __init__(self, port: int, timeout: float = 2.0) -> None:
        self.port = port
        self.sock = socket.create_connection((HOST, port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.reader = hiredis.Reader()

    def call(self, *args: str | bytes):
        self.sock.sendall(hiredis.pack_command(args))
        while True:
            reply = self.reader.gets()
            if reply is not False:
                break
            data = self.sock.recv(65536)
            if not data:
                raise ConnectionError("connection closed")
            self.reader.feed(data)
        if isinstance(reply, hiredis.ReplyError):
            raise RespError(str(reply))
        return reply

    def pipeline(self, commands: list[list[str]]) -> list:
        """Send every command, then read their replies in order."""
        self.sock.sendall(b"".join(hiredis.pack_command(tuple(c)) for c in commands))
        replies = []
        while len(replies) < len(commands):
            reply = self.reader.gets()
            if reply is False:
                data = self.sock.recv(65536)
                if not data:
                    raise ConnectionError("connection closed")
                self.reader.feed(data)
                continue
            if isinstance(reply, hiredis.ReplyError):
                raise RespError(str(reply))
            replies.append(reply)
        return replies

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.close()


def command(port: int, *args: str, timeout: float = 2.0):
    conn = Conn(port, timeout)
    try:
        return conn.call(*args)
    finally:
        conn.close()


def info(port: int, section: str) -> dict[str, str]:
    return parse_info(command(port, "INFO", section))


def group_of(key: str, shards: int) -> str:
    slot = key_slot(key.encode())
    index = next(i for i, (first, last) in enumerate(slot_ranges(shards))
                 if first <= slot <= last)
    return f"g{index}"


def parse_csv(text: str) -> list[dict[str, str]]:
    """redis-benchmark --csv rows. With --cluster it first prints the masters it found
    ("Cluster has 3 master nodes: ..."): the CSV starts at its "test" header line."""
    lines = text.splitlines()
    start = next((i for i, line in enumerate(lines) if line.startswith('"test"')), None)
    if start is None:
        return []
    return list(csv.DictReader(io.StringIO("\n".join(lines[start:]))))


# ---------------------------------------------------------------------------- servers


def respkv_command() -> list[str]:
    """The respkv of this checkout (a worktree's, not whatever an installed copy or the
    ``respkv`` on PATH points at)."""
    root = str(Path(__file__).resolve().parent.parent)
    return [sys.executable, "-c", f"import sys; sys.path.insert(0, {root!r}); "
            "from respkv.cli import main; sys.exit(main())"]


@dataclass
class Node:
    name: str
    port: int
    argv: list[str]
    log: Path
    proc: subprocess.Popen | None = None


@dataclass
class Target:
    """One thing redis-benchmark runs against: a redis-server, a node, or a cluster."""

    name: str
    kind: str  # redis | respkv | cluster
    nodes: list[Node] = field(default_factory=list)
    shards: int = 1  # Raft groups (respkv), from INFO raft

    def pids(self) -> list[int]:
        return [n.proc.pid for n in self.nodes if n.proc and n.proc.poll() is None]


class Bench:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.procs = Processes()
        self.dir = Path(tempfile.mkdtemp(prefix="respkv-bench-"))
        self.bench_proc: subprocess.Popen | None = None
        self.token = new_token()  # the cluster's (respkv.replication.peerauth)

    # -- starting

    def start_redis(self, name: str, persistence: list[str]) -> Target:
        (port,) = free_ports(1)
        d = self.dir / name
        d.mkdir()
        argv = ["redis-server", "--port", str(port), "--bind", HOST, "--dir", str(d),
                "--daemonize", "no", "--logfile", "", *persistence]
        node = Node(name, port, argv, self.dir / f"{name}.log")
        node.proc = self.procs.start(argv, node.log)
        wait_for(lambda: command(port, "PING") == b"PONG", 15, f"{name} to answer PING", POLL_S)
        return Target(name, "redis", [node])

    def respkv_node(self, node_id: str, join: int | None = None,
                    shards: int | None = None) -> Node:
        port, raft_port = free_ports(2)
        argv = [*respkv_command(), "server", "--node-id", node_id,
                "--port", str(port), "--raft-port", str(raft_port),
                "--dir", str(self.dir / node_id), "--log-level", "warning"]
        if shards is not None:  # a joining node takes the cluster's: same value anyway
            argv += ["--shards", str(shards)]
        if node_id.startswith("n"):  # the cluster's nodes: n1 bootstraps with the token
            argv += ["--join-token", self.token]
        if join is not None:
            argv += ["--join", f"{HOST}:{join}"]
        elif node_id.startswith("n"):
            argv += ["--bootstrap"]
        return Node(node_id, port, argv, self.dir / f"{node_id}.log")

    def launch(self, node: Node) -> None:
        node.proc = self.procs.start(node.argv, node.log)

    @staticmethod
    def leads_all(port: int) -> bool:
        """The node leads every one of its groups (a node that bootstrapped alone)."""
        raft = info(port, "raft")
        groups = group_lines(raft)
        return bool(groups) and all(g.get("role") == "leader" for g in groups.values())

    def start_respkv_single(self) -> Target:
        node = self.respkv_node("s1", shards=self.args.single_shards)
        self.launch(node)
        wait_for(lambda: self.leads_all(node.port), 30, "respkv single node to lead every group",
                 POLL_S)
        shards = int(info(node.port, "raft")["raft_shards"])
        return Target("respkv", "respkv", [node], shards)

    def start_cluster(self) -> Target:
        n1 = self.respkv_node("n1", shards=self.args.shards)
        self.launch(n1)
        wait_for(lambda: self.leads_all(n1.port), 30, "n1 to lead every group", POLL_S)
        nodes = [n1]
        for node_id in ("n2", "n3"):
            node = self.respkv_node(node_id, join=n1.port, shards=self.args.shards)
            self.launch(node)
            nodes.append(node)
            wait_for(lambda nid=node_id: all(
                nid in members(g.get("voters", ""))
                for g in group_lines(info(n1.port, "raft")).values()),
                60, f"{node_id} to be a voter of every group", 0.1)
        shards = int(info(n1.port, "raft")["raft_shards"])
        if shards != self.args.shards:
            raise RuntimeError(f"the cluster has {shards} shards, asked for {self.args.shards}")
        target = Target("respkv-3", "cluster", nodes, shards)
        self.wait_cluster_healthy(target)
        return target

    def wait_cluster_healthy(self, target: Target, timeout: float = 60.0,
                             slack: int = 0) -> dict[str, Node]:
        """All nodes up and, in every group: all three voters, one leader everyone agrees
        on, every node applied up to that leader's commit index (less ``slack`` entries,
        for when a writer keeps the commit index moving). With at least as many groups as
        nodes, also waits until the leaders are spread (every node leads a group: the
        balancer hands group i to the i-th node a few seconds after it caught up).
        Returns {group: its leader}."""
        ids = {n.name for n in target.nodes}

        def healthy():
            infos = {n.name: info(n.port, "raft") for n in target.nodes}
            by_name = agreed_leaders(infos)
            if by_name is None or len(by_name) != target.shards:
                return None
            views = {name: group_lines(raft) for name, raft in infos.items()}
            leaders = {g: next(n for n in target.nodes if n.name == name)
                       for g, name in by_name.items()}
            for g, leader in leaders.items():
                commit = int(views[leader.name][g]["commit_index"])
                for view in views.values():
                    if members(view[g].get("voters", "")) != ids:
                        return None
                    if int(view[g].get("applied_index", 0)) < commit - slack:
                        return None
            if len(leaders) >= len(target.nodes) and {n.name for n in leaders.values()} != ids:
                return None
            return leaders

        return wait_for(healthy, timeout, "the cluster to be healthy", 0.1)

    def group_views(self, target: Target) -> dict[str, dict[str, dict[str, str]]]:
        """{node: {group: fields}} of the nodes that answer."""
        views = {}
        for n in target.nodes:
            with contextlib.suppress(OSError, RespError):
                views[n.name] = group_lines(info(n.port, "raft"))
        return views

    def leader_changes(self, target: Target) -> dict:
        """Every node's count of leader changes, summed over the groups and the nodes,
        and the highest term of each group any node knows."""
        views = self.group_views(target)
        terms: dict[str, int] = {}
        for groups in views.values():
            for g, fields in groups.items():
                terms[g] = max(terms.get(g, 0), int(fields.get("term", 0)))
        return {"leader_changes": sum(int(f.get("leader_changes", 0))
                                      for groups in views.values() for f in groups.values()),
                "terms": terms}

    # -- benchmarking

    def redis_benchmark(self, port: int, test: str, requests: int, pipeline: int,
                        pids: list[int], cluster: bool = False,
                        extra: tuple[str, ...] = ()) -> dict:
        """One redis-benchmark run; ``extra``: more of its flags (--tls ...)."""
        argv = ["redis-benchmark", "-h", HOST, "-p", str(port), "-t", test.lower(),
                "-n", str(requests), "-c", str(self.args.clients), "-P", str(pipeline),
                "-r", str(self.args.keyspace), "-d", str(self.args.data_size), "--csv",
                *extra]
        if cluster:
            # --cluster alone runs a thread per master whose loop stops on a 250 ms timer:
            # a run's time came out rounded up to whole 250 ms steps (a GET run of 0.43 s
            # counted as 0.5 s). One thread stops when the last reply is in.
            argv += ["--cluster", "--threads", "1"]
        before = [cpu_ticks(p) for p in pids]
        # redis-benchmark's own CPU (it takes a core at 50 clients): children reaped
        # during the run, which is redis-benchmark alone (the servers are still running)
        client_before = resource.getrusage(resource.RUSAGE_CHILDREN)
        self.bench_proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        try:
            out, err = self.bench_proc.communicate(timeout=self.args.bench_timeout)
        except BaseException:
            self.bench_proc.kill()
            self.bench_proc.wait()
            raise
        finally:
            rc = self.bench_proc.returncode
            self.bench_proc = None
        after = [cpu_ticks(p) for p in pids]
        client_after = resource.getrusage(resource.RUSAGE_CHILDREN)
        client_s = (client_after.ru_utime - client_before.ru_utime
                    + client_after.ru_stime - client_before.ru_stime)
        rows = parse_csv(out.decode())
        if rc != 0 or not rows:
            raise RuntimeError(f"redis-benchmark failed ({rc}): {err.decode()[-500:]} "
                               f"{out.decode()[-500:]}")
        notes = [line for line in err.decode().splitlines() if line.strip()]
        if notes:  # errors the server answered (MOVED, TRYAGAIN...), reconnections
            print(f"    redis-benchmark -p {port} {test} stderr ({len(notes)} lines): "
                  f"{notes[0][:160]}", flush=True)
        row = rows[-1]
        ticks = sum(a - b for a, b in zip(after, before, strict=True))
        return {
            "rps": float(row["rps"]),
            "p50_ms": float(row["p50_latency_ms"]),
            "p99_ms": float(row["p99_latency_ms"]),
            "cpu_us_per_req": ticks / CLK_TCK * 1e6 / requests,
            "client_cpu_us_per_req": client_s * 1e6 / requests,
        }

    def read_consistency(self, target: Target, mode: str) -> None:
        """Set every node's server-wide read-consistency (redis-benchmark's
        connections take it when they connect)."""
        for node in target.nodes:
            command(node.port, "CONFIG", "SET", "read-consistency", mode)

    def tests_for(self, target: Target) -> list[tuple[str, str, int, int, bool]]:
        """(label, redis-benchmark test, port, pipeline, --cluster) for a target."""
        if target.kind != "cluster":
            port = target.nodes[0].port
            base = [("SET", "set", port, 1, False), ("GET", "get", port, 1, False)]
            return [*base, ("SET -P16", "set", port, 16, False),
                    ("GET -P16", "get", port, 16, False), *self.type_tests(port, False)]
        leaders = self.wait_cluster_healthy(target)
        if target.shards == 1:  # one group: one leader, two followers
            leader = leaders["g0"]
            follower = next(n for n in target.nodes if n is not leader)
            return [("SET", "set", leader.port, 1, False), ("GET", "get", leader.port, 1, False),
                    ("GET follower", "get", follower.port, 1, False),
                    ("SET -P16", "set", leader.port, 16, False),
                    ("GET -P16", "get", leader.port, 16, False),
                    ("GET follower -P16", "get", follower.port, 16, False),
                    *self.type_tests(leader.port, False)]
        # --cluster: redis-benchmark reads the slot map from n1 and sends each key to its
        # group's leader. "1 node": every GET to n2, a follower read for the keys of the
        # groups n2 does not lead.
        entry, one = target.nodes[0], target.nodes[1]
        followed = sum(1 for node in leaders.values() if node is not one)
        note = f"({followed}/{target.shards} follower)"
        tests = [("SET", "set", entry.port, 1, True), ("GET", "get", entry.port, 1, True),
                 (f"GET 1 node {note}", "get", one.port, 1, False),
                 ("SET -P16", "set", entry.port, 16, True),
                 ("GET -P16", "get", entry.port, 16, True),
                 (f"GET 1 node -P16 {note}", "get", one.port, 16, False)]
        if self.args.read_modes:  # what a read round costs: the same GETs with and without
            tests += [(f"GET {mode}", "get", entry.port, 1, True) for mode in READ_MODES]
        return tests + self.type_tests(entry.port, True)

    def type_tests(self, port: int, cluster: bool) -> list[tuple[str, str, int, int, bool]]:
        """--types: the data-type tests, without and with -P 16."""
        if not self.args.types:
            return []
        return [(f"{test.upper()}{suffix}", test, port, pipeline, cluster)
                for pipeline, suffix in ((1, ""), (16, " -P16")) for test in TYPE_TESTS]

    def run_benchmarks(self, targets: list[Target]) -> list[dict]:
        samples: dict[tuple[str, str], list[dict]] = {}
        order: list[tuple[str, str]] = []
        for rnd in range(self.args.repeat):
            for target in targets:
                for label, test, port, pipeline, cluster in self.tests_for(target):
                    requests = self.args.requests * (self.args.pipeline_factor if pipeline > 1
                                                     else 1)
                    mode = label.split()[-1]
                    if mode in READ_MODES:
                        self.read_consistency(target, mode)
                    try:
                        result = self.redis_benchmark(port, test, requests, pipeline,
                                                      target.pids(), cluster)
                    finally:
                        if mode in READ_MODES:
                            self.read_consistency(target, "linearizable")
                    key = (target.name, label)
                    if key not in samples:
                        order.append(key)
                    samples.setdefault(key, []).append(result)
                    print(f"  round {rnd + 1}/{self.args.repeat} {target.name:9} {label:29} "
                          f"{result['rps']:>10.0f} ops/s  p50 {result['p50_ms']:6.3f} ms  "
                          f"p99 {result['p99_ms']:7.3f} ms  cpu {result['cpu_us_per_req']:6.1f} "
                          f"us/req", flush=True)
        rows = []
        for name, label in order:
            runs = samples[(name, label)]
            row = {"target": name, "test": label, "runs": len(runs)}
            for metric in ("rps", "p50_ms", "p99_ms", "cpu_us_per_req", "client_cpu_us_per_req"):
                row[metric] = statistics.median(r[metric] for r in runs)
            row["rps_all"] = [r["rps"] for r in runs]
            row["rounds"] = runs  # in round order: ratios of the same round side by side
            rows.append(row)
        return rows

    def idle_cpu(self, targets: list[Target], seconds: float = 2.0) -> dict[str, float]:
        """CPU share of one core each target burns while idle (heartbeats, timers)."""
        before = {t.name: sum(cpu_ticks(p) for p in t.pids()) for t in targets}
        time.sleep(seconds)
        return {t.name: (sum(cpu_ticks(p) for p in t.pids()) - before[t.name])
                / CLK_TCK / seconds * 100 for t in targets}

    # -- failover

    def failover(self, cluster: Target) -> dict:
        """Kill -9 the leader of the group the writer writes to (its keys share one hash
        tag), time the next write acknowledged by another node."""
        group = group_of(FAILOVER_KEY + "0", cluster.shards)
        self.wait_cluster_healthy(cluster)
        writer = Writer([n.port for n in cluster.nodes], FAILOVER_KEY)
        writer.start()
        rounds = []

        def term(node: Node) -> int:
            return int(group_lines(info(node.port, "raft"))[group]["term"])

        try:
            wait_for(lambda: writer.acks > 20, 15, "the writer's first acknowledged write", POLL_S)
            for i in range(self.args.failovers):
                leader = self.wait_cluster_healthy(cluster, slack=500)[group]
                term_before = term(leader)
                acks_before = writer.acks
                time.sleep(self.args.failover_settle)
                if writer.acks <= acks_before:
                    raise RuntimeError("the writer is not making progress before the kill")
                t_kill = time.monotonic()
                writer.mark(t_kill, leader.port)
                self.procs.kill(leader.proc)
                first = writer.wait_first_ack_after(timeout=30)
                if first is None:
                    raise RuntimeError("no write acknowledged within 30 s of killing the leader")
                ack_time, ack_port = first
                new_leader = next(n for n in cluster.nodes if n.port == ack_port)
                seconds = ack_time - t_kill
                t_restart = time.monotonic()
                term_after = term(new_leader)
                self.launch(leader)
                back = self.wait_cluster_healthy(cluster, 90, slack=500)
                rejoin = time.monotonic() - t_restart
                rounds.append({"group": group, "killed": leader.name,
                               "new_leader": new_leader.name, "seconds_to_next_ack": seconds,
                               "terms": term_after - term_before,
                               "restart_to_voter_caught_up_s": rejoin,
                               "leader_after_rejoin": back[group].name})
                print(f"  failover {i + 1}/{self.args.failovers}: killed {leader.name} "
                      f"(leader of {group}), next write acknowledged by {new_leader.name} "
                      f"after {seconds:.3f} s ({group} term +{term_after - term_before}); "
                      f"restarted node back as a caught-up voter, every group healthy, "
                      f"after {rejoin:.2f} s ({group} led by {back[group].name})", flush=True)
        finally:
            writer.stop()
        times = [r["seconds_to_next_ack"] for r in rounds]
        return {"rounds": rounds, "median_s": statistics.median(times), "max_s": max(times),
                "min_s": min(times), "writer_acks": writer.acks,
                "writer_errors": dict(writer.errors)}

    # -- clean-up

    def show_log_tails(self, lines: int = 15) -> None:
        """The end of every server's log, on stderr: why a run that failed did."""
        for log in sorted(self.dir.glob("*.log")):
            tail = log.read_text(errors="replace").splitlines()[-lines:]
            if tail:
                print(f"--- {log.name} (tail)", file=sys.stderr)
                print("\n".join(tail), file=sys.stderr)

    def close(self) -> None:
        if self.bench_proc is not None and self.bench_proc.poll() is None:
            self.bench_proc.kill()
            self.bench_proc.wait()
        self.procs.stop_all()
        if self.args.keep:
            print(f"kept {self.dir}")
        else:
            shutil.rmtree(self.dir, ignore_errors=True)


class Writer(threading.Thread):
    """SET ``prefix`` + counter in a loop through whichever node accepts it: follows
    MOVED, moves on to the next node on a refused/closed connection, CLUSTERDOWN or
    TRYAGAIN. Records when and through which port each write was acknowledged."""

    def __init__(self, ports: list[int], prefix: str) -> None:
        super().__init__(daemon=True, name="writer")
        self.ports = ports
        self.prefix = prefix
        self.current = ports[0]
        self.conns: dict[int, Conn] = {}
        self.acks = 0
        self.errors: dict[str, int] = {}
        self.stopping = threading.Event()
        self.cond = threading.Condition()
        self.t_mark: float | None = None
        self.mark_port: int | None = None
        self.first_after: tuple[float, int] | None = None

    def mark(self, t: float, killed_port: int) -> None:
        with self.cond:
            self.t_mark, self.mark_port, self.first_after = t, killed_port, None

    def wait_first_ack_after(self, timeout: float) -> tuple[float, int] | None:
        with self.cond:
            self.cond.wait_for(lambda: self.first_after is not None, timeout)
            return self.first_after

    def _error(self, kind: str) -> None:
        self.errors[kind] = self.errors.get(kind, 0) + 1

    def _next_port(self) -> None:
        i = self.ports.index(self.current) if self.current in self.ports else -1
        self.current = self.ports[(i + 1) % len(self.ports)]

    def _drop(self, port: int) -> None:
        conn = self.conns.pop(port, None)
        if conn:
            conn.close()

    def run(self) -> None:
        i = 0
        while not self.stopping.is_set():
            port = self.current
            try:
                conn = self.conns.get(port)
                if conn is None:
                    conn = self.conns[port] = Conn(port, timeout=1.0)
                conn.call("SET", f"{self.prefix}{i % 1000}", str(i))
            except RespError as error:
                text = str(error)
                if text.startswith("MOVED"):
                    self._error("MOVED")
                    self.current = int(text.split()[2].rsplit(":", 1)[1])
                    continue
                self._error(text.split()[0] if text else "ERR")
                self._next_port()
                time.sleep(0.005)
                continue
            except OSError as error:  # refused, reset, closed, timed out
                self._error(type(error).__name__)
                self._drop(port)
                self._next_port()
                time.sleep(0.005)
                continue
            now = time.monotonic()
            i += 1
            with self.cond:
                self.acks += 1
                if (self.t_mark is not None and self.first_after is None
                        and port != self.mark_port):
                    self.first_after = (now, port)
                    self.cond.notify_all()

    def stop(self) -> None:
        self.stopping.set()
        self.join(5)
        for port in list(self.conns):
            self._drop(port)


# ---------------------------------------------------------------------------- report


def ratio_rows(rows: list[dict]) -> list[dict]:
    by = {(r["target"], r["test"]): r for r in rows}
    out = []
    for r in rows:
        if r["target"].startswith("redis"):
            continue
        # Writes against redis-aof, reads against redis, the same test and pipelining
        # ("GET 1 node -P16 (2/3 follower)" -> redis "GET -P16").
        test = r["test"].split()[0]
        base_name = "redis-aof" if test.lower() in WRITE_TESTS else "redis"
        base_test = test + (" -P16" if "-P16" in r["test"] else "")
        base = by.get((base_name, base_test))
        if base is None:
            continue
        out.append({
            "target": r["target"], "test": r["test"], "baseline": f"{base_name} {base_test}",
            "rps_ratio": r["rps"] / base["rps"],
            "p50_ratio": r["p50_ms"] / base["p50_ms"] if base["p50_ms"] else None,
            "p99_ratio": r["p99_ms"] / base["p99_ms"] if base["p99_ms"] else None,
            "cpu_ratio": (r["cpu_us_per_req"] / base["cpu_us_per_req"]
                          if base["cpu_us_per_req"] else None),
        })
    return out


def target_rows(ratios: list[dict]) -> list[dict]:
    out = []
    for name, test, base, minimum, what in TARGETS:
        r = next((q for q in ratios if q["target"] == name
                  and (q["test"] == test or q["test"].startswith(f"{test} ("))), None)
        if r is None:
            continue
        test = r["test"]
        out.append({"what": what, "target": name, "test": test, "baseline": base,
                    "ratio": r["rps_ratio"], "minimum": minimum,
                    "met": r["rps_ratio"] >= minimum})
    return out


def fmt(value: float | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def print_report(rows: list[dict], ratios: list[dict], targets: list[dict],
                 failover: dict | None, meta: dict) -> None:
    rat = {(r["target"], r["test"]): r for r in ratios}
    width = max([18, *(len(r["test"]) for r in rows)])
    print()
    print(f"redis-benchmark -c {meta['clients']} -r {meta['keyspace']} -d {meta['data_size']}, "
          f"-n {meta['requests']} (x{meta['pipeline_factor']} with -P 16), "
          f"median of {meta['repeat']}; spread = (max-min)/median of ops/s over the rounds; "
          f"CPU = server utime+stime per request (cluster: 3 nodes summed); bench = "
          f"redis-benchmark's own CPU per request")
    if meta.get("single_shards"):
        print(f"respkv: single node, {meta['single_shards']} shards (leads them all)")
    if meta.get("cluster_shards", 1) > 1:
        print(f"respkv-3: {meta['cluster_shards']} shards, leaders {meta['cluster_leaders']}; "
              f"SET/GET with redis-benchmark --cluster --threads 1 via n1 (each key on its group's "
              f"leader); 'GET 1 node': all GETs on n2 (follower reads for the groups it "
              f"does not lead)")
    elif meta.get("cluster_leaders"):
        print(f"respkv-3: 1 shard, leader {meta['cluster_leaders']['g0']}")
    head = (f"{'server':10} {'test':{width}} {'ops/s':>9} {'spread':>6} {'p50 ms':>7} "
            f"{'p99 ms':>7} {'cpu us/req':>10} {'bench us':>8} | {'vs':20} {'x ops':>6} "
            f"{'x p50':>6} {'x p99':>6} {'x cpu':>6}")
    print(head)
    print("-" * len(head))
    for r in rows:
        q = rat.get((r["target"], r["test"]))
        spread = (max(r["rps_all"]) - min(r["rps_all"])) / r["rps"] * 100
        line = (f"{r['target']:10} {r['test']:{width}} {r['rps']:>9.0f} {spread:>5.0f}% "
                f"{r['p50_ms']:>7.3f} "
                f"{r['p99_ms']:>7.3f} {r['cpu_us_per_req']:>10.1f} "
                f"{r['client_cpu_us_per_req']:>8.1f} |")
        if q:
            line += (f" {q['baseline']:20} {q['rps_ratio']:>6.2f} {fmt(q['p50_ratio'], '6.2f')} "
                     f"{fmt(q['p99_ratio'], '6.2f')} {fmt(q['cpu_ratio'], '6.2f')}")
        print(line)
    if targets:
        print()
        print("targets (ops/s ratio):")
        for t in targets:
            print(f"  {'MET ' if t['met'] else 'MISS'} {t['ratio']:.2f}x (>= {t['minimum']}x)  "
                  f"{t['what']}")
    if failover:
        print()
        times = ", ".join(f"{r['seconds_to_next_ack']:.3f}" for r in failover["rounds"])
        met = "MET" if failover["median_s"] < FAILOVER_TARGET_S else "MISS"
        group = failover["rounds"][0]["group"]
        print(f"failover (kill -9 the leader of {group}, the writer's group -> next "
              f"acknowledged write), "
              f"{len(failover['rounds'])} rounds: median {failover['median_s']:.3f} s, "
              f"max {failover['max_s']:.3f} s, min {failover['min_s']:.3f} s  "
              f"[{met} < {FAILOVER_TARGET_S} s]  ({times})")
        rejoin = [r["restart_to_voter_caught_up_s"] for r in failover["rounds"]]
        print(f"  restart -> caught-up voter, every group healthy: "
              f"median {statistics.median(rejoin):.2f} s, "
              f"max {max(rejoin):.2f} s; writer errors seen: {failover['writer_errors']}")
    if meta.get("failover_error"):
        print(f"\nfailover measurement failed: {meta['failover_error']}")
    if meta.get("idle_cpu_pct"):
        idle = ", ".join(f"{k} {v:.1f}%" for k, v in meta["idle_cpu_pct"].items())
        print(f"\nidle server CPU (one core = 100%): {idle}")
    if meta.get("cluster_leader_changes"):
        lc = meta["cluster_leader_changes"]
        before, after = lc["before"], lc["after"]
        terms = ", ".join(f"{g} {t} -> {after['terms'].get(g)}"
                          for g, t in before["terms"].items())
        changed = after["leader_changes"] - before["leader_changes"]
        print(f"cluster leader changes during the benchmarks (each node's count, summed over "
              f"groups and nodes): {before['leader_changes']} -> {after['leader_changes']} "
              f"(+{changed}{'' if changed == 0 else ' LEADERS CHANGED UNDER LOAD'}); "
              f"terms: {terms}")
    print(f"load average before/after: {meta['loadavg_before']} / {meta['loadavg_after']}")


# ---------------------------------------------------------------------------- main


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--mode", choices=["single", "cluster", "both"], default="both")
    p.add_argument("--shards", type=int, default=3,
                   help="Raft groups of the cluster (respkv server --shards, default 3)")
    p.add_argument("--single-shards", type=int, default=None,
                   help="--shards of the single node (default: the server's default)")
    p.add_argument("--requests", type=int, default=None,
                   help="requests per redis-benchmark run without pipelining (default 50000, "
                        "--quick 10000)")
    p.add_argument("--pipeline-factor", type=int, default=4,
                   help="runs with -P 16 send this many times --requests (default 4)")
    p.add_argument("--clients", type=int, default=50)
    p.add_argument("--repeat", type=int, default=None, help="rounds (default 3, --quick 1)")
    p.add_argument("--keyspace", type=int, default=10000, help="redis-benchmark -r")
    p.add_argument("--data-size", type=int, default=3, help="redis-benchmark -d")
    p.add_argument("--failovers", type=int, default=None, help="default 5, --quick 2")
    p.add_argument("--failover-settle", type=float, default=1.0,
                   help="seconds of steady writing before each kill")
    p.add_argument("--no-failover", action="store_true")
    p.add_argument("--read-modes", action="store_true",
                   help="also run the cluster's GET with read-consistency lease and stale: "
                        "the gap to the linearizable row is what the ReadIndex rounds cost")
    p.add_argument("--types", action="store_true",
                   help="also run redis-benchmark's data-type tests (" + ",".join(TYPE_TESTS)
                   + "), without and with -P 16")
    p.add_argument("--bench-timeout", type=float, default=600.0)
    p.add_argument("--quick", action="store_true", help="fewer requests, one round")
    p.add_argument("--json", metavar="PATH", help="also write the results as JSON")
    p.add_argument("--keep", action="store_true", help="keep the temp dir (logs, data)")
    args = p.parse_args(argv)
    if args.requests is None:
        args.requests = 10000 if args.quick else 50000
    if args.repeat is None:
        args.repeat = 1 if args.quick else 3
    if args.failovers is None:
        args.failovers = 2 if args.quick else 5
    for tool in ("redis-server", "redis-benchmark"):
        if shutil.which(tool) is None:
            p.error(f"{tool} not found on PATH")
    return args


def stop_on_sigterm() -> None:
    """SIGTERM as Ctrl-C: the benchmark stops every server it started."""
    def on_term(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_term)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)

    stop_on_sigterm()
    bench = Bench(args)
    meta = {"mode": args.mode, "clients": args.clients, "requests": args.requests,
            "pipeline_factor": args.pipeline_factor, "repeat": args.repeat,
            "keyspace": args.keyspace, "data_size": args.data_size,
            "cpus": os.cpu_count(), "python": platform.python_version(),
            "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "loadavg_before": [round(x, 2) for x in os.getloadavg()]}
    failover = None
    try:
        print(f"starting servers in {bench.dir} ...", flush=True)
        targets = [bench.start_redis("redis-aof", ["--appendonly", "yes", "--appendfsync",
                                                   "always", "--save", ""]),
                   bench.start_redis("redis", ["--appendonly", "no"])]
        if args.mode in ("single", "both"):
            targets.append(bench.start_respkv_single())
            meta["single_shards"] = targets[-1].shards
        cluster = None
        if args.mode in ("cluster", "both"):
            cluster = bench.start_cluster()
            targets.append(cluster)
            meta["cluster_shards"] = cluster.shards
            meta["cluster_leaders"] = {g: n.name for g, n in
                                       bench.wait_cluster_healthy(cluster).items()}
        for t in targets:
            print(f"  {t.name:9} ports {[n.port for n in t.nodes]} pids {t.pids()}")
        meta["idle_cpu_pct"] = {k: round(v, 2) for k, v in bench.idle_cpu(targets).items()}
        if cluster:
            changes_before = bench.leader_changes(cluster)
        print("benchmarking ...", flush=True)
        rows = bench.run_benchmarks(targets)
        if cluster:
            meta["cluster_leader_changes"] = {"before": changes_before,
                                              "after": bench.leader_changes(cluster)}
        if cluster and not args.no_failover:
            print("failover ...", flush=True)
            try:
                failover = bench.failover(cluster)
            except (RuntimeError, TimeoutError, OSError, RespError) as error:
                # keep the benchmark table: report the failure instead of losing everything
                print(f"failover measurement failed: {error!r}", file=sys.stderr, flush=True)
                meta["failover_error"] = repr(error)
    except KeyboardInterrupt:
        print("\ninterrupted: stopping every server", file=sys.stderr)
        bench.close()
        return 130
    except Exception:
        bench.show_log_tails()
        bench.close()
        raise
    meta["loadavg_after"] = [round(x, 2) for x in os.getloadavg()]
    meta["finished"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    bench.close()
    ratios = ratio_rows(rows)
    targets_met = target_rows(ratios)
    print_report(rows, ratios, targets_met, failover, meta)
    if args.json:
        Path(args.json).write_text(json.dumps(
            {"meta": meta, "results": rows, "ratios": ratios, "targets": targets_met,
             "failover": failover}, indent=2) + "\n")
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
