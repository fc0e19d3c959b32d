"""Long fuzz runs of everything that parses bytes from the network (not run by CI).

Each target is a function of testsupport.fuzz_targets, the same the short
hypothesis runs in tests/ call. Inputs are mostly mutations of a corpus of valid
requests and frames (bit flips, byte swaps, inserted tokens such as ``\\r\\n`` or
``*99999999``, splices of two corpus entries, cuts into reads), then a
hypothesis-generated share. Prints inputs/s and every distinct failure, with the
first input that showed it.

    python benchmarks/fuzz.py --target parser --inputs 1000000
    python benchmarks/fuzz.py --target all --inputs 200000 --seed 7

The client target starts a single-node server in this process (its Raft port on
127.0.0.1): run it in a network namespace of its own where ports may clash.
"""

from __future__ import annotations

import argparse
import logging
import random
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from hypothesis import HealthCheck, given, seed, settings
from hypothesis import strategies as st

from testsupport import fuzz_targets as ft
from testsupport.ports import free_port

TOKENS = [b"\r\n", b"\n", b"\r", b"*", b"$", b"%", b"~", b">", b"|", b":", b"_", b"-", b"+",
          b"-1", b"0", b"99999999", b"4294967295", b"\x00", b"\xff", b'"', b"'", b"\\x",
          b"*1\r\n", b"$0\r\n\r\n", b"*99999999\r\n", b"%1\r\n", b"\x00\x00\x00\x00",
          b"\xff\xff\xff\xff", b"\x04\x00\x00\x00", b"{", b"}", b"[]", b"null", b"1e9999"]


def mutate(rng: random.Random, corpus: list[bytes]) -> bytes:
    data = bytearray(rng.choice(corpus))
    for _ in range(rng.choice((1, 1, 1, 2, 3, 8))):
        n = len(data)
        op = rng.randrange(9)
        pos = rng.randrange(n + 1) if n else 0
        if op == 0 and n:  # flip a bit
            data[pos % n] ^= 1 << rng.randrange(8)
        elif op == 1 and n:  # any byte
            data[pos % n] = rng.randrange(256)
        elif op == 2:  # an interesting token
            data[pos:pos] = rng.choice(TOKENS)
        elif op == 3 and n:  # delete a range
            del data[pos : pos + rng.randrange(1, 9)]
        elif op == 4 and n:  # duplicate a range
            end = min(n, pos + rng.randrange(1, 32))
            data[pos:pos] = data[pos:end]
        elif op == 5:  # splice with another corpus entry
            other = rng.choice(corpus)
            cut = rng.randrange(len(other) + 1)
            data = data[:pos] + other[cut:] if rng.random() < 0.5 else data + other
        elif op == 6 and n:  # truncate
            del data[pos:]
        elif op == 7 and n:  # a digit changed: lengths and counts off by some
            digits = [i for i, b in enumerate(data) if 0x30 <= b <= 0x39]
            if digits:
                data[rng.choice(digits)] = rng.randrange(0x30, 0x3A)
        elif op == 8:  # random bytes
            data[pos:pos] = rng.randbytes(rng.randrange(1, 16))
    return bytes(data)


def cuts_for(rng: random.Random, data: bytes) -> list[int]:
    if not data or rng.random() < 0.5:
        return []
    return [rng.randrange(1, len(data) + 1) for _ in range(rng.randrange(1, 4))]


class Target:
    def __init__(self, name: str, corpus: list[bytes], run: Callable[[bytes, list[int]], object],
                 close: Callable[[], None] = lambda: None,
                 background: Callable[[], object] | None = None) -> None:
        self.name, self.corpus, self.run, self.close = name, corpus, run, close
        self.background = background  # see MemoryWatch


def make_target(name: str) -> Target:
    if name == "parser":
        return Target(name, ft.request_corpus(), lambda d, c: ft.parse_request(d, c))
    if name == "codec":
        return Target(name, ft.codec_corpus(), lambda d, c: ft.decode_raft_message(d))
    if name == "frames":
        return Target(name, ft.frame_corpus(), lambda d, c: ft.read_frames(d, c))
    if name == "broadcast":
        return Target(name, ft.broadcast_corpus(), lambda d, c: ft.broadcast_payload(d))
    if name == "dial":
        return Target(name, ft.dial_corpus(), lambda d, c: ft.dial_handshake(d, c))
    if name in ("inbound", "handshake"):
        manager = ft.inbound_harness()
        harness = manager.__enter__()
        authenticated = name == "inbound"
        corpus = ft.frame_corpus() if authenticated else ft.handshake_corpus()
        return Target(name, corpus, lambda d, c: harness.run(d, c, authenticated),
                      lambda: manager.__exit__(None, None, None))
    if name == "client":
        manager = ft.client_harness(free_port())
        harness = manager.__enter__()
        return Target(name, ft.request_corpus(), harness.run,
                      lambda: manager.__exit__(None, None, None), harness.background_work)
    raise SystemExit(f"unknown target {name!r}")


TARGETS = ["parser", "client", "codec", "frames", "inbound", "handshake", "dial", "broadcast"]


class Report:
    def __init__(self, target: str, save: Path | None) -> None:
        self.target, self.save = target, save
        self.failures: dict[str, tuple[int, bytes]] = {}
        self.inputs = 0

    def failed(self, error: ft.FuzzFailure, data: bytes) -> None:
        key = str(error).split(" (input ")[0][:100]
        count, first = self.failures.get(key, (0, data))
        if count == 0:
            print(f"  FAILURE [{self.target}] {error}", flush=True)
            if self.save is not None:
                self.save.mkdir(parents=True, exist_ok=True)
                (self.save / f"{self.target}-{len(self.failures)}.bin").write_bytes(data)
        self.failures[key] = (count + 1, first)


def run_mutations(target: Target, inputs: int, rng: random.Random, report: Report) -> None:
    started = last = time.perf_counter()
    for n in range(inputs):
        data = mutate(rng, target.corpus)
        cuts = cuts_for(rng, data)
        try:
            target.run(data, cuts)
            report.watch.check(data)
        except ft.FuzzFailure as error:
            report.failed(error, data)
        report.inputs += 1
        if (n + 1) % 1000 == 0:
            now = time.perf_counter()
            if now - last > 30:
                last = now
                print(f"  {target.name}: {n + 1} inputs, {(n + 1) / (now - started):,.0f}/s,"
                      f" {sum(c for c, _ in report.failures.values())} failures", flush=True)


def run_hypothesis(target: Target, examples: int, seed_: int, report: Report) -> None:
    """Inputs hypothesis makes: bytes, and strings of tokens and corpus entries."""
    pieces = TOKENS + target.corpus

    @seed(seed_)
    @settings(max_examples=examples, deadline=None, database=None,
              suppress_health_check=list(HealthCheck))
    @given(st.binary(max_size=300) | st.lists(st.sampled_from(pieces), max_size=16).map(b"".join),
           st.lists(st.integers(0, 400), max_size=3))
    def check(data: bytes, cuts: list[int]) -> None:
        try:
            target.run(data, cuts)
            report.watch.check(data)
        except ft.FuzzFailure as error:
            report.failed(error, data)
        report.inputs += 1

    if examples:
        check()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--target", default="all", help=f"one of {TARGETS} or all")
    parser.add_argument("--inputs", type=int, default=1_000_000, help="inputs per target")
    parser.add_argument("--hypothesis-share", type=float, default=0.02,
                        help="share of the inputs generated by hypothesis (slower)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--save", type=Path, default=None, help="write failing inputs here")
    args = parser.parse_args()
    logging.disable(logging.CRITICAL)  # refusals and failed commands are expected here
    names = TARGETS if args.target == "all" else args.target.split(",")
    total_failures = 0
    for name in names:
        target = make_target(name)
        report = Report(name, args.save)
        for data in target.corpus:  # warm up (a thread pool, caches) before the watch
            try:
                target.run(data, [])
            except ft.FuzzFailure as error:
                report.failed(error, data)
        report.watch = ft.MemoryWatch(background=target.background)  # type: ignore[attr-defined]
        rng = random.Random(f"{args.seed}-{name}")
        hypothesis_inputs = int(args.inputs * args.hypothesis_share)
        started = time.perf_counter()
        try:
            run_mutations(target, args.inputs - hypothesis_inputs, rng, report)
            run_hypothesis(target, hypothesis_inputs, args.seed, report)
            report.watch.check(b"(end of run)")  # type: ignore[attr-defined]
        except ft.FuzzFailure as error:
            report.failed(error, b"")
        finally:
            target.close()
        elapsed = time.perf_counter() - started
        failures = sum(count for count, _ in report.failures.values())
        total_failures += failures
        print(f"{name}: {report.inputs:,} inputs in {elapsed:.1f}s,"
              f" {report.inputs / elapsed:,.0f} inputs/s, {failures} failures"
              f" ({len(report.failures)} distinct)", flush=True)
        for key, (count, first) in report.failures.items():
            print(f"  {count:>8} x {key}\n           first: {first[:160]!r}", flush=True)
    sys.exit(1 if total_failures else 0)


if __name__ == "__main__":
    main()
