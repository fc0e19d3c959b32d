"""The bank workload: accounts with a fixed total, moved around in transactions.

The accounts ``{acct}0 .. {acct}<n-1>`` share one hash tag, so they live in one
Raft group and every transaction on them is one log entry. Before the load they
are set to 10 each (one MSET). The clients then run, against the tag's leader:

- ``transfer``: ``WATCH a b``, ``GET a``, ``GET b``; if ``a`` holds less than the
  amount the transfer is refused (``UNWATCH``, ``fail``: transfers never
  overdraw); otherwise ``MULTI``, ``DECRBY a x``, ``INCRBY b x``, ``EXEC``. A null
  EXEC (a watched account changed) did nothing: it is recorded as ``fail`` and
  the transfer is tried again, up to ``RETRIES`` times;
- ``balances``: ``MULTI``, ``MGET`` of every account, ``EXEC``;
- ``balances-mget``: a plain ``MGET`` of every account on the client's own node
  (reads are linearizable on every node, and an MGET of one slot is atomic).

After recovery every node's balances are read (``balances-mget`` ops of client
-1). ``check_bank`` then asks: does every successful read see every account, no
balance below zero and exactly the total? Does every acknowledged transfer's
EXEC return the balances its watched GETs saw, moved by the amount (WATCH kept
anybody from changing them in between)? Do the nodes agree at the end, on
balances that the acknowledged transfers, plus some subset of the indeterminate
ones, make from the initial ones (nothing acknowledged lost, nothing reported
as not done applied, nothing applied twice)?
"""

from __future__ import annotations

import argparse
import sys
import threading
from dataclasses import dataclass, field
from typing import Any

import redis

from jepsen.history import FAIL, OK, UNKNOWN, History, Op
from jepsen.nodes import JCluster
from jepsen.workloads import (
    BaseClient,
    Checked,
    TxnClient,
    Workload,
    error_text,
    moved_port,
    read_retrying,
)
from testsupport.processes import command
from testsupport.waiting import wait_for

TAG = "{acct}"
INITIAL = 10  # each account's balance at the start
MAX_AMOUNT = 5
RETRIES = 5  # tries of one transfer whose EXEC came back null (a watched key changed)
READ_KINDS = ("balances", "balances-mget")
# subsets of the indeterminate transfers the final check may look at before it
# gives up (as "unknown", never as a pass)
EXPLAIN_STATES = 300_000


def account_keys(count: int) -> list[str]:
    return [f"{TAG}{i}" for i in range(count)]


def balance(value: object) -> int | str | None:
    """A balance as the server sent it: an int, None (no such key), or a BAD: text."""
    if value is None or isinstance(value, int):
        return value
    try:
        return int(value.decode() if isinstance(value, bytes) else str(value))
    except ValueError:
        return f"BAD:{value!r}"


def balances(reply: object, count: int) -> list[int | None] | str:
    if not isinstance(reply, list) or len(reply) != count:
        return f"BAD:{reply!r}"
    values = [balance(v) for v in reply]
    bad = [v for v in values if isinstance(v, str)]
    return bad[0] if bad else values  # type: ignore[return-value]


class BankClient(TxnClient):
    def __init__(self, number: int, history: History, names: dict[int, str], home: int,
                 seed: int, stop: threading.Event, accounts: list[str],
                 timeout: float = 1.5, think: float = 0.002) -> None:
        super().__init__(number, history, names, home, seed, stop, timeout, think)
        self.accounts = accounts

    def choose(self) -> str:
        return self.random.choices(["transfer", "balances", "balances-mget"], [6, 3, 1])[0]

    def one(self, kind: str) -> None:
        if kind == "transfer":
            a, b = self.random.sample(self.accounts, 2)
            amount = self.random.randint(1, MAX_AMOUNT)
            for _ in range(RETRIES):
                if self.transfer(a, b, amount) or self.stop_event.is_set():
                    return
        elif kind == "balances":
            self.read_in_transaction()
        else:
            self.read_plain()

    def transfer(self, a: str, b: str, amount: int) -> bool:
        """One try; False if the EXEC came back null (a watched account changed)."""
        history = self.history
        op = history.invoke(self.number, "transfer", TAG, {"from": a, "to": b, "amount": amount},
                            node=self.node_name(self.target))
        for _hop in range(3):
            port = self.target
            op.node = self.node_name(port)
            outcome, replies = self.pipeline(port, [("WATCH", a, b), ("GET", a), ("GET", b)])
            if outcome != "replies":
                # only WATCH and reads were sent: nothing was written
                self.next_node()
                history.complete(op, FAIL, error=str(replies)[:200])
                return True
            watched, got_a, got_b = replies  # type: ignore[misc]
            if isinstance(watched, redis.ResponseError):
                text = error_text(watched)
                if moved_port(text) in self.names:
                    self.target = moved_port(text)
                    continue
                history.complete(op, FAIL, error=text[:200])
                self.next_node()
                self.stop_event.wait(0.05)  # no leader known: do not spin
                return True
            if isinstance(got_a, redis.ResponseError) or isinstance(got_b, redis.ResponseError):
                error = got_a if isinstance(got_a, redis.ResponseError) else got_b
                self.call(port, "UNWATCH")
                history.complete(op, FAIL, error=error_text(error)[:200])
                return True
            read = [balance(got_a), balance(got_b)]
            op.extra["read"] = read
            if not isinstance(read[0], int) or not isinstance(read[1], int) \
                    or read[0] < amount:
                # refused (it would overdraw), or a balance that is not a number: the
                # checker looks at every transfer's reads, done or not
                self.call(port, "UNWATCH")
                history.complete(op, FAIL, error="refused: it would overdraw")
                return True
            result = self.transaction(port, [("DECRBY", a, amount), ("INCRBY", b, amount)],
                                      reconnect=False)
            if result.kind == "moved" and result.port in self.names:
                self.target = result.port  # nothing ran; the watch ended with EXEC
                continue
            if result.kind == "aborted":
                history.complete(op, FAIL, error="watched key changed (null EXEC)")
                return False
            if result.kind == "moved":
                result.kind = "fail"
            decoded = [balance(v) for v in result.replies]
            if result.kind == "ok" and not all(isinstance(v, int) for v in decoded):
                result.kind, result.error = "bad", f"EXEC answered {result.replies!r}"
            self.settle(op, result, decoded)
            return True
        history.complete(op, FAIL, error="MOVED too many times")
        return True

    def read_in_transaction(self) -> None:
        op = self.history.invoke(self.number, "balances", TAG, node=self.node_name(self.target))
        for _hop in range(3):
            op.node = self.node_name(self.target)
            result = self.transaction(self.target, [("MGET", *self.accounts)])
            if result.kind == "moved" and result.port in self.names:
                self.target = result.port
                continue
            break
        if result.kind in ("unknown", "moved", "aborted"):
            # a read that did not return says nothing: it constrains no state
            if result.kind == "unknown":
                self.next_node()
            self.history.complete(op, FAIL, error=result.error)
            return
        decoded = balances(result.replies[0], len(self.accounts)) if result.kind == "ok" \
            else None
        if isinstance(decoded, str):
            result.kind, result.error = "bad", decoded[4:]
        self.settle(op, result, decoded)

    def read_plain(self) -> None:
        op = self.history.invoke(self.number, "balances-mget", TAG,
                                 node=self.node_name(self.home))
        outcome, reply = self.call(self.home, "MGET", *self.accounts)
        if outcome != "reply":
            if outcome == "unsent":
                self.stop_event.wait(0.05)  # the node is down: do not spin
            self.history.complete(op, FAIL, error=str(reply)[:200])
            return
        self.history.complete(op, OK, balances(reply, len(self.accounts)))


# -- the checker ---------------------------------------------------------------------------


@dataclass
class BankResult:
    valid: bool | str
    accounts: int
    total: int
    counts: dict[str, int]
    finals: dict[str, list[Any]]
    problems: list[str] = field(default_factory=list)
    message: str = ""

    def summary(self) -> dict[str, Any]:
        data = {"valid": self.valid, "accounts": self.accounts, "total": self.total,
                **self.counts, "final": self.finals, "problems": self.problems[:50],
                "problem_count": len(self.problems)}
        if self.message:
            data["message"] = self.message
        return data


def _read_problems(op: Op, count: int, total: int) -> list[str]:
    values = op.result
    if not isinstance(values, list):
        return []  # a BAD: reply, which check_replies reports
    problems = []
    if len(values) != count or any(v is None for v in values):
        problems.append(f"read without every account: {op.describe()}")
        return problems
    if sum(values) != total:
        problems.append(f"read total {sum(values)}, not {total}: {op.describe()}")
    if any(v < 0 for v in values):
        problems.append(f"negative balance read: {op.describe()}")
    return problems


def explained(target: tuple[int, ...], deltas: list[tuple[int, ...]],
              max_states: int = EXPLAIN_STATES) -> bool | None:
    """Whether some subset of ``deltas`` sums to ``target`` (None: too many subsets
    to look at). The sums are kept as a set, pruned to those from which the
    deltas left can still reach the target, component by component."""
    n = len(target)
    # low[i][j] / high[i][j]: the least / most the deltas from i on can add to j
    low = [[0] * n for _ in range(len(deltas) + 1)]
    high = [[0] * n for _ in range(len(deltas) + 1)]
    for i in range(len(deltas) - 1, -1, -1):
        for j in range(n):
            low[i][j] = low[i + 1][j] + min(0, deltas[i][j])
            high[i][j] = high[i + 1][j] + max(0, deltas[i][j])

    def reachable(state: tuple[int, ...], i: int) -> bool:
        return all(low[i][j] <= target[j] - state[j] <= high[i][j] for j in range(n))

    states = {tuple([0] * n)}
    states = {s for s in states if reachable(s, 0)}
    for i, delta in enumerate(deltas):
        grown = {tuple(a + b for a, b in zip(s, delta, strict=True)) for s in states}
        states = {s for s in states | grown if reachable(s, i + 1)}
        if len(states) > max_states:
            return None
        if not states:
            return False
    return target in states


def check_bank(ops: list[Op], accounts: list[str], finals: dict[str, list[Any]],
               initial: int = INITIAL, max_states: int = EXPLAIN_STATES) -> BankResult:
    """``ops``: the history (other workloads' ops are ignored); ``finals``: node ->
    the balances it holds after recovery."""
    count, total = len(accounts), initial * len(accounts)
    index = {key: i for i, key in enumerate(accounts)}
    problems: list[str] = []
    reads = [op for op in ops if op.kind in READ_KINDS and op.status == OK]
    for op in reads:
        problems += _read_problems(op, count, total)
    transfers = [op for op in ops if op.kind == "transfer"]
    for op in transfers:
        read = op.extra.get("read")
        if read is not None and not all(isinstance(v, int) and v >= 0 for v in read):
            problems.append(f"transfer's GETs saw a missing or negative balance: "
                            f"{op.describe()}")
    done = [op for op in transfers if op.status == OK and isinstance(op.result, list)]
    for op in done:
        v, read = op.value, op.extra.get("read")
        expected = [read[0] - v["amount"], read[1] + v["amount"]] if read else None
        if op.result != expected:
            problems.append(f"lost update: EXEC returned {op.result}, but the watched GETs "
                            f"saw {read} and moved {v['amount']} ({expected} expected): "
                            f"{op.describe()}")
        if op.result[0] < 0:
            problems.append(f"transfer overdrew: {op.describe()}")
    unknown = [op for op in transfers if op.status == UNKNOWN]

    def delta(op: Op) -> tuple[int, ...]:
        vector = [0] * count
        vector[index[op.value["from"]]] -= op.value["amount"]
        vector[index[op.value["to"]]] += op.value["amount"]
        return tuple(vector)

    valid: bool | str = True
    message = ""
    if len({tuple(v) for v in finals.values()}) > 1:
        problems.append(f"nodes disagree on the final balances: {finals}")
    for node, values in sorted(finals.items()):
        if len(values) != count or any(not isinstance(v, int) for v in values):
            problems.append(f"final balances on {node} lack accounts: {values}")
            continue
        if sum(values) != total:
            problems.append(f"final total on {node} is {sum(values)}, not {total}: {values}")
        committed = [initial] * count
        for op in done:
            committed = [a + b for a, b in zip(committed, delta(op), strict=True)]
        target = tuple(v - c for v, c in zip(values, committed, strict=True))
        found = explained(target, [delta(op) for op in unknown], max_states)
        if found is False:
            problems.append(
                f"final balances on {node} {values} are not what the {len(done)} acknowledged "
                f"transfers ({committed}) and any subset of the {len(unknown)} indeterminate "
                f"ones make")
        elif found is None:
            valid = "unknown"
            message = (f"too many subsets of the {len(unknown)} indeterminate transfers to "
                       f"explain the final balances: neither pass nor fail")
    counts = {
        "transfers_ok": len(done), "transfers_unknown": len(unknown),
        "transfers_watch_aborted": sum(1 for op in transfers if op.status == FAIL
                                       and op.error.startswith("watched key changed")),
        "transfers_refused": sum(1 for op in transfers if op.error.startswith("refused")),
        "reads_ok": len(reads)}
    if problems:
        valid = False
    return BankResult(valid, count, total, counts, finals, problems, message)


# -- the workload ------------------------------------------------------------------------


class BankWorkload(Workload):
    name = "bank"

    def __init__(self, args: argparse.Namespace) -> None:
        super().__init__(args)
        self.accounts = account_keys(args.accounts)
        self.finals: dict[str, list[Any]] = {}

    def setup(self, cluster: JCluster, history: History) -> None:
        """Every account at INITIAL, through whichever node takes the MSET (a
        follower answers MOVED); MSET may be repeated, so a try whose reply was
        lost is simply made again."""
        values = [x for key in self.accounts for x in (key, str(INITIAL))]
        op = history.invoke(-1, "bank-setup", TAG, dict.fromkeys(self.accounts, INITIAL))

        def set_all() -> bool:
            for node in cluster.nodes:
                try:
                    if command(node.port, "MSET", *values, timeout=5,
                               password=node.password) in (b"OK", "OK", True):
                        op.node = node.node_id
                        return True
                except (redis.RedisError, OSError):
                    continue
            return False

        wait_for(set_all, 30, "the bank's accounts to be set")
        history.complete(op, OK)

    def clients(self, first: int, history: History, names: dict[int, str],
                cluster: JCluster, stop: threading.Event) -> list[BaseClient]:
        args = self.args
        return [BankClient(first + i, history, names, cluster.nodes[i % len(cluster.nodes)].port,
                           args.seed, stop, self.accounts, timeout=args.timeout,
                           think=args.think)
                for i in range(args.clients)]

    def final_reads(self, cluster: JCluster, history: History, timeout: float) -> None:
        for node in cluster.nodes:
            op = history.invoke(-1, "balances-mget", TAG, node=node.node_id)
            try:
                reply = read_retrying(node, timeout, "MGET", *self.accounts)
            except (redis.RedisError, OSError) as error:
                history.complete(op, FAIL, error=str(error)[:200])
                print(f"final read on {node.node_id} failed: {error}", file=sys.stderr)
                continue
            history.complete(op, OK, balances(reply, len(self.accounts)))
            if isinstance(op.result, list):
                self.finals[node.node_id] = op.result
                self.read_nodes.add(node.node_id)

    def check(self, ops: list[Op]) -> Checked:
        result = check_bank(ops, self.accounts, self.finals)
        problems = []
        if result.valid is False:
            problems.append(f"bank: {len(result.problems)} problems, first: "
                            f"{result.problems[0]}")
        elif result.valid is not True:
            problems.append(f"bank: {result.message}")
        return Checked(result.valid, {"bank": result.summary()}, problems,
                       result.problems[:20])
