"""Prometheus metrics, served on --metrics-port (off when 0).

Values are read when scraped, so the hot path pays nothing.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping

from prometheus_client import start_http_server
from prometheus_client.core import REGISTRY, CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from respkv.config import Config
from respkv.raft.refusal import RefusalReason
from respkv.replication.node import ClusterNode
from respkv.server.stats import Stats


class ServerCollector(Collector):
    def __init__(self, config: Config, stats: Stats, clients: Mapping[int, object],
                 node: ClusterNode) -> None:
        self.config = config
        self.stats = stats
        self.clients = clients
        self.node = node

    def collect(self) -> Iterator[GaugeMetricFamily | CounterMetricFamily]:
        node_id = self.config.node_id
        groups = self.node.groups
        commands = CounterMetricFamily("respkv_commands", "Commands run, by name",
                                       labels=["node", "command"])
        for name, record in self.stats.commands.ran():
            commands.add_metric([node_id, name], record.calls)
        yield commands
        clients = GaugeMetricFamily("respkv_connected_clients", "Open client connections",
                                    labels=["node"])
        clients.add_metric([node_id], len(self.clients))
        yield clients
        labels = ["node", "group"]
        for name, help_text, read in (
            ("respkv_raft_term", "Current Raft term", lambda g: g.term),
            ("respkv_raft_commit_index", "Highest committed log index", lambda g: g.commit_index),
            ("respkv_raft_applied_index", "Highest applied log index", lambda g: g.applied_index),
            ("respkv_raft_last_log_index", "Last log index", lambda g: g.last_index),
            ("respkv_raft_snapshot_index", "Index of the latest snapshot",
             lambda g: g.snapshot_index),
            ("respkv_raft_is_leader", "1 on the group's leader", lambda g: int(g.is_leader())),
            ("respkv_raft_group_down", "1 when the group failed and is fenced on this node",
             lambda g: int(bool(g.down))),
            ("respkv_raft_group_stalled", "1 while writes wait and the group does not "
             "advance", lambda g: int(g.stalled)),
            ("respkv_keys", "Keys in the group's keyspace", lambda g: len(g.keyspace)),
        ):
            gauge = GaugeMetricFamily(name, help_text, labels=labels)
            for group in groups:
                gauge.add_metric([node_id, group.name], read(group))
            yield gauge
        changes = CounterMetricFamily("respkv_raft_leader_changes", "Leader changes seen",
                                      labels=labels)
        for group in groups:
            changes.add_metric([node_id, group.name], group.leader_changes)
        yield changes
        failures = CounterMetricFamily("respkv_raft_group_failures",
                                       "Exceptions that stopped the group on this node",
                                       labels=labels)
        for group in groups:
            failures.add_metric([node_id, group.name], group.failures)
        yield failures
        refused = CounterMetricFamily("respkv_raft_refused",
                                      "Raft messages refused by the core, by reason",
                                      labels=[*labels, "reason"])
        for group in groups:
            counts = group.refusal_counts
            for reason in RefusalReason:
                refused.add_metric([node_id, group.name, str(reason)], counts.get(reason, 0))
        yield refused


def serve_metrics(collector: ServerCollector) -> None:
    REGISTRY.register(collector)
    start_http_server(collector.config.metrics_port, addr=collector.config.bind)
