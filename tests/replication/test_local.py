"""``respkv local``, the README's first command: it starts a 3-node cluster one can
use at once, and one signal to it (Ctrl-C, kill -INT, kill -TERM) stops every node
cleanly."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest
import redis
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample
from redis.cluster import RedisCluster

from testsupport.ports import free_port, free_ports, port_free
from testsupport.waiting import wait_for


def free_base_port(nodes: int) -> int:
    """A client port such that it, the next ones and their raft ports are free."""
    while True:
        base = free_port()
        if all(port_free(base + i) and port_free(base + i + 10000) for i in range(nodes)):
            return base


def _samples(port: int) -> list[Sample]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
        text = response.read().decode()
    return [sample for family in text_string_to_metric_families(text)
            for sample in family.samples]


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_local_starts_a_usable_cluster_and_one_signal_stops_every_node(
        tmp_path: Path, sig: signal.Signals) -> None:
    base = free_base_port(3)
    [metrics] = free_ports(1)  # above the client and raft ports: never one of theirs
    while not (port_free(metrics + 1) and port_free(metrics + 2)):
        [metrics] = free_ports(1)
    log_path = tmp_path / "local.log"
    with open(log_path, "wb") as log:
        local = subprocess.Popen(
            [sys.executable, "-m", "respkv.cli", "local", "--nodes", "3", "--base-port",
             str(base), "--dir", str(tmp_path / "data"), "--log-level", "info",
             "--metrics-port", str(metrics)],
            stdout=log, stderr=subprocess.STDOUT)
    pids: list[int] = []
    try:
        wait_for(lambda: b"cluster of 3" in log_path.read_bytes(), 60, "the cluster to start")
        for i in range(3):
            with redis.Redis(port=base + i, socket_timeout=5) as node:
                pids.append(int(node.info("server")["process_id"]))
        cluster = RedisCluster(host="127.0.0.1", port=base, socket_timeout=5)
        try:
            assert cluster.set("hello", "world")
            assert len(cluster.get_primaries()) == 3
        finally:
            cluster.close()
        with redis.Redis(port=base + 1, socket_timeout=5) as follower:
            assert follower.get("hello") == b"world"
        # each node's metrics on its own port; every group's leader shows its two peers
        lags = [sample for i in range(3) for sample in _samples(metrics + i)
                if sample.name == "respkv_raft_follower_lag_entries"]
        for group in ("g0", "g1", "g2"):
            peers = {s.labels["peer"] for s in lags if s.labels["group"] == group}
            assert len(peers) >= 2, lags
        assert all(s.value >= 0 for s in lags)

        local.send_signal(sig)  # to the launcher only, as kill -INT/-TERM does
        assert local.wait(30) == 0
        assert not [pid for pid in pids if alive(pid)]
        assert log_path.read_bytes().count(b"shutdown complete") == 3
    finally:
        if local.poll() is None:
            local.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                local.wait(20)
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
