"""Client threads: each one is bound to a node and runs one op at a time.

Ops (chosen from a seeded generator per client):

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

import random
import threading
from dataclasses import dataclass

import redis

from jepsen.history import FAIL, OK, UNKNOWN, History, Op

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


class Client(threading.Thread):
    def __init__(self, number: int, history: History, names: dict[int, str],
                 home: int, seed: int, stop: threading.Event, registers: int = 3,
                 timeout: float = 1.5, think: float = 0.002, mix: Mix | None = None) -> None:
        super().__init__(name=f"client-{number}", daemon=True)
        self.number = number
        self.history = history
        self.names = names  # client port -> node id (a rejoined node may get a new id)
        self.home = home  # the client port of this client's node
        self.random = random.Random(seed * 1000 + number)
        self.stop_event = stop
        self.registers = registers
        self.timeout = timeout
        self.think = think
        self.mix = mix or Mix()
        self.conns: dict[int, redis.Connection] = {}
        self.counter = 0
        self.crashes: list[str] = []  # bugs in this client, not in the server

    # -- connections -------------------------------------------------------------

    def _conn(self, port: int) -> redis.Connection:
        conn = self.conns.get(port)
        if conn is None:
            conn = redis.Connection(host="127.0.0.1", port=port, socket_timeout=self.timeout,
                                    socket_connect_timeout=self.timeout)
            self.conns[port] = conn
        return conn

    def _drop(self, port: int) -> None:
        conn = self.conns.pop(port, None)
        if conn is not None:
            conn.disconnect()

    def call(self, port: int, *args) -> tuple[str, object]:
        """(outcome, reply): outcome 'reply', 'error' (reply = message),
        'unsent' (connection failed before sending), 'unknown' (sent, no reply)."""
        conn = self._conn(port)
        try:
            conn.connect()
        except (redis.ConnectionError, redis.TimeoutError, OSError) as error:
            self._drop(port)
            return "unsent", str(error)
        try:
            conn.send_command(*args)
        except (redis.ConnectionError, redis.TimeoutError, OSError) as error:
            self._drop(port)
            return "unknown", str(error)
        try:
            return "reply", conn.read_response()
        except redis.ResponseError as error:
            return "error", error_text(error)
        except (redis.ConnectionError, redis.TimeoutError, OSError) as error:
            self._drop(port)
            return "unknown", str(error) or type(error).__name__

    # -- ops ------------------------------------------------------------------------

    def unique(self) -> str:
        self.counter += 1
        return f"{self.number}-{self.counter}"

    def run(self) -> None:
        names, weights = self.mix.choices()
        try:
            while not self.stop_event.is_set():
                kind = self.random.choices(names, weights)[0]
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
