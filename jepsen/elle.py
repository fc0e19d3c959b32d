"""The list-append checker: strict serializability the way Elle checks it.

A history of ``txn`` ops, each a list of micro-ops ``["append", key, value]``
(RPUSH, values unique over the whole history) or ``["r", key, list]``
(LRANGE 0 -1). Every key is one list, only ever appended to, so every read of
it is a prefix of one total order of its values: the longest read gives that
*version order*. From it:

- direct checks: a read with a value twice (``duplicate-elements``); a read
  that is not a prefix of the version order (``incompatible-order``); a value
  read that nobody appended to that key (``garbage-read``), or that a failed
  transaction appended (``G1a``, aborted read); a read ending at a value that
  its transaction followed with more appends to the key (``G1b``,
  intermediate read); a transaction whose own reads disagree with its own
  appends, or whose appends to a key are held in another order
  (``internal``); an acknowledged append missing from every read of its
  key, although a read began after it was acknowledged (``lost-append``;
  for an indeterminate transaction: after some of its appends were seen);
  an RPUSH whose returned length is not its value's place in the order
  (``wrong-length``);
- the dependency graph between transactions: ``ww`` (T1 appended the value
  just before T2's in a key's order), ``wr`` (T2 read a prefix ending with
  T1's value), ``rw`` (T1 read a prefix that T2's value comes right after: T1
  did not see it; also when T2's value is in no read at all), and ``rt`` (T1
  was acknowledged before T2 was invoked).
  A cycle is an anomaly: only ww is ``G0``, with wr ``G1c``, with one rw
  ``G-single``, with more ``G2-item``; ``-realtime`` when it needs an rt edge
  (serializable, but not strictly). The search looks for cycles in the ww
  graph first, then adds wr, rw and rt in turn, and reports the shortest
  cycle it finds in each strongly connected component.

Indeterminate (``unknown``) transactions may have happened or not: their
appends may appear in reads and are never required; one whose appends were
seen did happen (all of it: transactions are atomic), and joins the graph
without reads. Failed transactions did not happen.

Real-time edges are not drawn between every pair: each acknowledged op
points to its completion on a chain of completions in time order, and that
chain points to every op invoked after it, so ``A`` reaches ``B`` through it
exactly when ``A`` was acknowledged before ``B`` was invoked (a cycle through
the chain is reported with the chain collapsed into one ``rt`` edge).
"""

from __future__ import annotations

import bisect
import itertools
import time
from collections import defaultdict, deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from jepsen.history import FAIL, OK, UNKNOWN, Op

LEVELS = (("ww",), ("ww", "wr"), ("ww", "wr", "rw"), ("ww", "wr", "rw", "rt"))
MAX_REPORTED = 10  # examples kept per anomaly kind
MAX_CYCLES = 10
BFS_STARTS = 25  # nodes of a component tried as the start of its shortest cycle


@dataclass
class ElleResult:
    valid: bool
    anomalies: dict[str, list[str]]
    cycles: list[dict[str, Any]]
    counts: dict[str, Any]
    seconds: float = 0.0

    @property
    def kinds(self) -> list[str]:
        return sorted(set(self.anomalies) | {c["type"] for c in self.cycles})

    def problems(self) -> list[str]:
        lines = []
        for cycle in self.cycles:
            lines.append(f"{cycle['type']}: {cycle['path']}")
            lines += [f"  {step}" for step in cycle["ops"]]
        for kind, examples in sorted(self.anomalies.items()):
            lines += [f"{kind}: {example}" for example in examples]
        return lines

    def summary(self) -> dict[str, Any]:
        return {"valid": self.valid, "anomaly_types": self.kinds, **self.counts,
                "cycles": self.cycles,
                "anomalies": {k: v[:MAX_REPORTED] for k, v in self.anomalies.items()},
                "seconds": round(self.seconds, 3)}


@dataclass
class _Graph:
    """Adjacency with labelled edges; virtual (negative) nodes are the rt chain."""

    edges: dict[int, dict[int, set[str]]] = field(default_factory=lambda: defaultdict(dict))

    def add(self, a: int, b: int, label: str) -> None:
        if a != b:
            self.edges[a].setdefault(b, set()).add(label)

    def successors(self, node: int, kinds: frozenset[str]) -> Iterable[int]:
        for nxt, labels in self.edges.get(node, {}).items():
            if any(label.split(" ", 1)[0] in kinds for label in labels):
                yield nxt


def _mops(op: Op, completed: bool) -> list[list[Any]]:
    mops = op.result if completed else op.value
    return mops if isinstance(mops, list) else []


def check_list_append(ops: Iterable[Op]) -> ElleResult:
    started = time.monotonic()
    txns = [op for op in ops if op.kind == "txn"]
    by_id = {op.id: op for op in txns}
    ok = [op for op in txns if op.status == OK and isinstance(op.result, list)]
    anomalies: dict[str, list[str]] = defaultdict(list)
    found: dict[str, int] = defaultdict(int)

    def report(kind: str, text: str) -> None:
        found[kind] += 1
        if len(anomalies[kind]) < MAX_REPORTED:
            anomalies[kind].append(text)

    # who appended what: (key, value) -> op; each op's appends to a key, in order
    writer: dict[tuple[str, Any], Op] = {}
    appends: dict[tuple[int, str], list[Any]] = defaultdict(list)
    lengths: dict[tuple[str, Any], int] = {}
    for op in txns:
        for i, (f, key, value) in enumerate(_mops(op, completed=False)):
            if f != "append":
                continue
            if (key, value) in writer:
                first = writer[key, value].id
                report("duplicate-appends", f"{value!r} appended to {key} by #{first} and "
                                            f"#{op.id}: the history is not checkable")
            writer[key, value] = op
            appends[op.id, key].append(value)
            sizes = op.extra.get("lengths") if op.status == OK else None
            if sizes and i < len(sizes) and isinstance(sizes[i], int):
                lengths[key, value] = sizes[i]

    # every ok read: (op, key, list)
    reads: dict[str, list[tuple[Op, list[Any]]]] = defaultdict(list)
    for op in ok:
        for f, key, value in _mops(op, completed=True):
            if f == "r" and isinstance(value, list):
                reads[key].append((op, value))

    # version orders, and the checks on the reads
    orders: dict[str, list[Any]] = {}
    prefix_ok: dict[tuple[str, int], bool] = {}  # (key, index in reads[key]) -> a prefix?
    for key, key_reads in reads.items():
        longest = max((values for _, values in key_reads), key=len)
        order = list(dict.fromkeys(longest))
        orders[key] = order
        for n, (op, values) in enumerate(key_reads):
            if len(set(values)) != len(values):
                dups = sorted({v for v in values if values.count(v) > 1}, key=str)
                report("duplicate-elements", f"{key} read with {dups} more than once: "
                                             f"{op.describe()}")
            is_prefix = values == order[:len(values)]
            prefix_ok[key, n] = is_prefix
            if not is_prefix:
                report("incompatible-order", f"{key}: {values} is not a prefix of {longest} "
                                             f"(the longest read): {op.describe()}")
            for value in set(values):
                source = writer.get((key, value))
                if source is None:
                    report("garbage-read", f"{key} read {value!r}, which nobody appended to "
                                           f"it: {op.describe()}")
                elif source.status == FAIL:
                    report("G1a", f"{key} read {value!r}, appended by a failed transaction "
                                  f"#{source.id} ({source.error}): {op.describe()}")
            if values:
                last = values[-1]
                source = writer.get((key, last))
                if source is not None and source is not op \
                        and appends[source.id, key][-1] != last:
                    report("G1b", f"{key} read ending at {last!r}, which #{source.id} followed "
                                  f"with {appends[source.id, key]}: {op.describe()} saw "
                                  f"{source.describe()} half done")

    # a transaction's own reads against its own appends
    for op in ok:
        known: dict[str, list[Any]] = {}
        mine: dict[str, list[Any]] = defaultdict(list)
        steps = _mops(op, completed=True)
        for i, (f, key, value) in enumerate(steps):
            if f == "r" and isinstance(value, list):
                later = {v for g, k, v in steps[i + 1:] if g == "append" and k == key}
                if later.intersection(value):
                    report("internal", f"{key} read {value}, with values this transaction "
                                       f"appends only later ({sorted(later, key=str)}): "
                                       f"{op.describe()}")
            if f == "append":
                if key in known:
                    known[key] = [*known[key], value]
                else:
                    mine[key].append(value)
            elif isinstance(value, list):
                expected = known.get(key)
                if expected is not None and value != expected:
                    report("internal", f"{key} read {value} after this transaction's own "
                                       f"steps left {expected}: {op.describe()}")
                elif expected is None and mine[key] and value[-len(mine[key]):] != mine[key]:
                    report("internal", f"{key} read {value}, which does not end with this "
                                       f"transaction's appends {mine[key]}: {op.describe()}")
                known[key] = list(value)

    positions = {key: {v: i for i, v in enumerate(order)} for key, order in orders.items()}
    # a transaction's appends to a key stay in the order it made them (no edge of the
    # graph joins a transaction to itself, so the graph cannot tell)
    for (op_id, key), values in appends.items():
        placed = [positions[key][v] for v in values if v in positions.get(key, {})]
        if placed != sorted(placed):
            report("internal", f"{key} holds the appends {values} of #{op_id} out of the "
                               f"order they were made in: {orders[key]}")
    # which indeterminate transactions happened: those with an append seen
    seen_at: dict[int, int] = {}  # op id -> when a read that saw one of its appends ended
    for key, key_reads in reads.items():
        for op, values in key_reads:
            for value in values:
                source = writer.get((key, value))
                if source is not None and source.status == UNKNOWN:
                    seen_at[source.id] = min(seen_at.get(source.id, op.complete), op.complete)
    last_read = {key: max(key_reads, key=lambda r: r[0].invoke)
                 for key, key_reads in reads.items()}
    for (op_id, key), values in appends.items():
        op = by_id[op_id]
        done_by = op.complete if op.status == OK else seen_at.get(op_id)
        if done_by is None:
            continue
        for value in values:
            if value in positions.get(key, {}):
                at = lengths.get((key, value))
                if at is not None and positions[key][value] != at - 1:
                    report("wrong-length", f"RPUSH {key} {value!r} answered length {at}, but "
                                           f"the value is at position {positions[key][value]}"
                                           f" of {orders[key]}: {op.describe()}")
                continue
            reader = last_read.get(key)
            if reader is not None and reader[0].invoke > done_by and reader[0] is not op:
                how = "acknowledged" if op.status == OK else "seen (in part)"
                report("lost-append", f"{key} append of {value!r} by #{op.id} is in no read, "
                                      f"although {reader[0].describe()} began after it was "
                                      f"{how}: {op.describe()}")

    # -- the graph -------------------------------------------------------------------
    graph = _Graph()
    members = [op for op in txns if (op.status == OK and isinstance(op.result, list))
               or op.id in seen_at]
    member_ids = {op.id for op in members}
    for key, order in orders.items():
        valid = [(i, writer[key, v]) for i, v in enumerate(order)
                 if (key, v) in writer and writer[key, v].id in member_ids]
        for (_, a), (_, b) in itertools.pairwise(valid):
            graph.add(a.id, b.id, f"ww {key}")
        places = [i for i, _ in valid]
        for n, (op, values) in enumerate(reads[key]):
            if not prefix_ok[key, n]:
                continue  # its place in the order is not known
            j = len(values)
            before = bisect.bisect_left(places, j) - 1  # last writer within the prefix
            if before >= 0:
                graph.add(valid[before][1].id, op.id, f"wr {key}")
            if before + 1 < len(valid):
                graph.add(op.id, valid[before + 1][1].id, f"rw {key}")
    # an append of a transaction that happened, which no read shows: every read of its
    # key missed it, so each came before that transaction (lists only grow)
    for (op_id, key), values in appends.items():
        if op_id in member_ids and any(v not in positions.get(key, {}) for v in values):
            for op, _ in reads.get(key, []):
                graph.add(op.id, op_id, f"rw {key}")
    # the rt chain: virtual node -(k+1) is the k-th acknowledgement in time order
    done = sorted((op.complete, op.id) for op in members if op.status == OK)
    completes = [t for t, _ in done]
    for k, (_, op_id) in enumerate(done):
        graph.add(op_id, -(k + 1), "rt")
        if k + 1 < len(done):
            graph.add(-(k + 1), -(k + 2), "rt")
    for op in members:
        k = bisect.bisect_left(completes, op.invoke) - 1  # last acknowledged before it
        if k >= 0:
            graph.add(-(k + 1), op.id, "rt")

    cycles = _cycles(graph, [op.id for op in members] + [-(k + 1) for k in range(len(done))],
                     by_id)
    counts = {"transactions": len(txns), "ok": len(ok),
              "unknown": sum(1 for op in txns if op.status == UNKNOWN),
              "unknown_seen": len(seen_at), "failed": sum(1 for op in txns if op.status == FAIL),
              "keys": len(orders), "graph_nodes": len(members),
              "anomaly_counts": dict(found)}
    return ElleResult(not anomalies and not cycles, dict(anomalies), cycles, counts,
                      time.monotonic() - started)


# -- cycles ----------------------------------------------------------------------------------


def _components(nodes: list[int], graph: _Graph, kinds: frozenset[str]) -> list[list[int]]:
    """Strongly connected components with more than one node (iterative Tarjan)."""
    index: dict[int, int] = {}
    low: dict[int, int] = {}
    on_stack: set[int] = set()
    stack: list[int] = []
    found: list[list[int]] = []
    counter = 0
    for root in nodes:
        if root in index:
            continue
        work = [(root, iter(list(graph.successors(root, kinds))))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, successors = work[-1]
            advanced = False
            for nxt in successors:
                if nxt not in index:
                    index[nxt] = low[nxt] = counter
                    counter += 1
                    stack.append(nxt)
                    on_stack.add(nxt)
                    work.append((nxt, iter(list(graph.successors(nxt, kinds)))))
                    advanced = True
                    break
                if nxt in on_stack:
                    low[node] = min(low[node], index[nxt])
            if advanced:
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(component)
    return found


def _shortest_cycle(component: list[int], graph: _Graph, kinds: frozenset[str],
                    seconds: float = 2.0) -> list[int]:
    """A shortest cycle (as nodes, the first repeated at the end) inside the component,
    by length in real ops: a 0-1 breadth-first search in which a hop along the rt
    chain costs nothing. It starts from real nodes with an rw edge first, then wr,
    then the others (a cycle found at a level usually hinges on its rarest kind of
    edge), as many as ``BFS_STARTS`` and ``seconds`` allow."""
    inside = set(component)
    rarity = ("rw", "wr", "ww", "rt")

    def rank(node: int) -> int:
        labels = [label.split(" ", 1)[0] for nxt, ls in graph.edges.get(node, {}).items()
                  if nxt in inside for label in ls]
        return min((rarity.index(k) for k in labels if k in kinds), default=len(rarity))

    starts = sorted((n for n in component if n >= 0), key=rank)[:BFS_STARTS]
    deadline = time.monotonic() + seconds
    best: list[int] = []
    best_cost = float("inf")  # real ops in the best cycle
    for start in starts:
        if best and time.monotonic() > deadline:
            break
        cost = {start: 0}
        parent: dict[int, int] = {}
        queue = deque([start])
        while queue:
            node = queue.popleft()
            here = cost[node]
            if here + 1 >= best_cost:
                continue  # any cycle through here is no shorter than the best one
            for nxt in graph.successors(node, kinds):
                if nxt == start:
                    path = [node]
                    while path[-1] != start:
                        path.append(parent[path[-1]])
                    best, best_cost = [*reversed(path), start], here + 1
                    break
                if nxt not in inside:
                    continue
                step = 1 if nxt >= 0 else 0
                if here + step < cost.get(nxt, best_cost):
                    cost[nxt] = here + step
                    parent[nxt] = node
                    if step:
                        queue.append(nxt)
                    else:
                        queue.appendleft(nxt)
    return best


def _cycles(graph: _Graph, nodes: list[int], by_id: dict[int, Op]) -> list[dict[str, Any]]:
    reported: list[dict[str, Any]] = []
    covered: set[int] = set()
    for level in LEVELS:
        kinds = frozenset(level)
        for component in _components(nodes, graph, kinds):
            if len(reported) >= MAX_CYCLES:
                return reported
            if covered.intersection(component):
                continue  # the same anomaly, found with fewer kinds of edges
            covered.update(component)
            cycle = _shortest_cycle(component, graph, kinds)
            if cycle:
                reported.append(_describe(cycle, graph, kinds, by_id))
    return reported


def _describe(cycle: list[int], graph: _Graph, kinds: frozenset[str],
              by_id: dict[int, Op]) -> dict[str, Any]:
    """The cycle between real ops: runs of rt-chain nodes become one rt edge."""
    steps: list[tuple[int, str]] = []  # (op id, label of the edge leaving it)
    for a, b in itertools.pairwise(cycle):
        if a < 0:
            continue
        if b < 0:
            steps.append((a, "rt"))
            continue
        labels = sorted(label for label in graph.edges[a][b] if label.split(" ", 1)[0] in kinds)
        steps.append((a, _strongest(labels)))
    types = [label.split(" ", 1)[0] for _, label in steps]
    rw = types.count("rw")
    name = "G0" if set(types) <= {"ww", "rt"} else "G1c" if rw == 0 else \
        "G-single" if rw == 1 else "G2-item"
    if "rt" in types:
        name += "-realtime"
    path = " ".join(f"#{op_id} -{label}->" for op_id, label in steps) + f" #{steps[0][0]}"
    return {"type": name, "path": path, "ops": [by_id[op_id].describe() for op_id, _ in steps]}


def _strongest(labels: list[str]) -> str:
    """The edge label to show: the one that makes the weakest anomaly (ww, wr, rw)."""
    return min(labels, key=lambda label: ("ww", "wr", "rw", "rt").index(label.split(" ")[0]))


__all__ = ["ElleResult", "check_list_append"]
