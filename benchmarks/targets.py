#!/usr/bin/env python3
"""The speed targets, measured: one table, in one run.

Starts what ``server_bench.py`` starts (a redis-server with ``appendfsync always``, one
with its default persistence, a respkv single node and a 3-node respkv cluster, on
free loopback ports) and runs, through its machinery, the redis-benchmark tests the
targets need, ``--repeat`` interleaved rounds (every server once per round, in turn, so
that the noise of the shared machine falls on all of them alike); then the failover
measurement. It prints a header (cores, CPU model, load average, versions), then one
line per target: the value measured (the median over the rounds; a ratio is the median
of each round's ratio, both figures of a round measured minutes apart at most), the
target, MET or MISS, and each round's value; then every run's server CPU per request
(redis-server included) and redis-benchmark's own CPU per request, which a reader
needs to judge the rest (the client takes about a core at 50 clients, on 2 cores).

The cluster's SET and GET run with ``redis-benchmark --cluster --threads 1`` (its
default, a thread per master, rounds ops/s down to whole 250 ms steps).

``--profile DIR`` instead runs a single node and the 3-node cluster under load (SET,
then GET, 50 clients) while ``py-spy record --nonblocking -p PID`` samples every respkv
process, and writes to DIR, per process and per workload, the raw samples (py-spy's
collapsed stacks) and a text file of the top functions by self time and by total
(cumulative) time; for the cluster also the three nodes' samples summed. py-spy leaves
out the samples of idle threads (an event loop waiting in epoll) but not of a thread
blocked in a system call that does not count as idle: an fsync on the event loop shows
up (in ``WAL._write_once``), so the shares are of the loop's busy time, what a request
waits for, not of CPU alone. py-spy's ``--gil`` keeps only the samples of a thread that
holds the GIL, which leaves out the fsync (and any other call that lets the GIL go):
closer to where the CPU goes. Both are recorded by default, one after the other, in
``DIR/busy`` and ``DIR/gil`` (``--profile-sampling``). Time in C (a send, hiredis) is
counted in the Python function that called it.

    python benchmarks/targets.py
    python benchmarks/targets.py --quick --json /tmp/targets.json
    python benchmarks/targets.py --profile /tmp/profile
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import importlib.metadata
import json
import os
import platform
import re
import shutil
import signal
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # testsupport/

from benchmarks import server_bench
from benchmarks.server_bench import Bench, Target
from testsupport.waiting import wait_for

ROOT = Path(__file__).resolve().parent.parent

# The tests each server runs: what the targets are computed from, nothing more (a round
# of the full server_bench table takes several times as long).
TESTS = {
    "redis-aof": {"SET"},
    "redis": {"SET", "GET", "GET -P16"},  # SET first: the GETs find their keys, as on respkv
    "respkv": {"SET", "GET", "GET -P16"},
    "respkv-3": {"SET", "GET", "SET -P16"},
}


@dataclass
class Goal:
    what: str
    unit: str  # "us", "x" (ops/s ratio), "ms", "s"
    at_most: bool  # the value must be <= target (else >=)
    target: float
    rounds: Callable[[dict, dict | None], list[float] | None]  # one value per round


def metric(server: str, test: str, name: str) -> Callable[[dict, dict | None], list[float] | None]:
    def rounds(by: dict, failover: dict | None) -> list[float] | None:
        row = by.get((server, test))
        return None if row is None else [r[name] for r in row["rounds"]]
    return rounds


def ratio(server: str, test: str, base: str,
          base_test: str) -> Callable[[dict, dict | None], list[float] | None]:
    """ops/s of ``server`` over ``base``, round by round: each pair ran in one round."""
    def rounds(by: dict, failover: dict | None) -> list[float] | None:
        row, ref = by.get((server, test)), by.get((base, base_test))
        if row is None or ref is None:
            return None
        return [a["rps"] / b["rps"] for a, b in zip(row["rounds"], ref["rounds"], strict=True)]
    return rounds


def failover_rounds(by: dict, failover: dict | None) -> list[float] | None:
    return None if failover is None else [r["seconds_to_next_ack"] for r in failover["rounds"]]


GOALS = [
    Goal("single node CPU per SET", "us", True, 20, metric("respkv", "SET", "cpu_us_per_req")),
    Goal("single node CPU per GET", "us", True, 9, metric("respkv", "GET", "cpu_us_per_req")),
    Goal("single node SET c50 vs redis-server appendfsync always", "x", False, 0.6,
         ratio("respkv", "SET", "redis-aof", "SET")),
    Goal("single node GET -P16 vs redis-server", "x", False, 0.35,
         ratio("respkv", "GET -P16", "redis", "GET -P16")),
    Goal("3-node CPU per replicated SET (3 nodes summed)", "us", True, 60,
         metric("respkv-3", "SET", "cpu_us_per_req")),
    Goal("3-node SET c50 (--cluster --threads 1) vs appendfsync always", "x", False, 0.35,
         ratio("respkv-3", "SET", "redis-aof", "SET")),
    Goal("3-node linearizable GET c50 vs redis-server", "x", False, 0.65,
         ratio("respkv-3", "GET", "redis", "GET")),
    Goal("3-node SET -P16 p99", "ms", True, 30, metric("respkv-3", "SET -P16", "p99_ms")),
    Goal("failover (kill -9 a leader -> next acked write)", "s", True, 0.7, failover_rounds),
]


def evaluate(rows: list[dict], failover: dict | None) -> list[dict]:
    by = {(r["target"], r["test"]): r for r in rows}
    out = []
    for goal in GOALS:
        values = goal.rounds(by, failover)
        value = statistics.median(values) if values else None
        met = None if value is None else (value <= goal.target if goal.at_most
                                          else value >= goal.target)
        out.append({"what": goal.what, "unit": goal.unit, "value": value,
                    "target": goal.target, "at_most": goal.at_most, "met": met,
                    "rounds": values or []})
    return out


# ---------------------------------------------------------------------------- the machine


def command_output(argv: list[str]) -> str:
    try:
        return subprocess.run(argv, capture_output=True, text=True, timeout=10,
                              cwd=ROOT).stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        return "?"


def machine() -> dict:
    model = "?"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    versions = {"python": platform.python_version(),
                "redis-server": command_output(["redis-server", "--version"]),
                "redis-benchmark": command_output(["redis-benchmark", "--version"])}
    for package in ("uvloop", "hiredis"):
        try:
            versions[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            versions[package] = "-"
    import respkv  # the tree's (the benchmark's nodes run this tree too)

    dirty = command_output(["git", "status", "--porcelain", "--untracked-files=no"])
    commit = command_output(["git", "rev-parse", "--short", "HEAD"])
    versions["respkv"] = (f"{respkv.__version__} {commit}{' (modified)' if dirty else ''} "
                          f"from {Path(respkv.__file__).parent}")
    return {"cpus": os.cpu_count(), "usable_cpus": len(os.sched_getaffinity(0)),
            "cpu_model": model, "kernel": platform.release(),
            "loadavg_before": [round(x, 2) for x in os.getloadavg()], "versions": versions,
            "started": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())}


def print_header(meta: dict, args: argparse.Namespace, profile: bool = False) -> None:
    v = meta["versions"]
    print(f"{meta['started']}: {meta['cpus']} cores ({meta['usable_cpus']} usable), "
          f"{meta['cpu_model']}, Linux {meta['kernel']}; load average before "
          f"{' '.join(map(str, meta['loadavg_before']))}")
    print(f"respkv {v['respkv']}; Python {v['python']}, uvloop {v['uvloop']}, "
          f"hiredis {v['hiredis']}; {v['redis-server']}; {v['redis-benchmark']}")
    if profile:
        print(f"profile: py-spy record --nonblocking --rate {args.profile_rate} on every "
              f"respkv process, {' then '.join(args.profile_sampling)}; "
              f"redis-benchmark -c {args.clients} -r {args.keyspace} -d {args.data_size}, "
              f"{args.profile_requests} SETs then {args.profile_requests * 3} GETs", flush=True)
        return
    print(f"redis-benchmark -c {args.clients} -r {args.keyspace} -d {args.data_size} "
          f"-n {args.requests} (x{args.pipeline_factor} with -P 16), {args.repeat} rounds, "
          f"{args.failovers} failovers", flush=True)


# ---------------------------------------------------------------------------- the table


class TargetsBench(Bench):
    def tests_for(self, target: Target) -> list[tuple[str, str, int, int, bool]]:
        wanted = TESTS.get(target.name, set())
        return [t for t in super().tests_for(target) if t[0] in wanted]


def show(value: float | None, unit: str) -> str:
    if value is None:
        return "-"
    return {"us": f"{value:.1f} us", "x": f"{value:.2f}x", "ms": f"{value:.1f} ms",
            "s": f"{value:.3f} s"}[unit]


def print_table(goals: list[dict], rows: list[dict], meta: dict) -> None:
    print()
    width = max(len(g["what"]) for g in goals)
    print(f"{'target':{width}}  {'measured':>9}  {'goal':>10}  met   rounds")
    print("-" * (width + 40))
    for g in goals:
        op = "<=" if g["at_most"] else ">="
        met = "-   " if g["met"] is None else ("MET " if g["met"] else "MISS")
        rounds = ", ".join(show(x, g["unit"]).split()[0].rstrip("x") for x in g["rounds"])
        print(f"{g['what']:{width}}  {show(g['value'], g['unit']):>9}  "
              f"{op + ' ' + show(g['target'], g['unit']):>10}  {met}  {rounds}")
    print()
    print("every run (medians over the rounds); server CPU = utime+stime of the server's "
          "processes (cluster: 3 nodes summed) per request; bench CPU = redis-benchmark's own")
    print(f"{'server':10} {'test':9} {'ops/s':>9} {'p50 ms':>7} {'p99 ms':>8} "
          f"{'server us/req':>13} {'bench us/req':>12}")
    for r in rows:
        print(f"{r['target']:10} {r['test']:9} {r['rps']:>9.0f} {r['p50_ms']:>7.3f} "
              f"{r['p99_ms']:>8.3f} {r['cpu_us_per_req']:>13.1f} "
              f"{r['client_cpu_us_per_req']:>12.1f}")
    if meta.get("idle_cpu_pct"):
        idle = ", ".join(f"{k} {v:.1f}%" for k, v in meta["idle_cpu_pct"].items())
        print(f"idle server CPU (one core = 100%): {idle}")
    if meta.get("failover_error"):
        print(f"failover measurement failed: {meta['failover_error']}")
    if meta.get("leader_changes"):
        lc = meta["leader_changes"]
        changed = lc["after"]["leader_changes"] - lc["before"]["leader_changes"]
        print(f"cluster leader changes during the load: +{changed}"
              f"{'' if changed == 0 else ' (LEADERS CHANGED UNDER LOAD: doubt the rows)'}")
    print(f"load average before/after: {' '.join(map(str, meta['loadavg_before']))} / "
          f"{' '.join(map(str, meta['loadavg_after']))}")


def run_table(args: argparse.Namespace) -> int:
    meta = machine()
    print_header(meta, args)
    bench = TargetsBench(args)
    failover = None
    try:
        targets = [bench.start_redis("redis-aof", ["--appendonly", "yes", "--appendfsync",
                                                   "always", "--save", ""]),
                   bench.start_redis("redis", ["--appendonly", "no"]),
                   bench.start_respkv_single()]
        cluster = bench.start_cluster()
        targets.append(cluster)
        meta["single_shards"], meta["cluster_shards"] = targets[2].shards, cluster.shards
        meta["idle_cpu_pct"] = {k: round(v, 2) for k, v in bench.idle_cpu(targets).items()}
        before = bench.leader_changes(cluster)
        rows = bench.run_benchmarks(targets)
        meta["leader_changes"] = {"before": before, "after": bench.leader_changes(cluster)}
        if args.failovers > 0:
            print("failover ...", flush=True)
            try:
                failover = bench.failover(cluster)
            except (RuntimeError, TimeoutError, OSError, server_bench.RespError) as error:
                # keep the rest of the table: say what failed instead
                meta["failover_error"] = repr(error)
    except KeyboardInterrupt:
        print("\ninterrupted: stopping every server", file=sys.stderr)
        bench.close()
        return 130
    except Exception:
        bench.show_log_tails()
        bench.close()
        raise
    bench.close()
    meta["loadavg_after"] = [round(x, 2) for x in os.getloadavg()]
    meta["finished"] = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())
    goals = evaluate(rows, failover)
    print_table(goals, rows, meta)
    if args.json:
        Path(args.json).write_text(json.dumps(
            {"meta": meta, "args": {k: v for k, v in vars(args).items()
                                    if isinstance(v, int | float | str | bool | None)},
             "targets": goals, "results": rows, "failover": failover}, indent=2) + "\n")
        print(f"wrote {args.json}")
    return 0


# ---------------------------------------------------------------------------- profile


@dataclass
class Profile:
    """What one py-spy run saw of one process."""

    samples: int
    self_counts: collections.Counter
    total_counts: collections.Counter


def read_collapsed(path: Path) -> Profile:
    """py-spy's raw output: one ``frame;frame;...;leaf COUNT`` line per distinct stack,
    the root first. Self time is the leaf's; total time counts a function once per
    stack it is on (a recursive one is not counted twice)."""
    self_counts: collections.Counter = collections.Counter()
    total_counts: collections.Counter = collections.Counter()
    samples = 0
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        frames = stack.split(";")
        n = int(count)
        samples += n
        self_counts[frames[-1]] += n
        for frame in set(frames):
            total_counts[frame] += n
    return Profile(samples, self_counts, total_counts)


def merge(profiles: list[Profile]) -> Profile:
    merged = Profile(0, collections.Counter(), collections.Counter())
    for p in profiles:
        merged.samples += p.samples
        merged.self_counts.update(p.self_counts)
        merged.total_counts.update(p.total_counts)
    return merged


def write_summary(path: Path, title: str, profile: Profile, top: int, note: str = "") -> None:
    lines = [title, f"{profile.samples} samples (idle threads left out){note}", ""]
    for name, counts in (("self", profile.self_counts), ("total", profile.total_counts)):
        lines.append(f"top {top} by {name} time: share of samples, samples, function")
        for frame, n in counts.most_common(top):
            lines.append(f"{n / max(profile.samples, 1) * 100:6.1f}% {n:7d}  {frame}")
        lines.append("")
    path.write_text("\n".join(lines))


class Spy:
    """``py-spy record`` attached to one process until stopped."""

    def __init__(self, pid: int, raw: Path, rate: int, log: Path, gil: bool) -> None:
        self.raw, self.log = raw, log
        with open(log, "wb") as out:
            # --function: one line per function (its first line), not per line executed
            # --nonblocking: the process is never paused to be read, so its timing stays
            # (at the price of a sample now and then that could not be read: "Errors")
            self.proc = subprocess.Popen(
                ["py-spy", "record", "-p", str(pid), "--format", "raw", "--function",
                 "--nonblocking", "--rate", str(rate), "-o", str(raw),
                 *(["--gil"] if gil else [])],
                stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)

    def wait_attached(self) -> None:
        def attached() -> bool:
            if self.proc.poll() is not None:
                raise RuntimeError(f"py-spy exited: {self.log.read_text()[-500:]}")
            return "Sampling process" in self.log.read_text()
        wait_for(attached, 15, "py-spy to attach", 0.05)

    def stop(self) -> None:
        """SIGINT is py-spy's Ctrl-C: it writes what it recorded and exits."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        if not self.raw.exists():
            raise RuntimeError(f"py-spy wrote nothing: {self.log.read_text()[-500:]}")

    def errors(self) -> str:
        """py-spy's own count of the samples it took and could not read."""
        found = re.search(r"Samples: \d+ Errors: \d+", self.log.read_text())
        return found.group(0) if found else "py-spy's counts not found"


# Which samples py-spy keeps: the two views of one workload (see the module's docstring).
SAMPLINGS = {"busy": ("busy threads (a blocking fsync included)", False),
             "gil": ("GIL holders only, py-spy --gil (a blocking fsync left out)", True)}


def profile_run(bench: Bench, args: argparse.Namespace, target: Target, test: str,
                out: Path, sampling: str, spies: list[Spy]) -> dict:
    """One workload on one target while every node is sampled: writes the summaries."""
    on_cluster = target.kind == "cluster"
    what, gil = SAMPLINGS[sampling]
    if on_cluster:
        bench.wait_cluster_healthy(target)
    name = f"{'cluster' if on_cluster else 'single'}-{test.lower()}"
    nodes = [n for n in target.nodes if n.proc is not None]
    spies[:] = [Spy(n.proc.pid, out / f"{name}-{n.name}.raw.txt", args.profile_rate,
                    out / f"{name}-{n.name}.py-spy.log", gil) for n in nodes]
    for spy in spies:
        spy.wait_attached()
    requests = args.profile_requests * (3 if test == "GET" else 1)
    result = bench.redis_benchmark(target.nodes[0].port, test, requests, 1,
                                   target.pids(), cluster=on_cluster)
    for spy in spies:
        spy.stop()
    errors = {n.name: spy.errors() for n, spy in zip(nodes, spies, strict=True)}
    spies.clear()
    load = (f"redis-benchmark -t {test.lower()} -c {args.clients} -n {requests}"
            f"{' --cluster --threads 1' if on_cluster else ''}: {result['rps']:.0f} ops/s, "
            f"server CPU {result['cpu_us_per_req']:.1f} us per request"
            f"{' (3 nodes summed)' if on_cluster else ''} while sampled")
    profiles = {}
    for n in nodes:
        profiles[n.name] = profile = read_collapsed(out / f"{name}-{n.name}.raw.txt")
        write_summary(out / f"{name}-{n.name}.txt",
                      f"{name}, respkv node {n.name}; {load}; sampled: {what}", profile,
                      args.profile_top, f"; {errors[n.name]}")
    if on_cluster:
        write_summary(out / f"{name}-all.txt",
                      f"{name}, the three nodes' samples summed; {load}; sampled: {what}",
                      merge(list(profiles.values())), args.profile_top)
    counts = ", ".join(f"{k} {p.samples}" for k, p in profiles.items())
    print(f"  {sampling}/{name}: {result['rps']:.0f} ops/s, "
          f"{result['cpu_us_per_req']:.1f} us/req, samples {counts}", flush=True)
    return {"sampling": sampling, "workload": name, "requests": requests, **result,
            "samples": {k: p.samples for k, p in profiles.items()}, "py_spy": errors}


def run_profile(args: argparse.Namespace) -> int:
    if shutil.which("py-spy") is None:
        print("py-spy not found on PATH", file=sys.stderr)
        return 2
    root = Path(args.profile)
    meta = machine()
    print_header(meta, args, profile=True)
    bench = Bench(args)
    spies: list[Spy] = []
    index = []
    try:
        single = bench.start_respkv_single()
        cluster = bench.start_cluster()
        for sampling in args.profile_sampling:
            out = root / sampling
            out.mkdir(parents=True, exist_ok=True)
            for target in (single, cluster):
                for test in ("SET", "GET"):
                    index.append(profile_run(bench, args, target, test, out, sampling, spies))
    except KeyboardInterrupt:
        print("\ninterrupted: stopping every server", file=sys.stderr)
        return 130
    finally:
        for spy in spies:
            with contextlib.suppress(RuntimeError):
                spy.stop()
        bench.close()
    (root / "index.json").write_text(json.dumps({"meta": meta, "runs": index}, indent=2)
                                     + "\n")
    print(f"wrote {root}/{{{','.join(args.profile_sampling)}}}/<workload>-<node>.txt (top "
          f"functions), <workload>-all.txt (cluster nodes summed), .raw.txt (py-spy's "
          f"collapsed stacks); {root}/index.json")
    return 0


# ---------------------------------------------------------------------------- main


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--repeat", type=int, default=None, help="rounds (default 3, --quick 1)")
    p.add_argument("--quick", action="store_true",
                   help="a smoke run: 10,000 requests a run, one round, 2 failovers")
    p.add_argument("--requests", type=int, default=None,
                   help="requests per redis-benchmark run without pipelining (default 50000, "
                        "--quick 10000; x4 with -P 16)")
    p.add_argument("--failovers", type=int, default=None, help="default 5, --quick 2; 0: none")
    p.add_argument("--shards", type=int, default=3, help="Raft groups of the cluster")
    p.add_argument("--single-shards", type=int, default=None,
                   help="--shards of the single node (default: the server's default)")
    p.add_argument("--json", metavar="FILE", help="also write the rows as JSON")
    p.add_argument("--keep", action="store_true", help="keep the temp dir (logs, data)")
    p.add_argument("--profile", metavar="DIR",
                   help="profile instead: py-spy on every respkv process under SET then GET")
    p.add_argument("--profile-requests", type=int, default=200000,
                   help="SETs per profiled run (GETs: 3x as many, they are cheaper)")
    p.add_argument("--profile-rate", type=int, default=200, help="py-spy samples per second")
    p.add_argument("--profile-top", type=int, default=40, help="functions per list")
    p.add_argument("--profile-sampling", default="busy,gil",
                   help="busy (every sample of a thread not idle: an fsync on the loop "
                        "counts), gil (py-spy --gil: only threads holding the GIL), or "
                        "both, one after the other (the default), in DIR/busy and DIR/gil")
    ours = p.parse_args(argv)
    # server_bench's own options, its defaults filled in (and redis-server checked)
    passed = ["--mode", "both", "--shards", str(ours.shards)]
    for flag, value in (("--repeat", ours.repeat), ("--requests", ours.requests),
                        ("--failovers", ours.failovers),
                        ("--single-shards", ours.single_shards)):
        if value is not None:
            passed += [flag, str(value)]
    passed += ["--quick"] if ours.quick else []
    passed += ["--keep"] if ours.keep else []
    args = server_bench.parse_args(passed)
    for key in ("json", "profile", "profile_requests", "profile_rate", "profile_top"):
        setattr(args, key, getattr(ours, key))
    args.profile_sampling = [s.strip() for s in ours.profile_sampling.split(",") if s.strip()]
    if not args.profile_sampling or set(args.profile_sampling) - set(SAMPLINGS):
        p.error(f"--profile-sampling: a list of {', '.join(SAMPLINGS)}")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)

    server_bench.stop_on_sigterm()
    return run_profile(args) if args.profile else run_table(args)


if __name__ == "__main__":
    sys.exit(main())
