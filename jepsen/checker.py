"""Checkers: per-key register linearizability, counter bounds, lost writes.

Register linearizability is the Wing-Gong search with Lowe's memoization,
as Porcupine does it: the history is a doubly linked list of call and return
events in time order; the search linearizes a call (lifting it and its return
out of the list) when the model accepts it and the pair (set of linearized
ops, model state) has not been seen before, and backtracks when it meets a
return whose call has not been linearized. Ops whose outcome is unknown
return at infinity: they may take effect at any point after their invocation
or never (linearized after everything else, which nothing observes).

Verdicts are ``True`` (linearizable), ``False`` (a violation, with the
smallest failing sub-history found) or ``"unknown"`` (the search budget ran
out): running out of budget is never a pass.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from jepsen.history import FAIL, INFINITY, OK, UNKNOWN, Op

UNKNOWN_VERDICT = "unknown"
READS, WRITES = frozenset({"read", "mget"}), frozenset({"write", "mset"})
REGISTER_KINDS = READS | WRITES | {"cas"}


class BudgetExceeded(Exception):
    pass


@dataclass
class Budget:
    """A step and wall-clock limit shared by one or more searches."""

    seconds: float = 10.0
    steps: int = 5_000_000
    used: int = 0
    deadline: float = field(default=0.0)

    def __post_init__(self) -> None:
        if not self.deadline:
            self.deadline = time.monotonic() + self.seconds

    def spend(self, steps: int) -> None:
        self.used += steps
        if self.used > self.steps or time.monotonic() > self.deadline:
            raise BudgetExceeded


# -- the register model ------------------------------------------------------------


def register_step(state: Any, op: Op) -> tuple[bool, Any]:
    """(accepted, next state) of a register holding ``state`` when ``op`` takes effect."""
    kind = op.kind
    if kind in READS:
        return op.result == state, state
    if kind in WRITES:
        return True, op.value
    if kind == "cas":  # SET k new GET: returns the previous value, always writes
        if op.status == UNKNOWN:
            return True, op.value
        return op.result == state, op.value
    raise ValueError(f"not a register op: {op.kind}")


def prepare_register(ops: Iterable[Op]) -> list[Op]:
    """The ops that constrain a register: failed ops never happened, a read whose
    outcome is unknown says nothing, and (when written values are unique) an
    unknown write whose value nobody observed may as well never have happened."""
    kept = [op for op in ops if op.kind in REGISTER_KINDS and op.status != FAIL
            and not (op.status == UNKNOWN and op.kind in READS)]
    written = [op.value for op in kept if op.kind not in READS]
    if len(written) != len(set(written)):
        return kept  # values are not unique: no pruning
    observed = {op.result for op in kept if op.status == OK and op.kind not in WRITES}
    return [op for op in kept if not (op.status == UNKNOWN and op.value not in observed)]


# -- Wing-Gong / Lowe search ----------------------------------------------------------


def linearizable(ops: list[Op], step: Callable[[Any, Op], tuple[bool, Any]] = register_step,
                 init: Any = None, budget: Budget | None = None) -> bool:
    """Whether ``ops`` (one object's ops, outcome ok or unknown) are linearizable.

    Raises BudgetExceeded when the budget runs out before an answer."""
    n = len(ops)
    if n == 0:
        return True
    budget = budget or Budget()
    # events: (time, 0 = call / 1 = return, op index); calls first on ties (concurrent)
    events = []
    for i, op in enumerate(ops):
        events.append((op.invoke, 0, i))
        events.append((op.end, 1, i))
    events.sort()
    # nodes 1..2n in time order, 0 = head, 2n+1 = tail
    size = 2 * n + 2
    nxt = list(range(1, size + 1))
    prv = list(range(-1, size - 1))
    is_call = [False] * size
    op_of = [0] * size
    match = [0] * size
    call_node = [0] * n
    for position, (_, kind, i) in enumerate(events, start=1):
        op_of[position] = i
        if kind == 0:
            is_call[position] = True
            call_node[i] = position
        else:
            match[call_node[i]] = position
    head, tail = 0, size - 1

    def lift(node: int) -> None:
        for x in (node, match[node]):
            prv_x, nxt_x = prv[x], nxt[x]
            nxt[prv_x] = nxt_x
            prv[nxt_x] = prv_x

    def unlift(node: int) -> None:
        for x in (match[node], node):
            nxt[prv[x]] = x
            prv[nxt[x]] = x

    cache: set[tuple[int, Any]] = set()
    calls: list[tuple[int, Any]] = []
    state = init
    linearized = 0
    node = nxt[head]
    steps = 0
    while nxt[head] != tail:
        steps += 1
        if steps >= 4096:
            budget.spend(steps)
            steps = 0
        if is_call[node]:
            i = op_of[node]
            accepted, new_state = step(state, ops[i])
            if accepted:
                new_linearized = linearized | (1 << i)
                memo = (new_linearized, new_state)
                if memo not in cache:
                    cache.add(memo)
                    calls.append((node, state))
                    state = new_state
                    linearized = new_linearized
                    lift(node)
                    node = nxt[head]
                    continue
            node = nxt[node]
        else:
            if not calls:
                return False
            node, state = calls.pop()
            linearized &= ~(1 << op_of[node])
            unlift(node)
            node = nxt[node]
    budget.spend(steps)
    return True


# -- smallest failing sub-history -------------------------------------------------------


def _closure(subset: list[Op], everything: list[Op]) -> list[Op]:
    """``subset`` plus the writers of every value its ops observed (and of the values
    those writers observed, and so on), so that a sub-history never fails only
    because a writer was left out."""
    have = {id(op) for op in subset}
    writers = {op.value: op for op in everything if op.kind not in READS}
    result = list(subset)
    todo = list(subset)
    while todo:
        op = todo.pop()
        if op.status == OK and op.kind not in WRITES and op.result is not None:
            writer = writers.get(op.result)
            if writer is not None and id(writer) not in have:
                have.add(id(writer))
                result.append(writer)
                todo.append(writer)
    return sorted(result, key=lambda o: o.invoke)


def _fails(ops: list[Op], step, init, seconds: float) -> bool:
    try:
        return not linearizable(ops, step, init, Budget(seconds=seconds, steps=2_000_000))
    except BudgetExceeded:
        return False


def shrink(ops: list[Op], step=register_step, init: Any = None,
           seconds: float = 20.0) -> list[Op]:
    """A small non-linearizable sub-history of the non-linearizable ``ops``:
    shortest failing prefix (by invocation), then shortest failing suffix of
    that, then greedy removal of single ops while it still fails. Every
    candidate is closed under "the writer of every observed value is in it";
    any such sub-history of a linearizable history is linearizable, so what
    is returned is a witness on its own."""
    deadline = time.monotonic() + seconds
    ordered = sorted(ops, key=lambda o: o.invoke)

    def fails(candidate: list[Op]) -> bool:
        left = deadline - time.monotonic()
        return left > 0 and _fails(_closure(candidate, ordered), step, init, min(left, 5.0))

    if not fails(ordered):
        return ordered
    lo, hi = 1, len(ordered)  # smallest failing prefix length
    while lo < hi:
        mid = (lo + hi) // 2
        if fails(ordered[:mid]):
            hi = mid
        else:
            lo = mid + 1
    current = ordered[:hi]
    lo, hi = 0, len(current) - 1  # largest failing start
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if fails(current[mid:]):
            lo = mid
        else:
            hi = mid - 1
    current = _closure(current[lo:], ordered)
    if len(current) <= 300:
        i = 0
        while i < len(current) and time.monotonic() < deadline:
            candidate = current[:i] + current[i + 1:]
            closed = _closure(candidate, ordered)
            if len(closed) < len(current) and fails(closed):
                current = closed
            else:
                i += 1
    return _closure(current, ordered)


# -- per-key register check ---------------------------------------------------------------


@dataclass
class KeyResult:
    key: str
    valid: bool | str
    ops: int
    unknown: int
    seconds: float
    witness: list[Op] = field(default_factory=list)
    message: str = ""

    def summary(self) -> dict[str, Any]:
        data: dict[str, Any] = {"key": self.key, "valid": self.valid, "ops": self.ops,
                                "unknown_ops": self.unknown, "seconds": round(self.seconds, 3)}
        if self.message:
            data["message"] = self.message
        if self.witness:
            data["witness"] = [op.describe() for op in self.witness]
        return data


def check_register(key: str, ops: list[Op], budget_seconds: float = 30.0,
                   max_steps: int = 20_000_000, shrink_seconds: float = 20.0) -> KeyResult:
    started = time.monotonic()
    relevant = prepare_register(ops)
    unknown = sum(1 for op in relevant if op.status == UNKNOWN)
    try:
        ok = linearizable(relevant, budget=Budget(seconds=budget_seconds, steps=max_steps))
    except BudgetExceeded:
        return KeyResult(key, UNKNOWN_VERDICT, len(relevant), unknown,
                         time.monotonic() - started,
                         message="search budget exhausted: neither pass nor fail")
    if ok:
        return KeyResult(key, True, len(relevant), unknown, time.monotonic() - started)
    witness = shrink(relevant, seconds=shrink_seconds)
    return KeyResult(key, False, len(relevant), unknown, time.monotonic() - started,
                     witness=witness,
                     message=f"not linearizable; smallest failing sub-history: {len(witness)} ops")


def check_registers(ops: Iterable[Op], budget_seconds: float = 30.0,
                    max_steps: int = 20_000_000,
                    shrink_seconds: float = 30.0) -> dict[str, KeyResult]:
    """Every key on its own; ``shrink_seconds`` is shared by all the failing keys."""
    by_key: dict[str, list[Op]] = defaultdict(list)
    for op in ops:
        if op.kind in REGISTER_KINDS:
            by_key[op.key].append(op)
    results = {}
    shrink_deadline = time.monotonic() + shrink_seconds
    for key, key_ops in sorted(by_key.items()):
        left = max(0.5, min(10.0, shrink_deadline - time.monotonic()))
        results[key] = check_register(key, key_ops, budget_seconds, max_steps, left)
    return results


# -- counters ----------------------------------------------------------------------------


@dataclass
class CounterResult:
    key: str
    valid: bool
    acknowledged: int
    unknown: int
    final: list[int]
    problems: list[str]

    def summary(self) -> dict[str, Any]:
        return {"key": self.key, "valid": self.valid, "acknowledged": self.acknowledged,
                "unknown": self.unknown, "final": self.final, "problems": self.problems[:20]}


def check_counter(key: str, ops: list[Op], finals: list[int]) -> CounterResult:
    """INCR ops on one counter (from 0) and the value(s) read at the end, after
    recovery: acknowledged <= final <= acknowledged + unknown on every read;
    each acknowledged INCR returned a distinct value, no larger than the final
    one, larger than the count of INCRs acknowledged before it was invoked and
    no larger than the count of INCRs (not failed) invoked before it returned."""
    incrs = [op for op in ops if op.kind == "incr"]
    acked = [op for op in incrs if op.status == OK]
    unknown = sum(1 for op in incrs if op.status == UNKNOWN)
    problems = []
    if len(set(finals)) > 1:
        problems.append(f"nodes disagree on the final value: {finals}")
    for final in finals:
        if not len(acked) <= final <= len(acked) + unknown:
            problems.append(f"final value {final} outside [{len(acked)}, "
                            f"{len(acked) + unknown}] (acknowledged, + unknown)")
    seen: dict[int, Op] = {}
    bad = [op for op in acked if not isinstance(op.result, int)]
    for op in bad:
        problems.append(f"INCR answered something else than an integer: {op.describe()}")
    acked = [op for op in acked if isinstance(op.result, int)]
    for op in acked:
        value = op.result
        if value in seen:
            problems.append(f"INCR returned {value} twice: {seen[value].describe()} and "
                            f"{op.describe()}")
        seen[value] = op
        if finals and value > max(finals):
            problems.append(f"{op.describe()} returned more than the final value {max(finals)}")
    completes = sorted(op.complete for op in acked)
    invokes = sorted(op.invoke for op in incrs if op.status != FAIL)
    import bisect

    for op in acked:
        before = bisect.bisect_left(completes, op.invoke)
        started = bisect.bisect_right(invokes, op.complete)
        if not before < int(op.result) <= started:
            problems.append(f"{op.describe()}: {before} INCRs were acknowledged before it "
                            f"began and {started} had begun when it returned")
    return CounterResult(key, not problems, len(acked) + len(bad), unknown, finals, problems)


# -- acknowledged writes present at the end ----------------------------------------------


@dataclass
class LedgerResult:
    valid: bool
    acknowledged: int
    problems: list[str]

    def summary(self) -> dict[str, Any]:
        return {"valid": self.valid, "acknowledged": self.acknowledged,
                "problems": self.problems[:50], "problem_count": len(self.problems)}


def check_ledger(ops: list[Op], finals: dict[str, dict[str, Any]]) -> LedgerResult:
    """Write-once keys (``ledger`` ops: SET of a fresh key) and what each node
    holds at the end (node -> key -> value or None): every acknowledged write
    must be on every node; a value whose write failed ("write lost") must be
    on none."""
    problems = []
    writes = [op for op in ops if op.kind == "ledger"]
    acked = [op for op in writes if op.status == OK]
    for node, values in sorted(finals.items()):
        for op in acked:
            if values.get(op.key) != op.value:
                problems.append(f"acknowledged write missing on {node}: {op.describe()} "
                                f"(holds {values.get(op.key)!r})")
        for op in writes:
            if op.status == FAIL and values.get(op.key) == op.value:
                problems.append(f"write reported as failed is on {node}: {op.describe()}")
    return LedgerResult(not problems, len(acked), problems)


def check_replies(ops: Iterable[Op]) -> list[str]:
    """Acknowledged ops whose reply was not of the kind the command returns."""
    return [f"unexpected reply: {op.describe()}" for op in ops
            if op.status == OK and isinstance(op.result, str) and op.result.startswith("BAD:")]


# -- everything ----------------------------------------------------------------------------


def combine(verdicts: Iterable[bool | str]) -> bool | str:
    """False if any is False, else unknown if any is unknown, else True."""
    verdicts = list(verdicts)
    if any(v is False for v in verdicts):
        return False
    if any(v == UNKNOWN_VERDICT for v in verdicts):
        return UNKNOWN_VERDICT
    return True


__all__ = ["FAIL", "INFINITY", "OK", "UNKNOWN", "Budget", "BudgetExceeded", "KeyResult",
           "check_counter", "check_ledger", "check_register", "check_registers", "combine",
           "linearizable", "prepare_register", "register_step", "shrink"]
