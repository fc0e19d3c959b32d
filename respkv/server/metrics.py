"""Prometheus metrics, served on --metrics-port (off when 0).

Values are read when scraped, so the hot path pays nothing for them: counters and
gauges from what the node keeps anyway, histograms from the fixed-bucket ones the
hot paths fill (respkv.histogram), commands' from INFO latencystats' own.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

from prometheus_client import start_http_server
from prometheus_client.core import (
    REGISTRY,
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from respkv.config import Config
from respkv.histogram import Histogram, cumulative
from respkv.raft.refusal import RefusalReason
from respkv.replication.group import RaftGroup
from respkv.replication.node import ClusterNode
from respkv.server.stats import Stats

GROUP = ["node", "group"]


def _histogram(name: str, help_text: str, labels: list[str],
               rows: Sequence[tuple[list[str], Sequence[int], float]]) -> HistogramMetricFamily:
    """One histogram family: per label set, its buckets and the sum of its samples."""
    family = HistogramMetricFamily(name, help_text, labels=labels)
    for values, buckets, total in rows:
        family.add_metric(values, cumulative(buckets), total)
    return family


def _seconds(histogram: Histogram) -> tuple[Sequence[int], float]:
    return histogram.buckets, histogram.total


class ServerCollector(Collector):
    def __init__(self, config: Config, stats: Stats, clients: Mapping[int, object],
                 node: ClusterNode) -> None:
        self.config = config
        self.stats = stats
        self.clients = clients
        self.node = node

    def collect(self) -> Iterator[Metric]:
        node_id = self.config.node_id
        groups = self.node.groups
        yield from self._commands(node_id)
        clients = GaugeMetricFamily("respkv_connected_clients", "Open client connections",
                                    labels=["node"])
        clients.add_metric([node_id], len(self.clients))
        yield clients
        used = GaugeMetricFamily("respkv_used_memory_bytes", "The dataset's memory "
                                 "estimate (INFO used_memory, what maxmemory limits)",
                                 labels=["node"])
        used.add_metric([node_id], sum(group.keyspace.used for group in groups))
        yield used
        yield from self._disk(node_id)
        for name, help_text, read in _GROUP_GAUGES:
            gauge = GaugeMetricFamily(name, help_text, labels=GROUP)
            for group in groups:
                gauge.add_metric([node_id, group.name], read(group))
            yield gauge
        for name, help_text, read in _GROUP_COUNTERS:
            counter = CounterMetricFamily(name, help_text, labels=GROUP)
            for group in groups:
                counter.add_metric([node_id, group.name], read(group))
            yield counter
        yield from self._per_group(node_id, groups)

    def _commands(self, node_id: str) -> Iterator[Metric]:
        commands = CounterMetricFamily("respkv_commands", "Commands run, by name",
                                       labels=["node", "command"])
        rows = []
        for name, record in self.stats.commands.ran():
            commands.add_metric([node_id, name], record.calls)
            rows.append(([node_id, name], record.buckets, record.ns / 1e9))
        yield commands
        yield _histogram("respkv_command_duration_seconds", "Command latency, from "
                         "dispatch until the reply is ready (a write: until applied)",
                         ["node", "command"], rows)
        errors = CounterMetricFamily("respkv_error_replies", "Error replies sent, by "
                                     "prefix (INFO errorstats)", labels=["node", "prefix"])
        for prefix, count in sorted(self.stats.commands.errors.items()):
            errors.add_metric([node_id, prefix], count)
        yield errors

    def _disk(self, node_id: str) -> Iterator[Metric]:
        yield _histogram("respkv_wal_fsync_duration_seconds", "Each loop turn's WAL "
                         "write and fsync", ["node"],
                         [([node_id], *_seconds(self.stats.fsync_seconds))])
        log = self.node.wal
        written = CounterMetricFamily("respkv_wal_written_bytes", "Bytes written to the "
                                      "WAL's segments", labels=["node"])
        written.add_metric([node_id], log.wal.bytes_written if log else 0)
        yield written
        size = GaugeMetricFamily("respkv_wal_size_bytes", "The WAL's segments on disk",
                                 labels=["node"])
        size.add_metric([node_id], log.wal.disk_bytes() if log else 0)
        yield size
        transport = self.node.transport
        for way in ("sent", "received"):
            counter = CounterMetricFamily(f"respkv_snapshot_{way}_bytes",
                                          f"Snapshot bytes {way} over the Raft port",
                                          labels=["node"])
            counter.add_metric([node_id], getattr(transport, f"snapshot_bytes_{way}", 0))
            yield counter

    def _per_group(self, node_id: str, groups: list[RaftGroup]) -> Iterator[Metric]:
        yield _histogram("respkv_raft_commit_duration_seconds", "On the leader: from "
                         "handing a write to the log until its entry is applied", GROUP,
                         [([node_id, g.name], *_seconds(g.proposals.commit_seconds))
                          for g in groups])
        yield _histogram("respkv_raft_apply_duration_seconds", "Applying one batch of "
                         "committed entries to the state machine", GROUP,
                         [([node_id, g.name], *_seconds(g.loop.apply_seconds))
                          for g in groups])
        entries = GaugeMetricFamily("respkv_raft_log_entries", "Log entries held in "
                                    "memory (since the latest snapshot)", labels=GROUP)
        size = GaugeMetricFamily("respkv_raft_log_bytes", "Bytes of the log entries held "
                                 "in memory", labels=GROUP)
        lag = GaugeMetricFamily("respkv_raft_follower_lag_entries", "On the leader: the "
                                "commit index minus what the peer is known to hold",
                                labels=[*GROUP, "peer"])
        refused = CounterMetricFamily("respkv_raft_refused",
                                      "Raft messages refused by the core, by reason",
                                      labels=[*GROUP, "reason"])
        for group in groups:
            count, held = group.log_in_memory()
            entries.add_metric([node_id, group.name], count)
            size.add_metric([node_id, group.name], held)
            commit = group.commit_index
            for peer, match in sorted(group.follower_matches().items()):
                lag.add_metric([node_id, group.name, peer], max(0, commit - match))
            counts = group.refusal_counts
            for reason in RefusalReason:
                refused.add_metric([node_id, group.name, str(reason)], counts.get(reason, 0))
        yield from (entries, size, lag, refused)


_GROUP_GAUGES: tuple[tuple[str, str, Callable[[Any], float]], ...] = (
    ("respkv_raft_term", "Current Raft term", lambda g: g.term),
    ("respkv_raft_commit_index", "Highest committed log index", lambda g: g.commit_index),
    ("respkv_raft_applied_index", "Highest applied log index", lambda g: g.applied_index),
    ("respkv_raft_last_log_index", "Last log index", lambda g: g.last_index),
    ("respkv_raft_snapshot_index", "Index of the latest snapshot", lambda g: g.snapshot_index),
    ("respkv_raft_is_leader", "1 on the group's leader", lambda g: int(g.is_leader())),
    ("respkv_raft_has_leader", "1 while this node knows the group's leader",
     lambda g: int(bool(g.leader_id()))),
    ("respkv_raft_is_learner", "1 while this node is a learner of the group (joining)",
     lambda g: int(g.is_learner)),
    ("respkv_raft_pending_proposals", "Writes queued or in the log, not yet applied",
     lambda g: len(g.proposals.queue) + len(g.proposals.waiters)),
    ("respkv_raft_group_down", "1 when the group failed and is fenced on this node",
     lambda g: int(bool(g.down))),
    ("respkv_raft_group_stalled", "1 while writes wait and the group does not advance",
     lambda g: int(g.stalled)),
    ("respkv_keys", "Keys in the group's keyspace", lambda g: len(g.keyspace)),
    ("respkv_store_size_bytes", "The group's state store on disk", lambda g: g.store_bytes()),
)

_GROUP_COUNTERS: tuple[tuple[str, str, Callable[[Any], float]], ...] = (
    ("respkv_raft_leader_changes", "Leader changes seen", lambda g: g.leader_changes),
    ("respkv_raft_elections", "Elections this node started (campaigns past pre-vote)",
     lambda g: g.core.elections),
    ("respkv_raft_proposals_dropped", "Writes that failed before reaching the log (not "
     "the leader, too big, shutting down)", lambda g: g.proposals.dropped),
    ("respkv_raft_proposals_failed", "Writes that failed once in the log (lost to a "
     "new leader, timed out, not durable)", lambda g: g.proposals.failed),
    ("respkv_raft_read_rounds", "ReadIndex rounds this node asked for",
     lambda g: g.read_rounds()[0]),
    ("respkv_raft_group_failures", "Exceptions that stopped the group on this node",
     lambda g: g.failures),
)


def serve_metrics(collector: ServerCollector) -> None:
    REGISTRY.register(collector)
    start_http_server(collector.config.metrics_port, addr=collector.config.bind)
