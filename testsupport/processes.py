"""Start and stop real respkv processes on 127.0.0.1 for tests and benchmarks.

Every process is started here and stopped by its own PID; waiting is done on
conditions with deadlines, never with bare sleeps.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import redis

from respkv.replication.peerauth import new_token
from testsupport.info import group_lines, members, parse_info
from testsupport.ports import free_port
from testsupport.waiting import GiveUp, wait_for

ROOT = Path(__file__).resolve().parent.parent


# Small, frequent snapshots in small chunks: tests that need the snapshot path use these.
SNAPSHOT_ARGS = ("--set", "snapshot_entries=200", "--set", "snapshot_chunk_bytes=65536")


@dataclass
class Node:
    port: int
    dir: Path
    args: list[str] = field(default_factory=list)
    proc: subprocess.Popen | None = None
    env: dict[str, str] = field(default_factory=dict)  # extra environment for the process
    log_path: Path | None = None
    password: str = ""  # the node's requirepass, for client()

    @property
    def raft_port(self) -> int:
        return self.port + 10000

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def command(self) -> list[str]:
        return [sys.executable, "-m", "respkv.cli", "server", "--port", str(self.port),
                "--dir", str(self.dir), *self.args]

    def start(self, wait: bool = True) -> Node:
        self.dir.mkdir(parents=True, exist_ok=True)
        self.log_path = self.dir.parent / f"{self.dir.name}.log"
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(self.command(), stdout=log, stderr=subprocess.STDOUT,
                                         cwd=ROOT, env={**os.environ, **self.env})
        if wait:
            self.wait_ready()
        return self

    def wait_ready(self, timeout: float = 15.0) -> None:
        def ready() -> bool:
            if self.proc is not None and self.proc.poll() is not None:
                raise GiveUp(f"node exited with {self.proc.returncode}:\n{self.log()}")
            client = self.client(socket_timeout=1)
            try:
                return client.ping()
            finally:
                client.close()

        try:
            wait_for(ready, timeout, f"node on port {self.port}")
        except GiveUp as error:
            raise AssertionError(str(error)) from None

    def client(self, **kwargs) -> redis.Redis:
        kwargs.setdefault("socket_timeout", 10)
        if self.password:
            kwargs.setdefault("password", self.password)
        return redis.Redis(host="127.0.0.1", port=self.port, **kwargs)

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 15.0) -> int | None:
        """Signal the process and wait for it; returns its exit code."""
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else None
        self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError(f"node {self.port} did not exit after signal {sig}") from None

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path else ""


# -- clusters -------------------------------------------------------------------


def raft_info(node: Node, timeout: float = 1.0) -> dict[str, str]:
    """A node's ``INFO raft`` as strings (raises if it does not answer in time)."""
    return parse_info(command(node.port, "INFO", "raft", timeout=timeout,
                              password=node.password))


def command(port: int, *args: object, timeout: float = 5.0, protocol: int = 2,
            password: str = "") -> object:
    """One command on a fresh connection (after AUTH, given a password), the reply as
    the server sent it (no redis-py reply callbacks); error replies are raised as redis
    errors."""
    conn = redis.Connection(host="127.0.0.1", port=port, socket_timeout=timeout,
                            socket_connect_timeout=timeout, protocol=protocol,
                            password=password or None)
    try:
        conn.send_command(*args)
        return conn.read_response()
    finally:
        conn.disconnect()


def local_values(node: Node, keys: list[str], batch: int = 500) -> dict[str, bytes | None]:
    """What ``node`` itself holds for ``keys`` (stale reads: its own state machine)."""
    client = node.client()
    try:
        assert client.execute_command("RESPKV.CONSISTENCY", "stale") in (b"OK", "OK", True)
        found: dict[str, bytes | None] = {}
        for start in range(0, len(keys), batch):
            chunk = keys[start : start + batch]
            found.update(zip(chunk, client.mget(chunk), strict=True))
        return found
    finally:
        client.close()


def exits_with_message(node: Node, text: str, timeout: float = 30.0) -> None:
    """Start ``node`` and expect it to refuse to run: exit code 1, ``text`` in its log."""
    node.start(wait=False)
    assert node.proc is not None
    try:
        code = node.proc.wait(timeout)
    except subprocess.TimeoutExpired:
        node.stop()
        raise AssertionError(f"the node kept running:\n{node.log()[-2000:]}") from None
    assert code == 1
    assert text in node.log(), node.log()[-2000:]


def _node_alive(node: Node) -> bool:
    return node.proc is not None and node.proc.poll() is None


def dump_stacks(node: Node) -> None:
    """For a node that hangs: its threads' stacks (py-spy, if installed) at the end
    of its log, to see where it is stuck."""
    spy = shutil.which("py-spy")
    if spy is None or node.proc is None or node.log_path is None:
        return
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        dump = subprocess.run([spy, "dump", "--pid", str(node.proc.pid)], capture_output=True,
                              text=True, timeout=20)
        with open(node.log_path, "a") as log:
            log.write(f"\n--- hung; py-spy dump ---\n{dump.stdout}{dump.stderr}\n")


def vm_hwm_kib(pid: int) -> int:
    """Peak resident set size of a live process, from /proc/PID/status."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise ValueError(f"no VmHWM for {pid}")


class Cluster:
    """n respkv nodes on 127.0.0.1: n1 bootstraps, the others join through it.

    Nodes are ``Node``s with ``--node-id nI``; ``node_ids[i]`` names ``nodes[i]``.
    Every process is stopped by its own PID in ``stop()`` (call it from a finalizer).
    One Raft group unless ``shards`` says otherwise: "the leader" of the helpers
    below is then the leader of everything. With more, they speak of group g0.
    """

    def __init__(self, base: Path, size: int = 3, args: list[str] | tuple[str, ...] = (),
                 shards: int = 1) -> None:
        self.base = Path(base)
        self.size = size
        self.token = new_token()  # every node gets it: n1 bootstraps the cluster it names
        self.args = ["--shards", str(shards), "--join-token", self.token, *args]
        self.nodes: list[Node] = []
        self.node_ids: list[str] = []

    # -- building -------------------------------------------------------------

    def new_node(self, node_id: str, join: Node | None = None, dir_name: str | None = None,
                 args: list[str] | tuple[str, ...] = ()) -> Node:
        """A node (not started) with its own ports and dir, joining through ``join``."""
        command = ["--node-id", node_id, *self.args, *args]
        command += ["--join", join.address] if join is not None else ["--bootstrap"]
        node = Node(free_port(), self.base / (dir_name or node_id), command)
        self.nodes.append(node)
        self.node_ids.append(node_id)
        return node

    def start(self, timeout: float = 30.0) -> Cluster:
        first = self.new_node("n1").start()
        self.wait_leader(timeout)
        others = [self.new_node(f"n{i}", join=first) for i in range(2, self.size + 1)]
        for node in others:
            node.start(wait=False)
        for node in others:
            node.wait_ready(timeout)
        self.wait_voters(set(self.node_ids), timeout=timeout)
        return self

    def add(self, node_id: str, dir_name: str | None = None, timeout: float = 30.0,
            wait: bool = True, via: Node | None = None) -> Node:
        """Start a new node joining through ``via`` (default: the current leader)."""
        node = self.new_node(node_id, join=via or self.leader(), dir_name=dir_name)
        node.start(wait=False)
        if wait:
            node.wait_ready(timeout)
        return node

    def stop(self, timeout: float = 15.0) -> dict[str, int | None]:
        """SIGTERM every process still running (SIGCONT first: it may be stopped), all
        at once, each by its PID; SIGKILL what has not exited after ``timeout``.
        Returns the exit codes by node id."""
        live = self.alive()

        def hung(i: int) -> None:
            dump_stacks(live[i])
            live[i].kill()

        stop_processes([n.proc for n in live], timeout, hung)
        return {i: n.proc.returncode if n.proc else None
                for i, n in zip(self.node_ids, self.nodes, strict=True)}

    # -- looking at it --------------------------------------------------------------

    def node(self, node_id: str) -> Node:
        return self.nodes[self.node_ids.index(node_id)]

    def id_of(self, node: Node) -> str:
        return self.node_ids[self.nodes.index(node)]

    def alive(self) -> list[Node]:
        return [n for n in self.nodes if _node_alive(n)]

    def infos(self, nodes: list[Node] | None = None) -> dict[str, dict[str, str]]:
        """INFO raft of every given (default: live) node that answers, by node id."""
        found = {}
        for node in self.alive() if nodes is None else nodes:
            try:
                found[self.id_of(node)] = raft_info(node)
            except (redis.RedisError, OSError):
                continue
        return found

    def wait_leader(self, timeout: float = 15.0, among: list[Node] | None = None,
                    exclude: Node | None = None) -> Node:
        """The node that says it leads, once every other live node agrees."""

        def agreed() -> Node | None:
            nodes = [n for n in (among or self.alive()) if n is not exclude]
            infos = self.infos(nodes)
            if len(infos) < len(nodes):
                return None
            leaders = [i for i, f in infos.items() if f["raft_role"] == "leader"]
            if len(leaders) != 1:
                return None
            if any(f["raft_leader"] != leaders[0] for f in infos.values()):
                return None
            return self.node(leaders[0])

        return wait_for(agreed, timeout, "one leader all live nodes agree on")

    def leader(self, timeout: float = 15.0) -> Node:
        return self.wait_leader(timeout)

    def followers(self) -> list[Node]:
        lead = self.leader()
        return [n for n in self.alive() if n is not lead]

    def wait_voters(self, voters: set[str], learners: set[str] = frozenset(),
                    timeout: float = 30.0, nodes: list[Node] | None = None) -> None:
        """Every given (default: live) node reports exactly these voters and learners,
        in every group."""

        def same() -> bool:
            wanted = nodes if nodes is not None else self.alive()
            infos = self.infos(wanted)
            return len(infos) == len(wanted) and all(
                members(g["voters"]) == voters and members(g["learners"]) == learners
                for f in infos.values() for g in group_lines(f).values())

        try:
            wait_for(same, timeout, f"voters {sorted(voters)} learners {sorted(learners)}")
        except TimeoutError as error:
            lines = {i: {k: v for k, v in f.items() if k.startswith("raft_group_")}
                     for i, f in self.infos().items()}
            raise AssertionError(f"{error}\n{lines}") from None

    def wait_applied(self, index: int, nodes: list[Node] | None = None,
                     timeout: float = 30.0) -> None:
        """Every given (default: live) node has applied at least ``index``."""

        def applied() -> bool:
            wanted = nodes if nodes is not None else self.alive()
            infos = self.infos(wanted)
            return len(infos) == len(wanted) and all(
                int(f["raft_applied_index"]) >= index for f in infos.values())

        wait_for(applied, timeout, f"applied index >= {index}")

    def wait_caught_up(self, timeout: float = 30.0) -> int:
        """Every live node has applied the leader's commit index; returns that index."""
        commit = int(raft_info(self.leader())["raft_commit_index"])
        self.wait_applied(commit, timeout=timeout)
        return commit


def stop_processes(procs: list[subprocess.Popen], timeout: float,
                   on_timeout: Callable[[int], None]) -> None:
    """SIGCONT + SIGTERM every process at once (each by its PID; it may be stopped), then
    wait for all; ``on_timeout(i)`` deals with the i-th one if it outlives ``timeout``."""
    for proc in procs:
        with contextlib.suppress(OSError):
            os.kill(proc.pid, signal.SIGCONT)
            proc.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + timeout
    for i, proc in enumerate(procs):
        try:
            proc.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            on_timeout(i)



class Processes:
    """Every process a script starts from any command line (a redis-server, a respkv
    node with ports of its own choosing), so that each is stopped by its own PID at the
    end, also after a Ctrl-C."""

    def __init__(self) -> None:
        self.procs: list[subprocess.Popen] = []

    def start(self, argv: list[str], log_path: Path) -> subprocess.Popen:
        """Start ``argv``, its output appended to ``log_path``, in a session of its own:
        a Ctrl-C in the terminal reaches the script only, which then stops the
        processes in order."""
        with open(log_path, "ab") as log:
            proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT,
                                    stdin=subprocess.DEVNULL, start_new_session=True)
        self.procs.append(proc)
        return proc

    def kill(self, proc: subprocess.Popen) -> None:
        """SIGKILL ``proc`` (a crash, as kill -9) and forget it."""
        with contextlib.suppress(ProcessLookupError):
            os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
        if proc in self.procs:
            self.procs.remove(proc)

    def stop_all(self, timeout: float = 15.0) -> None:
        """SIGTERM every process still running, all at once; SIGKILL what has not
        exited after ``timeout``."""
        live = [proc for proc in self.procs if proc.poll() is None]

        def hung(i: int) -> None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(live[i].pid, signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                live[i].wait(5)

        stop_processes(live, timeout, hung)
        self.procs.clear()


@contextlib.contextmanager
def redis_server(*args: str) -> Iterator[int]:
    """A real redis-server on a free port, for differential tests: its port. Stopped by
    its PID at the end."""
    binary = shutil.which("redis-server")
    assert binary is not None, "redis-server is installed by make install"
    port = free_port()
    proc = subprocess.Popen([binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                             "--appendonly", "no", *args], stdout=subprocess.DEVNULL)
    try:
        probe = redis.Redis(port=port, socket_timeout=1)
        wait_for(lambda: _answers(probe), timeout=10, what="redis-server to start")
        yield port
    finally:
        proc.terminate()
        proc.wait(10)


def _answers(client: redis.Redis) -> bool:
    try:
        client.execute_command("PING")
    except redis.AuthenticationError:
        return True  # started with a password: it answers
    except (redis.ConnectionError, redis.TimeoutError):
        return False
    return True
