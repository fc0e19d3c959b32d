"""Operations and histories: what the clients did and what they saw.

One ``Op`` per client operation: who ran it, against which node, its kind
(``read``, ``write``, ``cas`` = ``SET k new GET``, ``incr``, ``mset``,
``mget``; ``transfer`` and ``balances`` for the bank, ``txn`` for
list-append, whose value is its micro-ops), the key, the value written,
when it was invoked and when it completed (``time.monotonic_ns`` of the
runner process), and how it ended:

- ``ok``: acknowledged; ``result`` is what the server answered;
- ``fail``: definitely did not happen (MOVED/CLUSTERDOWN before proposing,
  ``ERR write lost``);
- ``unknown``: may or may not have happened (timeout, connection lost after
  the request was sent, TRYAGAIN): it may take effect at any point after its
  invocation, or never.

A history file is JSON lines, one op a line, in invocation order.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

OK, FAIL, UNKNOWN = "ok", "fail", "unknown"
INFINITY = 1 << 62  # completion time of an op whose outcome is unknown


@dataclass(slots=True)
class Op:
    id: int
    client: int
    kind: str
    key: str
    value: Any = None
    invoke: int = 0
    complete: int = INFINITY
    status: str = UNKNOWN
    result: Any = None
    node: str = ""
    error: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.status == OK

    @property
    def end(self) -> int:
        """When the op is known to be over; unknown ops never are."""
        return INFINITY if self.status == UNKNOWN else self.complete

    def to_json(self) -> str:
        data = asdict(self)
        if not data["extra"]:
            del data["extra"]
        return json.dumps(data, separators=(",", ":"))

    def describe(self) -> str:
        start = self.invoke / 1e9
        end = "?" if self.status == UNKNOWN else f"{self.complete / 1e9:.3f}"
        what = {"read": f"GET {self.key}", "write": f"SET {self.key} {self.value}",
                "cas": f"SET {self.key} {self.value} GET", "incr": f"INCR {self.key}",
                "mset": f"MSET {self.key}={self.value}", "mget": f"MGET {self.key}"}
        if self.kind == "txn":  # list-append: [[f, key, value], ...]
            text = "txn " + " ".join(_mop(m) for m in self.value or [])
            done = self.result if isinstance(self.result, list) else None
            got = f" -> {' '.join(_mop(m) for m in done)}" if done else \
                f" -> {self.result!r}" if self.result is not None else ""
            return (f"#{self.id} c{self.client}@{self.node or '?'} [{start:.3f}, {end}] {text}: "
                    f"{self.status}{got if self.status == OK else ''}"
                    f"{' (' + self.error + ')' if self.error else ''}")
        if self.kind == "transfer":  # bank
            v = self.value or {}
            text = f"transfer {v.get('amount')} {v.get('from')} -> {v.get('to')}"
            if "read" in self.extra:
                text += f" (read {self.extra['read']})"
        else:
            text = what.get(self.kind, f"{self.kind} {self.key} {self.value}")
        got = "" if self.result is None and self.kind == "write" else f" -> {self.result!r}"
        return (f"#{self.id} c{self.client}@{self.node or '?'} [{start:.3f}, {end}] {text}: "
                f"{self.status}{got if self.status == OK else ''}"
                f"{' (' + self.error + ')' if self.error else ''}")


def _mop(mop: list[Any]) -> str:
    f, key, value = mop
    if f == "append":
        return f"[append {key} {value}]"
    return f"[r {key}{'' if value is None else ' ' + repr(value)}]"


def op_from_json(line: str) -> Op:
    data = json.loads(line)
    data.setdefault("extra", {})
    return Op(**data)


class History:
    """A thread-safe recorder of ops: ``invoke`` before sending, ``complete`` after."""

    def __init__(self) -> None:
        self.ops: list[Op] = []
        self.lock = threading.Lock()
        self.origin = time.monotonic_ns()

    def now(self) -> int:
        return time.monotonic_ns() - self.origin

    def invoke(self, client: int, kind: str, key: str, value: Any = None, node: str = "") -> Op:
        with self.lock:
            op = Op(len(self.ops), client, kind, key, value, invoke=self.now(), node=node)
            self.ops.append(op)
        return op

    def complete(self, op: Op, status: str, result: Any = None, error: str = "") -> Op:
        now = self.now()
        op.complete = now if status != UNKNOWN else INFINITY
        if status == UNKNOWN:
            op.extra["gave_up"] = now  # when the client stopped waiting, for the timeline
        op.status = status
        op.result = result
        op.error = error
        return op

    def save(self, path: Path) -> None:
        save_ops(self.ops, path)


def save_ops(ops: Iterable[Op], path: Path) -> None:
    with open(path, "w") as out:
        for op in ops:
            out.write(op.to_json() + "\n")


def load_ops(path: Path) -> list[Op]:
    with open(path) as source:
        return [op_from_json(line) for line in source if line.strip()]
