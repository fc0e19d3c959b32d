"""Workloads: what the clients do, what is read at the end, how it is checked.

A ``Workload`` (``--workload``, comma separated) makes its client threads,
prepares its keys before the load, reads every node's final state after
recovery and checks the history. ``registers`` (below) is the original one;
``bank`` (jepsen.bank) and ``list-append`` (jepsen.listappend) are
transactional: their clients are ``TxnClient``s, which send MULTI ... EXEC.

Each client thread is bound to a node and runs one op at a time. The
``registers`` ops (chosen from a seeded generator per client):

- ``read``  GET r<k>                         register read
- ``write`` SET r<k> <unique>                register write
- ``cas``   SET r<k> <unique> GET            read-modify-write: returns the previous value
- ``incr``  INCR c0                          counter
- ``ledger`` SET l:<client>:<i> <unique>     write-once keys: all acknowledged must survive
- ``mset``/``mget`` MSET/MGET {m<k>}a {m<k>}b, one hash slot: both keys written with the
  same value, so an MGET returning two different values is a torn read; the pair is
  checked as one register

A write sent to a follower comes back ``MOVED``: the client follows it to the
leader (the follower did nothing, so this is the same op). Reads are served
by the node the client is bound to (reads are linearizable on every node).

Outcomes: a reply is ``ok``; ``MOVED``/``CLUSTERDOWN``/``ERR write lost`` (and
a connection that could not be made) mean the op did not happen: ``fail``; a
timeout, a connection lost after sending, ``TRYAGAIN`` or any other error
after a write was sent: ``unknown``. A read that did not return is ``fail``
(it constrains nothing either way).
"""

from __future__ import annotations

import argparse
import random
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import redis

from jepsen import checker
from jepsen.history import FAIL, OK, UNKNOWN, History, Op
from jepsen.nodes import JCluster, JNode
from testsupport.processes import command

NOT_HAPPENED = ("MOVED", "CLUSTERDOWN", "ERR write lost")


def error_text(error: redis.ResponseError) -> str:
    """The error reply as the server sent it (redis-py strips the code)."""
    codes = {redis.exceptions.MovedError: "MOVED", redis.exceptions.AskError: "ASK",
             redis.exceptions.ClusterDownError: "CLUSTERDOWN",
             redis.exceptions.TryAgainError: "TRYAGAIN"}
    code = codes.get(type(error))
    if code is None:
        text = str(error)
        return text if text.split(" ", 1)[0].isupper() else f"ERR {text}"
    return f"{code} {error}"


@dataclass
class Mix:
    read: float = 0.34
    write: float = 0.2
    cas: float = 0.12
    incr: float = 0.1
    ledger: float = 0.12
    mset: float = 0.06
    mget: float = 0.06

    def choices(self) -> tuple[list[str], list[float]]:
        names = ["read", "write", "cas", "incr", "ledger", "mset", "mget"]
        return names, [getattr(self, n) for n in names]


class BaseClient(threading.Thread):
    """One client thread: its connections (one per node port), a seeded generator, and
    a loop that runs one op at a time until told to stop. A bug in the client (an
    exception) is recorded in ``crashes`` and the loop goes on with fresh connections."""

    def __init__(self, number: int, history: History, names: dict[int, str],
                 home: int, seed: int, stop: threading.Event, timeout: float = 1.5,
                 think: float = 0.002) -> None:
        super().__init__(name=f"client-{number}", daemon=True)
        self.number = number
        self.history = history
        self.names = names  # client port -> node id (a rejoined node may get a new id)
        self.home = home  # the client port of this client's node
        self.random = random.Random(seed * 1000 + number)
        self.stop_event = stop
        self.timeout = timeout
        self.think = think
        self.conns: dict[int, redis.Connection] = {}
        self.password = ""  # the nodes' requirepass (the runner's --password)
        self.counter = 0
        self.crashes: list[str] = []  # bugs in this client, not in the server

    # -- connections -------------------------------------------------------------

    def _conn(self, port: int) -> redis.Connection:
        conn = self.conns.get(port)
        if conn is None:
            conn = redis.Connection(host="127.0.0.1", port=port, socket_timeout=self.timeout,
                                    socket_connect_timeout=self.timeout,
                                    password=self.password or None)
            self.conns[port] = conn
        return conn

    def _drop(self, port: int) -> None:
        conn = self.conns.pop(port, None)
        if conn is not None:
            conn.disconnect()

    def call(self, port: int, *args) -> tuple[str, object]:
        """(outcome, reply): outcome 'reply', 'error' (reply = message),
        'unsent' (connection failed before sending), 'unknown' (sent, no reply)."""
        outcome, replies = self.pipeline(port, [args])
        if outcome in ("unsent", "unknown"):
            return outcome, replies
        reply = replies[0]
        if isinstance(reply, redis.ResponseError):
            return "error", error_text(reply)
        return "reply", reply

    def pipeline(self, port: int, commands: list[tuple]) -> tuple[str, object]:
        """Send ``commands`` in one write and read one reply each: ('replies', list in
        which error replies are ResponseError objects), or ('unsent' | 'unknown',
        message) as for ``call``. Any reply missing makes the whole 'unknown': the
        server may have run every command even if it answered none."""
        conn = self._conn(port)
        try:
            conn.connect()
        except (redis.ConnectionError, redis.TimeoutError, OSError) as error:
            self._drop(port)
            return "unsent", str(error)
        try:
            conn.send_packed_command(conn.pack_commands(commands))
        except (redis.ConnectionError, redis.TimeoutError, OSError) as error:
            self._drop(port)
            return "unknown", str(error)
        replies: list[object] = []
        try:
            for _ in commands:
                try:
                    replies.append(conn.read_response())
                except redis.ResponseError as error:
                    replies.append(error)
        except (redis.ConnectionError, redis.TimeoutError, OSError) as error:
            self._drop(port)
            return "unknown", str(error) or type(error).__name__
        return "replies", replies

    def unique(self) -> str:
        self.counter += 1
        return f"{self.number}-{self.counter}"

    # -- the loop --------------------------------------------------------------------

    def choose(self) -> str:
        raise NotImplementedError

    def one(self, kind: str) -> object:
        raise NotImplementedError

    def run(self) -> None:
        try:
            while not self.stop_event.is_set():
                kind = self.choose()
                try:
                    self.one(kind)
                except Exception as error:
                    self.crashes.append(f"{kind}: {error!r}")
                    for port in list(self.conns):
                        self._drop(port)
                if self.think:
                    self.stop_event.wait(self.think * self.random.random() * 2)
        finally:
            for port in list(self.conns):
                self._drop(port)


class Client(BaseClient):
    def __init__(self, number: int, history: History, names: dict[int, str],
                 home: int, seed: int, stop: threading.Event, registers: int = 3,
                 timeout: float = 1.5, think: float = 0.002, mix: Mix | None = None) -> None:
        super().__init__(number, history, names, home, seed, stop, timeout, think)
        self.registers = registers
        self.mix = mix or Mix()
        self.kinds, self.weights = self.mix.choices()

    def choose(self) -> str:
        return self.random.choices(self.kinds, self.weights)[0]

    def one(self, kind: str) -> Op:
        k = self.random.randrange(self.registers)
        if kind in ("read", "write", "cas"):
            key = f"r{k}"
            value = None if kind == "read" else self.unique()
            args = {"read": ("GET", key), "write": ("SET", key, value),
                    "cas": ("SET", key, value, "GET")}[kind]
        elif kind == "incr":
            key, value, args = "c0", None, ("INCR", "c0")
        elif kind == "ledger":
            value = self.unique()
            key = f"l:{value}"
            args = ("SET", key, value)
        elif kind == "mset":
            key, value = f"m{k}", self.unique()
            args = ("MSET", f"{{m{k}}}a", value, f"{{m{k}}}b", value)
        else:
            key, value = f"m{k}", None
            args = ("MGET", f"{{m{k}}}a", f"{{m{k}}}b")
        is_read = kind in ("read", "mget")
        port = self.home
        op = self.history.invoke(self.number, kind, key, value, node=self.names.get(port, "?"))
        for _hop in range(3):
            outcome, reply = self.call(port, *args)
            if outcome == "error" and str(reply).startswith("MOVED") and not is_read:
                target = str(reply).split()[-1]
                port = int(target.rpartition(":")[2])
                if port in self.names:
                    op.node = self.names[port]
                    continue
            break
        return self.finish(op, outcome, reply, is_read)

    def finish(self, op: Op, outcome: str, reply: object, is_read: bool) -> Op:
        history = self.history
        if outcome == "reply":
            return history.complete(op, OK, self.decode(op, reply))
        error = str(reply)[:200]
        if outcome == "unsent":
            self.stop_event.wait(0.05)  # the node is down: do not spin
        if outcome == "unsent" or (outcome == "error" and error.startswith(NOT_HAPPENED)):
            return history.complete(op, FAIL, error=error)
        if is_read:
            return history.complete(op, FAIL, error=error)  # says nothing: ignored
        return history.complete(op, UNKNOWN, error=error)

    @staticmethod
    def decode(op: Op, reply: object) -> object:
        def text(value: object) -> object:
            return value.decode() if isinstance(value, bytes) else value

        if op.kind == "incr":
            return reply if isinstance(reply, int) else f"BAD:{reply!r}"
        if op.kind in ("write", "ledger", "mset"):
            return None if reply in (b"OK", "OK", True) else f"BAD:{reply!r}"
        if op.kind == "mget":
            if not isinstance(reply, list) or len(reply) != 2:
                return f"BAD:{reply!r}"
            a, b = (text(v) for v in reply)
            return a if a == b else f"TORN:{a}|{b}"  # matches no state: a violation
        return text(reply)


# -- transactional clients ------------------------------------------------------------


@dataclass
class Exec:
    """What one MULTI ... EXEC came to.

    ``kind``: ``ok`` (``replies`` is EXEC's array), ``aborted`` (a null EXEC: a
    watched key changed, nothing ran), ``moved`` (a refusal naming the leader:
    nothing ran; ``port`` is where to go), ``fail`` (nothing ran: CLUSTERDOWN,
    ``ERR write lost``, EXECABORT...), ``unknown`` (it may or may not have run:
    a timeout, a connection lost after sending, TRYAGAIN), ``bad`` (a reply
    that no correct server sends: kept in the history as a ``BAD:`` result)."""

    kind: str
    replies: list[Any] = field(default_factory=list)
    error: str = ""
    port: int = 0


def moved_port(error: str) -> int:
    """The client port a ``MOVED <slot> <host>:<port>`` names (0 if none)."""
    target = error.split()[-1] if error.startswith("MOVED") else ""
    port = target.rpartition(":")[2]
    return int(port) if port.isdigit() else 0


def classify_exec(outcome: str, replies: object, queued: int) -> Exec:
    """The ``pipeline`` result of MULTI, ``queued`` commands and EXEC, classified."""
    if outcome == "unsent":
        return Exec("fail", error=str(replies)[:200])
    if outcome == "unknown":
        return Exec("unknown", error=str(replies)[:200])
    assert isinstance(replies, list) and len(replies) == queued + 2
    multi, commands, result = replies[0], replies[1:-1], replies[-1]
    if isinstance(multi, redis.ResponseError):
        return Exec("bad", error=f"MULTI refused: {error_text(multi)}")
    refused = next((error_text(r) for r in commands if isinstance(r, redis.ResponseError)),
                   None)
    if refused is not None:
        # one refused command discards the transaction (EXECABORT): nothing ran
        if not isinstance(result, redis.ResponseError):
            return Exec("bad", error=f"EXEC ran after {refused!r}: {result!r}")
        if refused.startswith("MOVED"):
            return Exec("moved", error=refused, port=moved_port(refused))
        if refused.startswith(("CLUSTERDOWN", "TRYAGAIN")):
            return Exec("fail", error=refused)
        return Exec("bad", error=f"queued command refused: {refused}")
    if any(r not in (b"QUEUED", "QUEUED") for r in commands):
        return Exec("bad", error=f"not QUEUED: {commands!r}")
    if result is None:
        return Exec("aborted", error="watched key changed")
    if isinstance(result, redis.ResponseError):
        text = error_text(result)
        if text.startswith("MOVED"):
            return Exec("moved", error=text, port=moved_port(text))
        if text.startswith(NOT_HAPPENED) or text.startswith("EXECABORT"):
            return Exec("fail", error=text[:200])
        return Exec("unknown", error=text[:200])
    if not isinstance(result, list) or len(result) != queued:
        return Exec("bad", error=f"EXEC answered {result!r}")
    return Exec("ok", replies=result)


class TxnClient(BaseClient):
    """A client of transactions: all the keys of one workload share a hash tag, so
    every transaction goes to the leader of that tag's group. The client sends to
    the node it last found leading (its own node at first), follows ``MOVED``, and
    moves on to the next node when the one it tried is down or silent."""

    def __init__(self, number: int, history: History, names: dict[int, str],
                 home: int, seed: int, stop: threading.Event, timeout: float = 1.5,
                 think: float = 0.002) -> None:
        super().__init__(number, history, names, home, seed, stop, timeout, think)
        self.ports = sorted(names)
        self.target = home

    def node_name(self, port: int) -> str:
        return self.names.get(port, "?")

    def next_node(self) -> None:
        """The target did not answer: try the next node (it will redirect if need be)."""
        i = self.ports.index(self.target) if self.target in self.ports else -1
        self.target = self.ports[(i + 1) % len(self.ports)]

    def transaction(self, port: int, commands: list[tuple], reconnect: bool = True) -> Exec:
        """MULTI, ``commands``, EXEC in one write on ``port``'s connection. With
        ``reconnect`` False the connection must still be the one a WATCH was sent on:
        a new one would run the transaction unwatched."""
        if not reconnect and port not in self.conns:
            return Exec("fail", error="the watching connection was lost")
        outcome, replies = self.pipeline(port, [("MULTI",), *commands, ("EXEC",)])
        return classify_exec(outcome, replies, len(commands))

    def settle(self, op: Op, result: Exec, decoded: object = None) -> Op:
        """Complete ``op`` from ``result`` (not for ``moved``/``aborted``: the caller
        retries those or completes them itself)."""
        history = self.history
        if result.kind == "ok":
            return history.complete(op, OK, decoded)
        if result.kind == "bad":
            # check_replies reports it: the run fails with the reply in the verdict line
            return history.complete(op, OK, f"BAD:{result.error}")
        if result.kind == "unknown":
            self.next_node()
            return history.complete(op, UNKNOWN, error=result.error)
        if not result.error.startswith(("ERR write lost", "EXECABORT")):
            # no leader known, or the node is down: another node may know, and
            # waiting a little keeps a client from spinning on refusals
            self.next_node()
            self.stop_event.wait(0.05)
        return history.complete(op, FAIL, error=result.error)


def read_retrying(node: JNode, timeout: float, *args: object) -> Any:
    """A read, retried while the key's group is between leaders (CLUSTERDOWN,
    TRYAGAIN: the leaders may still be moving back to their preferred nodes)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return command(node.port, *args, timeout=timeout, password=node.password)
        except redis.ResponseError as error:
            retry = isinstance(error, (redis.exceptions.ClusterDownError,
                                       redis.exceptions.TryAgainError)) \
                or str(error).startswith(("CLUSTERDOWN", "TRYAGAIN"))
            if not retry or time.monotonic() > deadline:
                raise
            time.sleep(0.05)  # pacing between retries, not a wait on state


# -- workloads -------------------------------------------------------------------------


@dataclass
class Checked:
    """A workload's verdict: ``fields`` go into summary.json as they are,
    ``problems`` (short) into the verdict line, ``details`` are printed after it."""

    valid: bool | str
    fields: dict[str, Any]
    problems: list[str] = field(default_factory=list)
    details: list[str] = field(default_factory=list)


class Workload:
    """One workload of a run. Client numbers are given by the runner, unique over
    all the workloads of the run (they name the clients in the history)."""

    name = ""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.read_nodes: set[str] = set()  # nodes whose final state was read

    def setup(self, cluster: JCluster, history: History) -> None:
        """Before the load (no faults yet): initial values."""

    def clients(self, first: int, history: History, names: dict[int, str],
                cluster: JCluster, stop: threading.Event) -> list[BaseClient]:
        raise NotImplementedError

    def final_reads(self, cluster: JCluster, history: History, timeout: float) -> None:
        raise NotImplementedError

    def check(self, ops: list[Op]) -> Checked:
        raise NotImplementedError


class RegisterWorkload(Workload):
    """Registers, CAS, a counter, write-once keys, MSET/MGET pairs (the ops above)."""

    name = "registers"

    def __init__(self, args: argparse.Namespace) -> None:
        super().__init__(args)
        self.counters: dict[str, list[int]] = {}
        self.ledgers: dict[str, dict[str, Any]] = {}

    def clients(self, first: int, history: History, names: dict[int, str],
                cluster: JCluster, stop: threading.Event) -> list[BaseClient]:
        args = self.args
        return [Client(first + i, history, names, cluster.nodes[i % len(cluster.nodes)].port,
                       args.seed, stop, registers=args.registers, timeout=args.timeout,
                       think=args.think, mix=Mix())
                for i in range(args.clients)]

    def final_reads(self, cluster: JCluster, history: History, timeout: float) -> None:
        """Every node's view after recovery: register/pair reads recorded as ops, the
        counter values and the ledger keys (node -> key -> value). A node that fails a
        read is not asked again."""
        ledger_keys = sorted({op.key for op in history.ops if op.kind == "ledger"})
        for node in cluster.nodes:
            try:
                for k in range(self.args.registers):
                    op = history.invoke(-1, "read", f"r{k}", node=node.node_id)
                    _final_op(history, op, node, timeout, "GET", f"r{k}")
                    op = history.invoke(-1, "mget", f"m{k}", node=node.node_id)
                    _final_op(history, op, node, timeout, "MGET", f"{{m{k}}}a", f"{{m{k}}}b")
                value = read_retrying(node, timeout, "GET", "c0")
                self.counters.setdefault("c0", []).append(int(value or 0))
                values: dict[str, Any] = {}
                for i in range(0, len(ledger_keys), 500):
                    batch = ledger_keys[i:i + 500]
                    got = read_retrying(node, timeout * 2, "MGET", *batch)
                    values.update({k: v.decode() for k, v in zip(batch, got, strict=True)
                                   if v is not None})
                self.ledgers[node.node_id] = values
                self.read_nodes.add(node.node_id)
            except (redis.RedisError, OSError) as error:
                print(f"final read on {node.node_id} failed: {error}", file=sys.stderr)

    def check(self, ops: list[Op]) -> Checked:
        registers = checker.check_registers(ops, budget_seconds=self.args.check_budget)
        counter = checker.check_counter("c0", [o for o in ops if o.key == "c0"],
                                        self.counters.get("c0", []))
        ledger = checker.check_ledger(ops, self.ledgers)
        valid = checker.combine([r.valid for r in registers.values()]
                                + [counter.valid, ledger.valid])
        problems = [f"{r.key}: {r.message}" for r in registers.values() if r.valid is not True]
        if not counter.valid:
            problems.append(f"counter: {counter.problems[0]}")
        if not ledger.valid:
            problems.append(f"ledger: {len(ledger.problems)} problems, "
                            f"first: {ledger.problems[0]}")
        details = []
        for r in registers.values():
            if r.valid is False:
                details.append(f"{r.key}: {r.message}")
                details += [f"  {op.describe()}" for op in r.witness[:40]]
        details += counter.problems[:10] + ledger.problems[:10]
        return Checked(valid, {"registers": {k: r.summary() for k, r in registers.items()},
                               "counter": counter.summary(), "ledger": ledger.summary()},
                       problems, details)


def _final_op(history: History, op: Op, node: JNode, timeout: float, *args: object) -> None:
    try:
        reply = read_retrying(node, timeout, *args)
    except (redis.RedisError, OSError) as error:
        history.complete(op, FAIL, error=str(error))
        raise
    history.complete(op, OK, Client.decode(op, reply))
