"""The respkv processes of one run: start, kill -9, pause, restart, look at.

Every process is started here and stopped by its own PID. Each node's raft
traffic goes through its proxy: the node listens on its raft port and
advertises the proxy's port, which peers dial. With ``disk_size`` each node's
dir is a tmpfs of that size of its own (the disk-full fault fills one), mounted
here and unmounted when the cluster is stopped.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import redis

from jepsen.proxy import Network
from respkv.replication.peerauth import new_token
from testsupport.disks import MountRefused, mount_tmpfs, unmount
from testsupport.info import agreed_leaders, group_lines, members, parse_info
from testsupport.ports import free_ports
from testsupport.processes import command, stop_processes
from testsupport.waiting import wait_for


@dataclass
class JNode:
    node_id: str
    port: int
    raft_port: int
    proxy_port: int
    dir: Path
    join: str = ""
    args: list[str] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)
    proc: subprocess.Popen | None = None
    password: str = ""  # its requirepass, for the suite's own commands
    paused: bool = False
    starts: int = 0

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def argv(self) -> list[str]:
        argv = [sys.executable, "-m", "respkv.cli", "server", "--node-id", self.node_id,
                "--port", str(self.port), "--raft-port", str(self.raft_port),
                "--raft-advertise", f"127.0.0.1:{self.proxy_port}", "--dir", str(self.dir),
                # the disk faults slow fsync down with DEBUG FSYNC-DELAY
                "--set", "enable-debug-command=local", *self.args]
        argv += ["--join", self.join] if self.join else ["--bootstrap"]  # n1: the token's
        return argv

    def start(self) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, **self.env}
        with open(self.dir.parent / f"{self.node_id}.log", "ab") as log:
            log.write(f"--- start {self.starts} at {time.time():.3f}\n".encode())
            # cwd outside the source tree: with PYTHONPATH set (frozen code), nothing
            # in the working directory shadows it
            self.proc = subprocess.Popen(self.argv(), stdout=log, stderr=subprocess.STDOUT,
                                         env=env, cwd=self.dir.parent)
        self.starts += 1
        self.paused = False

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill(self) -> None:
        if self.alive():
            self.proc.kill()  # SIGKILL, by PID
            self.proc.wait()
        self.paused = False

    def pause(self) -> None:
        if self.alive():
            os.kill(self.proc.pid, signal.SIGSTOP)
            self.paused = True

    def resume(self) -> None:
        if self.alive():
            with contextlib.suppress(OSError):
                os.kill(self.proc.pid, signal.SIGCONT)
        self.paused = False

    def stop(self, timeout: float = 10.0) -> None:
        if not self.alive():
            return
        with contextlib.suppress(OSError):
            os.kill(self.proc.pid, signal.SIGCONT)
            self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

    def info(self, timeout: float = 0.5) -> dict[str, str] | None:
        if not self.alive() or self.paused:
            return None
        try:
            return parse_info(command(self.port, "INFO", "raft", timeout=timeout,
                                      password=self.password))
        except (redis.RedisError, OSError):
            return None


class DisksRefused(RuntimeError):
    """The nodes' own filesystems could not be mounted: the run cannot start."""


class JCluster:
    """n nodes, n1 bootstraps and the others join through it, each behind a proxy."""

    def __init__(self, base: Path, size: int, network: Network, args: list[str] | None = None,
                 env: dict[str, str] | None = None, password: str = "",
                 disk_size: str = "") -> None:
        self.base = Path(base)
        self.disk_size = disk_size  # each node's dir on a tmpfs of this size ("128m")
        self.mounts: list[Path] = []
        self.size = size
        self.network = network
        # every node gets the token: n1 bootstraps the cluster it names
        self.args = ["--join-token", new_token(), *(args or [])]
        self.env = env or {}
        self.password = password  # every node's requirepass; empty: none
        if password:
            self.args += ["--set", f"requirepass={password}"]
        self.nodes: list[JNode] = []

    def new_node(self, node_id: str, join: str = "") -> JNode:
        port, raft_port, proxy_port = free_ports(3)
        directory = self.base / node_id
        if self.disk_size:
            try:
                mount_tmpfs(directory, self.disk_size)
            except MountRefused as error:
                raise DisksRefused(
                    f"the disk-full fault needs each node's dir on a filesystem of its own "
                    f"and mounts a tmpfs there, which takes root: {error}") from error
            self.mounts.append(directory)
        node = JNode(node_id, port, raft_port, proxy_port, directory, join,
                     list(self.args), dict(self.env), password=self.password)
        self.network.add_node(node_id, proxy_port, raft_port)
        self.nodes.append(node)
        return node

    def start(self, timeout: float = 60.0) -> None:
        first = self.new_node("n1")
        first.start()
        wait_for(lambda: (first.info() or {}).get("raft_role") == "leader", timeout,
                 "n1 to lead")
        others = [self.new_node(f"n{i}", join=first.address) for i in range(2, self.size + 1)]
        for node in others:
            node.start()
        wanted = {n.node_id for n in self.nodes}
        wait_for(lambda: self.voters_agree(wanted), timeout, f"voters {sorted(wanted)}")

    def node(self, node_id: str) -> JNode:
        return next(n for n in self.nodes if n.node_id == node_id)

    def infos(self) -> dict[str, dict[str, str]]:
        found = {}
        for node in self.nodes:
            info = node.info()
            if info is not None:
                found[node.node_id] = info
        return found

    def group_names(self) -> list[str]:
        """The cluster's Raft groups (g0 when no node answers)."""
        for info in self.infos().values():
            return list(group_lines(info))
        return ["g0"]

    def voters_agree(self, voters: set[str]) -> bool:
        infos = self.infos()
        return len(infos) == len(self.nodes) and all(
            members(fields.get("voters", "")) == voters
            for info in infos.values() for fields in group_lines(info).values())

    def leader(self, group: str = "g0") -> JNode | None:
        """The node that says it leads ``group``, with the highest term (None if none)."""
        best = None
        for node_id, info in self.infos().items():
            fields = group_lines(info).get(group, {})
            if fields.get("role") == "leader":
                term = int(fields.get("term", 0))
                if best is None or term > best[0]:
                    best = (term, node_id)
        return self.node(best[1]) if best else None

    def caught_up(self) -> bool:
        """In every group: one leader all nodes agree on, every node a voter, and
        every node has applied the leader's commit index."""
        infos = self.infos()
        leaders = agreed_leaders(infos) if len(infos) == len(self.nodes) else None
        if leaders is None:
            return False
        lines = {node_id: group_lines(info) for node_id, info in infos.items()}
        everyone = {n.node_id for n in self.nodes}
        for group, leader in leaders.items():
            mine = lines[leader][group]
            if members(mine.get("voters", "")) != everyone:
                return False
            commit = int(mine["commit_index"])
            if any(int(view[group].get("applied_index", 0)) < commit
                   for view in lines.values()):
                return False
        return True

    def stop(self, timeout: float = 15.0) -> None:
        """SIGCONT + SIGTERM every live node at once (by PID), wait, SIGKILL laggards."""
        live = [n for n in self.nodes if n.alive()]
        try:
            stop_processes([n.proc for n in live], timeout, lambda i: live[i].kill())
        finally:
            while self.mounts:
                unmount(self.mounts.pop())
