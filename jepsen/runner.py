"""Run the fault suite once: cluster, clients, faults, recovery, checks, report.

    python -m jepsen.runner --nodes 3 --duration 20 --seed 1 \\
        --faults kill,pause,partition --out /tmp/jepsen-1
    python -m jepsen.runner --workload bank,list-append --faults kill,pause,partition

Workloads (--workload, comma separated, --clients threads each):

- registers: GET/SET/SET GET on registers, INCR, write-once keys, MSET/MGET
  pairs; per-key linearizability, counter bounds, no acknowledged write lost.
- bank: accounts under one hash tag with a fixed total; transfers as WATCH,
  GETs, MULTI DECRBY INCRBY EXEC (never overdrawing), balance reads as MGET in
  MULTI/EXEC and as a plain MGET; every read sees the total, no balance below
  zero, the final balances are explained by the transfers.
- list-append: transactions of RPUSH and LRANGE micro-ops on a few keys under
  one hash tag, as MULTI/EXEC; checked for strict serializability as Elle's
  list-append does (version orders from read prefixes, ww/wr/rw and real-time
  edges, a cycle search; duplicates, lost appends, aborted and garbage reads).

Exit status: 0 pass, 1 violation, 2 unknown (a search ran out of budget),
3 the cluster did not recover (or the run broke).
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import respkv
from jepsen import checker, report
from jepsen.bank import BankWorkload
from jepsen.faults import SCHEDULES, Nemesis, disk_size
from jepsen.history import History
from jepsen.listappend import ListAppendWorkload
from jepsen.nodes import DisksRefused, JCluster
from jepsen.proxy import Network
from jepsen.workloads import BaseClient, RegisterWorkload, Workload
from respkv.tlsconfig import TlsFiles
from testsupport.tls import make_certs
from testsupport.waiting import wait_for

WORKLOADS: dict[str, type[Workload]] = {
    "registers": RegisterWorkload, "bank": BankWorkload, "list-append": ListAppendWorkload}


class Monitor(threading.Thread):
    """Who leads, in which term, every ``interval`` seconds, for the timeline."""

    def __init__(self, cluster: JCluster, history: History, stop: threading.Event,
                 interval: float = 0.2) -> None:
        super().__init__(name="monitor", daemon=True)
        self.cluster = cluster
        self.history = history
        self.stop_event = stop
        self.interval = interval
        self.samples: list[dict[str, Any]] = []

    def run(self) -> None:
        while not self.stop_event.wait(self.interval):
            self.sample()

    def sample(self) -> None:
        for node in list(self.cluster.nodes):
            state = "down" if not node.alive() else "paused" if node.paused else None
            info = None if state else node.info(timeout=0.3)
            if info is None and state is None:
                state = "silent"
            self.samples.append({
                "t": self.history.now(), "node": node.node_id,
                "role": state or info.get("raft_role", "?"),
                "term": int(info.get("raft_term", 0)) if info else None,
                "leader": info.get("raft_leader") if info else None})


def code_version() -> str:
    """The git commit of the server code, '+dirty' if the tree has changes (read only)."""
    root = Path(respkv.__file__).parent.parent
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=root,
                              capture_output=True, text=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "respkv"], cwd=root,
                               capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return (head or "unknown") + ("+dirty" if dirty else "")


def leader_changes(samples: list[dict[str, Any]]) -> list[list[Any]]:
    """[time s, node, term] each time a node newly claims leadership."""
    changes: list[list[Any]] = []
    current: dict[str, tuple[str, int | None]] = {}
    for s in samples:
        before = current.get(s["node"])
        current[s["node"]] = (s["role"], s["term"])
        if s["role"] == "leader" and before != ("leader", s["term"]):
            changes.append([round(s["t"] / 1e9, 2), s["node"], s["term"]])
    return changes


def run(args: argparse.Namespace) -> int:
    out = Path(args.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    shutil.rmtree(out / "cluster", ignore_errors=True)  # a previous run's nodes: start afresh
    # the servers run the respkv this runner imports (a worktree's, not whatever an
    # installed copy points at): their cwd is outside the tree, so say where it is
    env = {"PYTHONPATH": str(Path(respkv.__file__).resolve().parent.parent)}
    result_code: dict[str, Any] = {"version": code_version()}
    if args.freeze_code:
        # every (re)start runs this copy: the tree may change during a long run
        frozen = out / "code"
        shutil.rmtree(frozen, ignore_errors=True)
        shutil.copytree(Path(respkv.__file__).parent, frozen / "respkv",
                        ignore=shutil.ignore_patterns("__pycache__"))
        env["PYTHONPATH"] = str(frozen)
        result_code["frozen_copy"] = str(frozen)
    server_args = ["--set", f"snapshot_entries={args.snapshot_entries}",
                   "--set", "snapshot_chunk_bytes=65536", "--shards", str(args.shards)]
    if args.unsafe:
        server_args += ["--set", f"unsafe-test-faults={args.unsafe}"]
    for item in args.server_set or []:
        server_args += ["--set", item]
    peer_tls = None
    if args.tls:  # mutual TLS on every Raft port, through the proxies (jepsen.proxy)
        certs = make_certs(out / "certs")
        server_args += certs.node_args(auth_clients="no", cluster=True)
        peer_tls = TlsFiles(str(certs.cert), str(certs.key), str(certs.ca)).peer_contexts()
    faults = [f for f in args.faults.split(",") if f]
    network = Network(args.seed, tls=peer_tls)
    cluster = JCluster(out / "cluster", args.nodes, network, server_args, env, args.password,
                       disk_size=disk_size(faults))
    history = History()
    stop_clients, stop_faults, stop_monitor = threading.Event(), threading.Event(), \
        threading.Event()
    monitor = Monitor(cluster, history, stop_monitor)
    started = time.time()
    result: dict[str, Any] = {"seed": args.seed, "nodes": args.nodes, "shards": args.shards,
                              "duration": args.duration, "tls_cluster": args.tls,
                              "requirepass": bool(args.password),
                              "faults_enabled": faults, "unsafe": args.unsafe or None,
                              "server_code": result_code}
    nemesis = None
    clients: list[BaseClient] = []
    workloads = [WORKLOADS[name](args) for name in args.workload]
    result["workloads"] = list(args.workload)
    try:
        cluster.start()
        names = {n.port: n.node_id for n in cluster.nodes}
        for workload in workloads:
            workload.setup(cluster, history)
            clients += workload.clients(len(clients), history, names, cluster, stop_clients)
        for client in clients:
            client.password = cluster.password
        nemesis = Nemesis(cluster, history, faults, args.seed, stop_faults,
                          quiet=tuple(args.quiet), length=tuple(args.fault_length),
                          rejoin_same_id=args.rejoin_same_id, names=names,
                          schedule=args.schedule)
        monitor.start()
        for client in clients:
            client.start()
        nemesis.start()
        time.sleep(args.duration)
        stop_faults.set()
        nemesis.join()
        # a little quiet load after the last fault, then stop the clients
        time.sleep(min(2.0, args.duration / 10))
        stop_clients.set()
        for client in clients:
            client.join(args.timeout * 4 + 5)
        nemesis.heal_all()
        recovered = True
        recovery_started = time.monotonic()
        try:
            wait_for(cluster.caught_up, args.recovery_timeout, "recovery: a leader, all caught up")
        except TimeoutError as error:
            recovered = False
            result["recovery_error"] = str(error)
        if nemesis.not_caught_up:  # caught up by now, maybe, but not when it should have
            recovered = False
            result["recovery_error"] = "; ".join(
                filter(None, [*nemesis.not_caught_up, result.get("recovery_error")]))
        result["recovery_seconds"] = round(time.monotonic() - recovery_started, 2)
        for workload in workloads:
            workload.final_reads(cluster, history, timeout=5.0 if recovered else 1.0)
        monitor.sample()
    except DisksRefused as error:
        print(f"cannot run: {error}", file=sys.stderr)
        return 3
    finally:
        stop_clients.set()
        stop_faults.set()
        stop_monitor.set()
        cluster.stop()
        network.stop()
    elapsed = time.time() - started
    ops = list(history.ops)
    history.save(out / "history.jsonl")
    check_started = time.monotonic()
    checks = [workload.check(ops) for workload in workloads]
    everyone = {n.node_id for n in cluster.nodes}
    missing_nodes = sorted(set().union(*(everyone - w.read_nodes for w in workloads)))
    bad_replies = checker.check_replies(ops)
    crashes = [c for client in clients for c in client.crashes]
    verdict = checker.combine([c.valid for c in checks] + [not bad_replies])
    result.update({
        "verdict": {True: "pass", False: "FAIL"}.get(verdict, "unknown")
        if recovered and not missing_nodes else ("FAIL" if verdict is False else "no-recovery"),
        "recovered": recovered,
        "nodes_not_read_at_end": missing_nodes,
        "elapsed_seconds": round(elapsed, 1),
        "check_seconds": round(time.monotonic() - check_started, 2),
        "ops": report.op_counts(ops),
        "faults": [e.summary() for e in nemesis.events] if nemesis else [],
        "fault_seconds": round(sum(max(0, e.end - e.start) for e in
                                   (nemesis.events if nemesis else [])) / 1e9, 1),
        "nemesis_errors": nemesis.errors if nemesis else [],
        "proxy_frames": dict(network.frames),
    })
    for check in checks:
        result.update(check.fields)
    result.update({
        "bad_replies": bad_replies[:50],
        "client_crashes": crashes[:50],
        "server_restarts": {n.node_id: n.starts - 1 for n in cluster.nodes},
        "leaders": leader_changes(monitor.samples),
    })
    line = report.verdict_line(result, [p for c in checks for p in c.problems])
    if bad_replies:
        line += f"; {len(bad_replies)} unexpected replies, first: {bad_replies[0]}"
    result["verdict_line"] = line
    (out / "summary.json").write_text(json.dumps(result, indent=2, default=str))
    (out / "verdict.txt").write_text(line + "\n")
    report.timeline(out / "timeline.html", result, ops, monitor.samples,
                    nemesis.events if nemesis else [])
    print(line)
    for check in checks:
        for detail in check.details:
            print(f"  {detail}")
    for problem in bad_replies[:10]:
        print(f"  {problem}")
    status = result["verdict"]
    return {"pass": 0, "FAIL": 1, "unknown": 2}.get(status, 3)


def workload_names(text: str) -> list[str]:
    names = [name for name in text.split(",") if name]
    unknown = [name for name in names if name not in WORKLOADS]
    if unknown or not names:
        raise argparse.ArgumentTypeError(
            f"unknown workload {unknown or text!r} (known: {', '.join(WORKLOADS)})")
    return list(dict.fromkeys(names))


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m jepsen.runner", formatter_class=argparse.RawDescriptionHelpFormatter,
        description=__doc__.split("\n\n")[0], epilog=__doc__.split("\n\n", 2)[2])
    parser.add_argument("--workload", type=workload_names, default=["registers"],
                        metavar="NAME[,NAME]",
                        help=f"what the clients do: {', '.join(WORKLOADS)} (default "
                             "registers); several run side by side, --clients each")
    parser.add_argument("--nodes", type=int, default=3, choices=(3, 5))
    parser.add_argument("--duration", type=float, default=20.0, help="seconds of faults")
    parser.add_argument("--shards", type=int, default=3, help="Raft groups of the cluster")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--faults", default="kill,pause,partition",
                        help="comma separated; see jepsen.faults")
    parser.add_argument("--out", default="jepsen-out")
    parser.add_argument("--clients", type=int, default=8, help="client threads per workload")
    parser.add_argument("--registers", type=int, default=3, help="register keys (and pairs)")
    parser.add_argument("--accounts", type=int, default=5,
                        help="bank: accounts ({acct}0..), 10 each at the start")
    parser.add_argument("--active-keys", type=int, default=3,
                        help="list-append: keys in use at a time ({la}0..)")
    parser.add_argument("--max-txn-length", type=int, default=4,
                        help="list-append: micro-ops per transaction, at most")
    parser.add_argument("--max-writes-per-key", type=int, default=32,
                        help="list-append: appends to a key before it is retired for a "
                             "fresh one (keeps lists and reads short)")
    parser.add_argument("--timeout", type=float, default=1.5, help="client socket timeout")
    parser.add_argument("--think", type=float, default=0.003, help="mean pause between ops")
    parser.add_argument("--check-budget", type=float, default=60.0,
                        help="seconds of linearizability search per key before 'unknown'")
    parser.add_argument("--recovery-timeout", type=float, default=60.0)
    parser.add_argument("--unsafe", default="",
                        help="test only: unsafe server switches, e.g. stale-reads,early-ack")
    parser.add_argument("--schedule", choices=SCHEDULES, default="random",
                        help="random: each fault drawn from --faults; cycle: the --faults "
                             "in the order given, round and round (each kind surely "
                             "happens in a short run)")
    parser.add_argument("--quiet", type=float, nargs=2, default=(1.0, 3.0),
                        metavar=("MIN", "MAX"), help="seconds between faults")
    parser.add_argument("--fault-length", type=float, nargs=2, default=(1.5, 4.0),
                        metavar=("MIN", "MAX"), help="seconds a fault lasts")
    parser.add_argument("--rejoin-same-id", action="store_true",
                        help="the member fault rejoins a removed node under its old id")
    parser.add_argument("--snapshot-entries", type=int, default=500,
                        help="servers snapshot (and compact) this often, so snapshots, "
                             "compaction and snapshot installs happen under faults")
    parser.add_argument("--freeze-code", action="store_true",
                        help="run the servers from a copy of the respkv package taken at "
                             "the start (restarts during a long run use the same code)")
    parser.add_argument("--password", default="",
                        help="every node's requirepass: the clients, the faults and the "
                             "monitor authenticate with it")
    parser.add_argument("--tls", action="store_true",
                        help="run the nodes with tls-cluster yes: mutual TLS on the Raft "
                             "ports, certificates made for the run (the clients stay on "
                             "the plain client ports)")
    parser.add_argument("--server-set", action="append", metavar="NAME=VALUE",
                        help="passed to every server as --set NAME=VALUE")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    import logging

    logging.getLogger("asyncio").setLevel(logging.ERROR)  # proxies writing to dead peers
    return run(parse(argv))


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")  # so the cluster is stopped by PID


if __name__ == "__main__":
    import signal

    signal.signal(signal.SIGTERM, _interrupt)
    sys.exit(main())
