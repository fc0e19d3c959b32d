"""Counters for INFO and the metrics endpoint."""

from __future__ import annotations

import time

from respkv.config import Config
from respkv.histogram import Histogram
from respkv.server.latency import LatencyMonitor
from respkv.server.slowlog import SlowLog
from respkv.server.timing import CommandTimes


class Stats:
    def __init__(self, config: Config | None = None) -> None:
        config = config if config is not None else Config()
        self.started = time.time()
        self.slowlog = SlowLog(config)
        self.latency = LatencyMonitor(config)
        self.commands = CommandTimes(config, self.slowlog, self.latency)
        self.fsync_seconds = Histogram()  # each loop turn's WAL fsync
        self.connections_received = 0
        self.rejected_connections = 0
        self.protocol_errors = 0
        self.query_limit_disconnections = 0
        self.output_limit_disconnections = 0
        self.auth_failures = 0
        self.blocked_clients = 0  # connections waiting in a blocking pop now (not reset)
        self.auth_failures = 0  # AUTH / HELLO AUTH with a wrong password
        # clients dropped for client-query-buffer-limit / client-output-buffer-limit
        self.query_limit_disconnections = 0
        self.output_limit_disconnections = 0
        self.max_loop_pause_ms = 0.0  # longest the event loop went without a turn

    @property
    def total_commands(self) -> int:
        return self.commands.total_calls

    def reset(self) -> None:
        self.commands.reset()
        self.connections_received = 0
        self.rejected_connections = 0
        self.protocol_errors = 0
        self.query_limit_disconnections = 0
        self.output_limit_disconnections = 0
        self.max_loop_pause_ms = 0.0
