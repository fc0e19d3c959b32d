"""The list-append checker on its own: hand-made histories with one known anomaly
each, histories made by a serial execution (which must pass) and mutations of
them, and agreement with a brute-force search for a strictly serial order."""

from __future__ import annotations

import dataclasses
import itertools
import random
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from jepsen.elle import check_list_append
from jepsen.history import FAIL, INFINITY, OK, UNKNOWN, Op

_ids = itertools.count()


def txn(start: int, end: int | None, *mops: tuple, status: str = OK,
        lengths: list[int | None] | None = None) -> Op:
    """A transaction; ``mops`` as ("append", key, value) or ("r", key, list). end=None:
    outcome unknown (its reads' results are then not known either)."""
    if end is None:
        status = UNKNOWN
    invoked = [[f, k, None if f == "r" else v] for f, k, v in mops]
    op = Op(next(_ids), 0, "txn", "{la}", invoked, invoke=start,
            complete=INFINITY if end is None else end, status=status,
            result=[list(m) for m in mops] if status == OK else None)
    if lengths is not None:
        op.extra["lengths"] = lengths
    return op


def final(at: int, key: str, values: list[Any]) -> Op:
    op = txn(at, at + 1, ("r", key, values))
    op.client = -1
    return op


def kinds(ops: list[Op]) -> list[str]:
    return check_list_append(ops).kinds


# -- valid histories -------------------------------------------------------------------


def test_serial_history_passes():
    ops = [txn(0, 1, ("append", "x", 1), ("r", "x", [1])),
           txn(2, 3, ("r", "x", [1]), ("append", "x", 2), ("append", "y", 3)),
           txn(4, 5, ("r", "y", [3]), ("r", "x", [1, 2])),
           final(10, "x", [1, 2]), final(12, "y", [3])]
    result = check_list_append(ops)
    assert result.valid, result.problems()
    assert result.counts["ok"] == 5 and result.counts["keys"] == 2


def test_concurrent_transactions_may_go_either_way():
    # a and b overlap in time: the reads may order them either way, consistently
    a = txn(0, 10, ("append", "x", 1))
    b = txn(0, 10, ("append", "x", 2))
    assert check_list_append([a, b, txn(11, 12, ("r", "x", [2, 1])),
                              final(20, "x", [2, 1])]).valid
    assert check_list_append([txn(0, 10, ("append", "x", 1)), txn(0, 10, ("append", "x", 2)),
                              final(20, "x", [1, 2])]).valid


def test_indeterminate_append_may_appear_or_not():
    assert check_list_append([txn(0, None, ("append", "x", 1)), final(10, "x", [])]).valid
    assert check_list_append([txn(0, None, ("append", "x", 1)), final(10, "x", [1])]).valid
    # late: not seen by one read, seen by a later one
    assert check_list_append([txn(0, None, ("append", "x", 1)), txn(2, 3, ("r", "x", [])),
                              final(10, "x", [1])]).valid


def test_reads_of_own_appends_are_consistent():
    ops = [txn(0, 1, ("append", "x", 1)),
           txn(2, 3, ("r", "x", [1]), ("append", "x", 2), ("r", "x", [1, 2])),
           final(5, "x", [1, 2])]
    assert check_list_append(ops).valid


def test_rpush_lengths_that_match_pass():
    ops = [txn(0, 1, ("append", "x", 1), ("append", "x", 2), lengths=[1, 2]),
           txn(2, 3, ("append", "x", 3), lengths=[3]), final(5, "x", [1, 2, 3])]
    assert check_list_append(ops).valid


# -- one anomaly each ---------------------------------------------------------------------


def test_g0_write_cycle():
    t1 = txn(0, 10, ("append", "x", 1), ("append", "y", 1))
    t2 = txn(0, 10, ("append", "x", 2), ("append", "y", 2))
    result = check_list_append([t1, t2, final(20, "x", [1, 2]), final(22, "y", [2, 1])])
    assert not result.valid
    assert result.kinds == ["G0"]
    (cycle,) = result.cycles
    assert f"#{t1.id}" in cycle["path"] and f"#{t2.id}" in cycle["path"]
    assert "-ww x->" in cycle["path"] and "-ww y->" in cycle["path"]
    assert len(cycle["ops"]) == 2


def test_g1c_circular_information_flow():
    t1 = txn(0, 10, ("append", "x", 1), ("r", "y", [2]))
    t2 = txn(0, 10, ("append", "y", 2), ("r", "x", [1]))
    result = check_list_append([t1, t2, final(20, "x", [1]), final(22, "y", [2])])
    assert result.kinds == ["G1c"]
    assert "-wr x->" in result.cycles[0]["path"] and "-wr y->" in result.cycles[0]["path"]


def test_g_single_read_skew():
    t1 = txn(0, 10, ("r", "x", []), ("r", "y", [1]))
    t2 = txn(0, 10, ("append", "x", 1), ("append", "y", 1))
    result = check_list_append([t1, t2, final(20, "x", [1]), final(22, "y", [1])])
    assert result.kinds == ["G-single"]
    assert "-rw x->" in result.cycles[0]["path"] and "-wr y->" in result.cycles[0]["path"]


def test_g2_item_write_skew():
    t1 = txn(0, 10, ("r", "x", []), ("append", "y", 1))
    t2 = txn(0, 10, ("r", "y", []), ("append", "x", 2))
    result = check_list_append([t1, t2, final(20, "x", [2]), final(22, "y", [1])])
    assert result.kinds == ["G2-item"]


def test_stale_read_is_g_single_realtime():
    write = txn(0, 1, ("append", "x", 1))
    stale = txn(2, 3, ("r", "x", []))
    result = check_list_append([write, stale, final(10, "x", [1])])
    assert result.kinds == ["G-single-realtime"]
    assert result.cycles[0]["path"] in (f"#{write.id} -rt-> #{stale.id} -rw x-> #{write.id}",
                                        f"#{stale.id} -rw x-> #{write.id} -rt-> #{stale.id}")
    # the same two ops overlapping in time: serializable either way
    assert check_list_append([txn(0, 5, ("append", "x", 1)), txn(2, 3, ("r", "x", [])),
                              final(10, "x", [1])]).valid


def test_appends_ordered_against_real_time_is_g0_realtime():
    ops = [txn(0, 1, ("append", "x", 1)), txn(2, 3, ("append", "x", 2)),
           final(10, "x", [2, 1])]
    assert kinds(ops) == ["G0-realtime"]


def test_read_of_a_later_indeterminate_append_is_g1c_realtime():
    # the read returned before the append was even invoked
    ops = [txn(0, 1, ("r", "x", [1])), txn(5, None, ("append", "x", 1)), final(10, "x", [1])]
    assert kinds(ops) == ["G1c-realtime"]


def test_indeterminate_append_seen_then_gone_is_a_cycle():
    ops = [txn(0, None, ("append", "x", 1)), txn(2, 3, ("r", "x", [1])),
           txn(4, 5, ("r", "x", [])), final(10, "x", [1])]
    assert kinds(ops) == ["G-single-realtime"]


def test_read_that_is_not_a_prefix():
    ops = [txn(0, 10, ("append", "x", 1)), txn(0, 10, ("append", "x", 2)),
           txn(0, 10, ("append", "x", 3)), txn(11, 12, ("r", "x", [1, 3])),
           final(20, "x", [1, 2, 3])]
    result = check_list_append(ops)
    assert "incompatible-order" in result.kinds
    assert "[1, 3] is not a prefix of [1, 2, 3]" in result.anomalies["incompatible-order"][0]


def test_diverging_reads_are_incompatible():
    ops = [txn(0, 10, ("append", "x", 1)), txn(0, 10, ("append", "x", 2)),
           txn(11, 12, ("r", "x", [1, 2])), final(20, "x", [2, 1])]
    assert "incompatible-order" in kinds(ops)


def test_duplicated_append():
    ops = [txn(0, 1, ("append", "x", 1)), txn(2, 3, ("append", "x", 2)),
           final(10, "x", [1, 2, 1])]
    result = check_list_append(ops)
    assert "duplicate-elements" in result.kinds
    assert "[1] more than once" in result.anomalies["duplicate-elements"][0]


def test_acknowledged_append_lost():
    ops = [txn(0, 1, ("append", "x", 1)), txn(2, 3, ("append", "x", 2)),
           final(10, "x", [2])]
    result = check_list_append(ops)
    # named as such, and as the cycle it makes: the final read missed an append
    # acknowledged before it began
    assert result.kinds == ["G-single-realtime", "lost-append"]
    assert "append of 1" in result.anomalies["lost-append"][0]


def test_indeterminate_transaction_seen_in_part_lost_the_rest():
    # its append to y was seen, so it happened, all of it: its append to x must be there
    ops = [txn(0, None, ("append", "x", 1), ("append", "y", 2)), txn(3, 4, ("r", "y", [2])),
           final(10, "x", []), final(12, "y", [2])]
    result = check_list_append(ops)
    assert result.kinds == ["G-single-realtime", "lost-append"]
    assert "seen (in part)" in result.anomalies["lost-append"][0]


def test_unseen_append_ordered_before_a_read_through_another_key():
    """An indeterminate transaction's append to y was seen first in y's order, before
    an acknowledged append that came before the final read of x; so it happened
    before that read, which does not show its append to x."""
    maybe = txn(0, None, ("append", "y", 2), ("append", "x", 3))
    ops = [txn(0, 5, ("append", "y", 1)), maybe, final(10, "x", []),
           final(12, "y", [2, 1])]
    result = check_list_append(ops)
    assert result.kinds == ["G-single-realtime"]
    assert f"#{maybe.id}" in result.cycles[0]["path"]


def test_aborted_read_g1a():
    ops = [txn(0, 1, ("append", "x", 1), status=FAIL), txn(2, 3, ("r", "x", [1])),
           final(10, "x", [1])]
    assert kinds(ops) == ["G1a"]


def test_intermediate_read_g1b():
    ops = [txn(0, 10, ("append", "x", 1), ("append", "x", 2)), txn(0, 10, ("r", "x", [1])),
           final(20, "x", [1, 2])]
    result = check_list_append(ops)
    assert "G1b" in result.kinds


def test_internal_inconsistency():
    assert "internal" in kinds([txn(0, 1, ("append", "x", 1), ("r", "x", [])),
                                final(10, "x", [1])])
    assert "internal" in kinds([txn(0, 1, ("append", "x", 5)),
                                txn(2, 3, ("r", "x", [5]), ("r", "x", [5, 6])),
                                final(10, "x", [5])])


def test_read_of_own_later_append_is_internal():
    ops = [txn(0, 1, ("r", "x", [3]), ("append", "x", 3)), final(10, "x", [3])]
    result = check_list_append(ops)
    assert result.kinds == ["internal"]
    assert "appends only later" in result.anomalies["internal"][0]


def test_own_appends_out_of_order_is_internal():
    ops = [txn(0, 1, ("append", "x", 1), ("append", "x", 2)), final(10, "x", [2, 1])]
    result = check_list_append(ops)
    assert "internal" in result.kinds  # and G1b: the read ends at its first append
    assert "out of the order" in result.anomalies["internal"][0]


def test_garbage_read():
    ops = [txn(0, 1, ("append", "x", 1)), txn(2, 3, ("r", "x", [1, 99])),
           final(10, "x", [1, 99])]
    assert "garbage-read" in kinds(ops)


def test_wrong_rpush_length():
    ops = [txn(0, 1, ("append", "x", 1), lengths=[1]),
           txn(2, 3, ("append", "x", 2), lengths=[3]), final(10, "x", [1, 2])]
    result = check_list_append(ops)
    assert result.kinds == ["wrong-length"]


def test_failed_and_indeterminate_reads_say_nothing():
    ops = [txn(0, 1, ("append", "x", 1)), txn(2, None, ("r", "x", [])),
           txn(2, 3, ("r", "x", []), status=FAIL), final(10, "x", [1])]
    assert check_list_append(ops).valid


def test_cycle_found_in_a_long_history_is_short():
    """Hundreds of serial transactions, then one stale read: the reported cycle is
    the two ops of the anomaly, not a long detour."""
    ops, t, values = [], 0, []
    for i in range(300):
        values.append(i)
        ops.append(txn(t, t + 1, ("append", "x", i), ("r", "x", list(values))))
        t += 2
    stale = txn(t, t + 1, ("r", "x", values[:100]))
    result = check_list_append([*ops, stale, final(t + 10, "x", values)])
    assert result.kinds == ["G-single-realtime"]
    (cycle,) = result.cycles
    assert len(cycle["ops"]) == 2 and f"#{stale.id}" in cycle["path"]


# -- generated histories --------------------------------------------------------------------


def serial_history(rng: random.Random, size: int, keys: int = 3) -> list[Op]:
    """Transactions with random intervals, applied one by one at a point inside each
    one's interval (indeterminate ones at a point after their invocation, or never;
    failed ones never): what every read returns is then what a strictly serializable
    store returns. Final reads of every key come last."""
    state: dict[str, list[int]] = {f"k{i}": [] for i in range(keys)}
    plans = []
    value = itertools.count(1)
    for _ in range(size):
        start = rng.randrange(0, 40)
        end = start + rng.randrange(0, 10)
        status = rng.choice([OK, OK, OK, OK, UNKNOWN, FAIL])
        mops = [("append", f"k{rng.randrange(keys)}", next(value)) if rng.random() < 0.5
                else ("r", f"k{rng.randrange(keys)}", None)
                for _ in range(rng.randint(1, 4))]
        if status == OK:
            point = rng.uniform(start, end)
        elif status == UNKNOWN:
            point = rng.uniform(start, 60) if rng.random() < 0.6 else None
        else:
            point = None
        plans.append((point, start, end, status, mops))
    results: dict[int, list[list[Any]]] = {}
    lengths: dict[int, list[int | None]] = {}
    applied = sorted((p for p in enumerate(plans) if p[1][0] is not None),
                     key=lambda p: p[1][0])
    for i, (_, _, _, _, mops) in applied:
        done, sizes = [], []
        for f, k, v in mops:
            if f == "append":
                state[k].append(v)
                done.append([f, k, v])
                sizes.append(len(state[k]))
            else:
                done.append([f, k, list(state[k])])
                sizes.append(None)
        results[i], lengths[i] = done, sizes
    ops = []
    for i, (_, start, end, status, mops) in enumerate(plans):
        op = Op(next(_ids), i, "txn", "{la}", [[f, k, v] for f, k, v in mops], invoke=start,
                complete=INFINITY if status == UNKNOWN else end, status=status)
        if status == OK:
            op.result, op.extra["lengths"] = results[i], lengths[i]
        ops.append(op)
    ops += [final(100 + 2 * i, k, list(v)) for i, (k, v) in enumerate(sorted(state.items()))]
    return ops


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(0, 10**9), st.integers(1, 40))
def test_serial_executions_pass(seed: int, size: int):
    ops = serial_history(random.Random(seed), size)
    result = check_list_append(ops)
    assert result.valid, result.problems()


def mutate(ops: list[Op], rng: random.Random) -> tuple[str, list[Op]] | None:
    """One change to one read of a valid history that makes it wrong whatever the
    order: a duplicated element, or a value nobody appended. (Reordering a read is
    not always wrong: two concurrent appends may go either way. The brute-force
    agreement below covers orders.)"""
    reads = [(op, i) for op in ops if op.status == OK
             for i, (f, _, v) in enumerate(op.result) if f == "r" and v]
    if not reads:
        return None
    op, i = rng.choice(reads)
    values = list(op.result[i][2])
    how = rng.choice(["duplicate", "garbage"])
    if how == "duplicate":
        values.insert(rng.randrange(len(values) + 1), rng.choice(values))
    else:
        values.insert(rng.randrange(len(values) + 1), 10**9)
    changed = dataclasses.replace(op, result=[
        [f, k, values if j == i else v] for j, (f, k, v) in enumerate(op.result)])
    return how, [changed if o is op else o for o in ops]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(0, 10**9), st.integers(2, 40))
def test_mutated_executions_fail(seed: int, size: int):
    rng = random.Random(seed)
    mutated = mutate(serial_history(rng, size), rng)
    if mutated is None:
        return
    how, ops = mutated
    result = check_list_append(ops)
    assert not result.valid, how
    expected = {"duplicate": "duplicate-elements", "garbage": "garbage-read"}[how]
    assert expected in result.kinds, (how, result.kinds)


def test_lost_acknowledged_append_is_found_in_generated_histories():
    rng = random.Random(5)
    for _ in range(50):
        ops = serial_history(rng, 30)
        finals = [op for op in ops if op.client == -1 and op.result[0][2]]
        acknowledged = {v for op in ops if op.status == OK and op.client >= 0
                        for f, _, v in op.value if f == "append"}
        candidates = [op for op in finals if op.result[0][2][-1] in acknowledged]
        if not candidates:
            continue
        target = rng.choice(candidates)
        key, values = target.result[0][1], target.result[0][2]
        target.result = [["r", key, values[:-1]]]
        # the writer's own reads or later ones may have seen it: then the order says so
        assert not check_list_append(ops).valid
        return
    raise AssertionError("no history with an acknowledged append in a final read")


# -- agreement with a brute-force search ------------------------------------------------------


def brute_force(ops: list[Op]) -> bool:
    """Is there a set of the indeterminate transactions and an order of them and the
    acknowledged ones, respecting real time, in which every acknowledged read returns
    what the lists hold at that point? (Failed transactions never happen.)"""
    known = [op for op in ops if op.status == OK]
    maybe = [op for op in ops if op.status == UNKNOWN]

    def before(a: Op, b: Op) -> bool:
        return a.status == OK and a.complete < b.invoke

    def search(left: list[Op], state: dict[str, tuple]) -> bool:
        if not left:
            return True
        for op in left:
            if any(before(other, op) for other in left if other is not op):
                continue
            lists = dict(state)
            fits = True
            for f, k, v in (op.result if op.status == OK else op.value):
                if f == "append":
                    lists[k] = (*lists.get(k, ()), v)
                elif op.status == OK and tuple(v) != lists.get(k, ()):
                    fits = False
                    break
            if fits and search([o for o in left if o is not op], lists):
                return True
        return False

    for n in range(len(maybe) + 1):
        for chosen in itertools.combinations(maybe, n):
            if search(known + list(chosen), {}):
                return True
    return False


@st.composite
def small_histories(draw) -> list[Op]:
    """Up to five transactions on two keys, each a valid serial history's op or
    one whose read returns some other arrangement of the values."""
    seed = draw(st.integers(0, 10**9))
    rng = random.Random(seed)
    ops = serial_history(rng, draw(st.integers(1, 5)), keys=2)
    values = [v for op in ops for f, _, v in op.value if f == "append"]
    for op in ops:
        # the brute force knows nothing of RPUSH lengths, and the execution's own
        # lengths may contradict an order that the made-up reads allow
        op.extra.pop("lengths", None)
        if op.status != OK or not draw(st.booleans()):
            continue
        new = []
        for f, k, v in op.result:
            if f == "r" and draw(st.integers(0, 3)) == 0:
                v = draw(st.lists(st.sampled_from(values or [1]), max_size=3, unique=True))
            new.append([f, k, v])
        op.result = new
    return ops


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(small_histories())
def test_agrees_with_brute_force(ops: list[Op]):
    assert check_list_append(ops).valid is brute_force(ops), \
        [op.describe() for op in ops]


def test_brute_force_sees_both_outcomes():
    """The generator makes both kinds of history, so agreement means something."""
    from hypothesis import find

    assert find(small_histories(), lambda h: not brute_force(h))
    assert find(small_histories(), lambda h: brute_force(h) and len(h) >= 5)
