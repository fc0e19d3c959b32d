#!/usr/bin/env python3
"""What TLS costs: respkv's TLS client port against redis-server's, and a 3-node
cluster's writes with mutual TLS on the Raft port against without.

Starts, on free loopback ports and in temporary directories, with certificates made
for the run (one CA, one certificate; client certificates required, as both servers
default to):

- ``redis-aof`` (appendonly yes, appendfsync always) and ``redis`` (default
  persistence), each with its plain port and a TLS port;
- ``respkv``, a single node with its plain port and a TLS port (tls-port);
- ``respkv-3`` and ``respkv-3 mtls``: two 3-node clusters (``--shards`` groups,
  leaders spread), the second with tls-cluster yes; clients on the plain ports.

then runs redis-benchmark (``--tls`` on TLS ports): SET and GET, 50 clients, without
and with ``-P 16``, on every server's plain and TLS port; and SET (``--cluster`` via
n1) on both clusters. ``--repeat`` rounds, the servers interleaved inside each round
so that the noise of a shared machine falls on all alike; medians of ops/s, p50, p99
and the server CPU per request (utime+stime from /proc, the 3 nodes summed for a
cluster). The ratios: each TLS row against the same server's plain port, and respkv's
TLS rows against redis-server's TLS rows (SET against redis-aof, GET against redis,
as in server_bench.py); the mTLS cluster against the plain one.

    python benchmarks/tls_bench.py
    python benchmarks/tls_bench.py --quick
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # testsupport/

from benchmarks.server_bench import Bench, Node, Target, parse_args
from testsupport.ports import free_ports
from testsupport.tls import Certs, make_certs

TESTS = (("SET", "set", 1), ("GET", "get", 1), ("SET -P16", "set", 16),
         ("GET -P16", "get", 16))


class NodeArgsBench(Bench):
    """server_bench's Bench, with more flags for every respkv node it starts."""

    def __init__(self, args: argparse.Namespace, node_args: list[str]) -> None:
        super().__init__(args)
        self.node_args = node_args

    def respkv_node(self, node_id: str, join: int | None = None,
                    shards: int | None = None) -> Node:
        node = super().respkv_node(node_id, join, shards)
        node.argv += self.node_args
        return node


@dataclass
class Case:
    target: str  # the server
    port_kind: str  # plain | tls | (cluster) raft
    label: str
    test: str
    pipeline: int
    port: int
    pids_of: Target
    cluster: bool = False
    tls: tuple[str, ...] = ()


def tls_flags(certs: Certs) -> tuple[str, ...]:
    return tuple(certs.cli_args())


def redis_tls_args(certs: Certs, tls_port: int) -> list[str]:
    return ["--tls-port", str(tls_port), "--tls-cert-file", str(certs.cert),
            "--tls-key-file", str(certs.key), "--tls-ca-cert-file", str(certs.ca)]


def client_port_cases(bench: Bench, certs: Certs) -> tuple[list[Case], list[Bench]]:
    cases: list[Case] = []
    flags = tls_flags(certs)
    for name, persistence, tests in (
            ("redis-aof", ["--appendonly", "yes", "--appendfsync", "always", "--save", ""],
             ("SET", "SET -P16")),
            ("redis", ["--appendonly", "no"], ("SET", "GET", "SET -P16", "GET -P16"))):
        (tls_port,) = free_ports(1)
        target = bench.start_redis(name, [*persistence, *redis_tls_args(certs, tls_port)])
        for label, test, pipeline in TESTS:
            if label in tests:
                cases.append(Case(name, "plain", label, test, pipeline, target.nodes[0].port,
                                  target))
                cases.append(Case(name, "tls", label, test, pipeline, tls_port, target, False,
                                  flags))
    (tls_port,) = free_ports(1)
    single = NodeArgsBench(bench.args, [*certs.node_args(tls_port)])
    target = single.start_respkv_single()
    for label, test, pipeline in TESTS:
        cases.append(Case("respkv", "plain", label, test, pipeline, target.nodes[0].port,
                          target))
        cases.append(Case("respkv", "tls", label, test, pipeline, tls_port, target, False,
                          flags))
    return cases, [single]


def cluster_cases(args: argparse.Namespace, certs: Certs) -> tuple[list[Case], list[Bench]]:
    cases: list[Case] = []
    benches = []
    for name, node_args in (("respkv-3", []), ("respkv-3 mtls", certs.node_args(cluster=True))):
        bench = NodeArgsBench(args, node_args)
        benches.append(bench)
        target = bench.start_cluster()
        kind = "raft mtls" if node_args else "raft plain"
        for label, test, pipeline in TESTS:
            if test == "set":
                cases.append(Case(name, kind, label, test, pipeline, target.nodes[0].port,
                                  target, True))
    return cases, benches


def run(bench: Bench, cases: list[Case], repeat: int) -> list[dict]:
    samples: dict[int, list[dict]] = {i: [] for i in range(len(cases))}
    for rnd in range(repeat):
        for i, case in enumerate(cases):
            requests = bench.args.requests * (bench.args.pipeline_factor
                                              if case.pipeline > 1 else 1)
            result = bench.redis_benchmark(case.port, case.test, requests, case.pipeline,
                                           case.pids_of.pids(), case.cluster, case.tls)
            samples[i].append(result)
            print(f"  round {rnd + 1}/{repeat} {case.target:13} {case.port_kind:10} "
                  f"{case.label:9} {result['rps']:>9.0f} ops/s  p50 {result['p50_ms']:6.3f} ms"
                  f"  p99 {result['p99_ms']:7.3f} ms  cpu {result['cpu_us_per_req']:6.1f} "
                  f"us/req", flush=True)
    rows = []
    for i, case in enumerate(cases):
        runs = samples[i]
        row = {"target": case.target, "port": case.port_kind, "test": case.label,
               "runs": len(runs), "rps_all": [r["rps"] for r in runs]}
        for metric in ("rps", "p50_ms", "p99_ms", "cpu_us_per_req"):
            row[metric] = statistics.median(r[metric] for r in runs)
        rows.append(row)
    return rows


def print_table(rows: list[dict], args: argparse.Namespace) -> None:
    by = {(r["target"], r["port"], r["test"]): r for r in rows}
    print()
    print(f"redis-benchmark -c {args.clients} -r {args.keyspace} -d {args.data_size}, "
          f"-n {args.requests} (x{args.pipeline_factor} with -P 16), median of {args.repeat}; "
          f"TLS: client certificates required; CPU = server utime+stime per request "
          f"(clusters: 3 nodes summed); 'x plain' = this row / the same server's plain port "
          f"(cluster: / the cluster without mTLS); 'x redis' = respkv TLS / redis-server TLS "
          f"(SET vs redis-aof, GET vs redis)")
    head = (f"{'server':13} {'port':10} {'test':9} {'ops/s':>9} {'spread':>6} {'p50 ms':>7} "
            f"{'p99 ms':>7} {'cpu us/req':>10} | {'x plain ops':>11} {'x plain cpu':>11} | "
            f"{'x redis ops':>11} {'x redis cpu':>11}")
    print(head)
    print("-" * len(head))
    for r in rows:
        spread = (max(r["rps_all"]) - min(r["rps_all"])) / r["rps"] * 100
        line = (f"{r['target']:13} {r['port']:10} {r['test']:9} {r['rps']:>9.0f} "
                f"{spread:>5.0f}% {r['p50_ms']:>7.3f} {r['p99_ms']:>7.3f} "
                f"{r['cpu_us_per_req']:>10.1f} |")
        if r["port"] == "tls":
            plain = by.get((r["target"], "plain", r["test"]))
        elif r["port"] == "raft mtls":
            plain = by.get(("respkv-3", "raft plain", r["test"]))
        else:
            plain = None
        line += _ratios(r, plain) + " |"
        if r["target"] == "respkv" and r["port"] == "tls":
            base = "redis-aof" if r["test"].startswith("SET") else "redis"
            line += _ratios(r, by.get((base, "tls", r["test"])))
        print(line)


def _ratios(row: dict, base: dict | None) -> str:
    if base is None:
        return f" {'':>11} {'':>11}"
    cpu = row["cpu_us_per_req"] / base["cpu_us_per_req"] if base["cpu_us_per_req"] else 0
    return f" {row['rps'] / base['rps']:>11.2f} {cpu:>11.2f}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument("--no-cluster", action="store_true",
                        help="only the client ports (no 3-node clusters)")
    ours, rest = parser.parse_known_args(argv)
    args = parse_args([*rest, "--no-failover"])
    bench = Bench(args)
    certs = make_certs(bench.dir / "certs")
    benches = [bench]
    try:
        print(f"starting servers in {bench.dir} ...", flush=True)
        cases, more = client_port_cases(bench, certs)
        benches += more
        if not ours.no_cluster:
            more_cases, more = cluster_cases(args, certs)
            cases += more_cases
            benches += more
        print("benchmarking ...", flush=True)
        rows = run(bench, cases, args.repeat)
    finally:
        for each in reversed(benches):
            each.close()
    print_table(rows, args)
    return 0


if __name__ == "__main__":
    if shutil.which("redis-benchmark") is None:
        sys.exit("redis-benchmark not found on PATH")
    sys.exit(main())
