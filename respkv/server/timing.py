"""What commands cost: INFO commandstats, latencystats and errorstats, and the slow
ones handed to SLOWLOG and LATENCY.

A command's time runs from its dispatch until its reply is ready: for a write, until
its log entry is applied (so it counts the wait on the log and its fsync); for a
server command that awaits (DEBUG SLEEP, EXEC, admin verbs), until it is done; for a
blocking pop, only the time to set it up, not the time it waits for data (Redis
does not count that either). Each finished command costs the caller's
``perf_counter_ns`` pair, one dict lookup, a few integer additions and one bisect into
fixed buckets (respkv.histogram): no allocation.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterator
from time import perf_counter_ns
from typing import Protocol

from respkv.commands.table import Command
from respkv.config import Config
from respkv.histogram import BOUNDS_NS, BUCKETS, percentile
from respkv.server.latency import LatencyMonitor
from respkv.server.slowlog import SlowLog

PERCENTILES = (50.0, 99.0, 99.9)  # latency-tracking-info-percentiles' default
MAX_ERROR_KINDS = 128  # as Redis: error prefixes past this many are not counted


class Caller(Protocol):
    """The connection a command ran on, as SLOWLOG shows it."""

    addr: str
    name: bytes


class CommandRecord:
    """One command's counters, and its latency histogram in ``BOUNDS_US`` buckets."""

    __slots__ = ("buckets", "calls", "failed", "ns", "rejected")

    def __init__(self) -> None:
        self.calls = 0
        self.ns = 0
        self.rejected = 0  # refused before running (arity, ACL, OOM, MOVED...)
        self.failed = 0  # ran, answered an error
        self.buckets = [0] * BUCKETS

    def percentile(self, wanted: float) -> float:
        """The bucket bound (µs) under which ``wanted`` percent of the calls fell."""
        return percentile(self.buckets, self.calls, wanted)


class CommandTimes:
    def __init__(self, config: Config, slowlog: SlowLog, latency: LatencyMonitor) -> None:
        self.config = config
        self.slowlog = slowlog
        self.latency = latency
        self.records: dict[str, CommandRecord] = {}
        self.errors: dict[str, int] = {}  # error replies by prefix (ERR, WRONGTYPE...)
        self.error_replies = 0

    def finished(self, name: str, command: Command, start: int, failed: bool,
                 caller: Caller, args: list[bytes]) -> None:
        """``name`` (``config|get`` for a subcommand) ran from ``start``
        (perf_counter_ns) until now."""
        ns = perf_counter_ns() - start
        record = self.records.get(name)
        if record is None:
            record = self.records[name] = CommandRecord()
        record.calls += 1
        record.ns += ns
        if failed:
            record.failed += 1
        record.buckets[bisect_left(BOUNDS_NS, ns)] += 1
        config = self.config
        slower = config.slowlog_log_slower_than
        if (slower >= 0 and ns >= slower * 1000) or (
                config.latency_monitor_threshold
                and ns >= config.latency_monitor_threshold * 1_000_000):
            self._slow(command, ns, caller, args)

    def _slow(self, command: Command, ns: int, caller: Caller, args: list[bytes]) -> None:
        self.latency.add("fast-command" if "fast" in command.flags else "command",
                         ns // 1_000_000)
        slower = self.config.slowlog_log_slower_than
        if 0 <= slower <= ns // 1000 and "skip_slowlog" not in command.flags:
            self.slowlog.add(args, ns // 1000, caller.addr, caller.name)

    def rejected(self, name: str) -> None:
        record = self.records.get(name)
        if record is None:
            record = self.records[name] = CommandRecord()
        record.rejected += 1

    def error_reply(self, data: bytes) -> None:
        """An error reply was sent: count it under its prefix, as Redis does (the
        word after ``-``, within its first 32 bytes; ERR when there is none)."""
        self.error_replies += 1
        space = data.find(b" ", 0, 32)
        prefix = data[1:space].decode("utf-8", "replace") if space > 1 else "ERR"
        errors = self.errors
        if prefix in errors:
            errors[prefix] += 1
        elif len(errors) < MAX_ERROR_KINDS:
            errors[prefix] = 1

    @property
    def total_calls(self) -> int:
        return sum(record.calls for record in self.records.values())

    def ran(self) -> Iterator[tuple[str, CommandRecord]]:
        """Commands called, rejected or failed at least once, by name."""
        for name in sorted(self.records):
            record = self.records[name]
            if record.calls or record.rejected or record.failed:
                yield name, record

    def reset(self) -> None:
        self.records.clear()
        self.errors.clear()
        self.error_replies = 0
