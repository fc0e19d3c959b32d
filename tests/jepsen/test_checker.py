"""The checker on its own: hand-made histories, unknown outcomes, budgets, shrinking,
counters and lost writes, and agreement with a brute-force checker."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from jepsen.checker import (
    Budget,
    BudgetExceeded,
    check_counter,
    check_ledger,
    check_register,
    combine,
    linearizable,
    prepare_register,
)
from jepsen.history import FAIL, INFINITY, OK, UNKNOWN, Op

_ids = itertools.count()


def op(kind: str, start: int, end: int | None, value=None, result=None, status: str = OK,
       key: str = "k") -> Op:
    """end=None: outcome unknown."""
    if end is None:
        status = UNKNOWN
    return Op(next(_ids), 0, kind, key, value, invoke=start,
              complete=INFINITY if end is None else end, status=status, result=result)


def w(start, end, value, status=OK):
    return op("write", start, end, value=value, status=status)


def r(start, end, result):
    return op("read", start, end, result=result)


def cas(start, end, value, result=None, status=OK):
    return op("cas", start, end, value=value, result=result, status=status)


def valid(ops) -> bool | str:
    return check_register("k", ops, budget_seconds=5).valid


# -- hand-made register histories -------------------------------------------------------


def test_empty_and_sequential_histories_pass():
    assert valid([]) is True
    assert valid([r(0, 1, None), w(2, 3, "a"), r(4, 5, "a"), w(6, 7, "b"), r(8, 9, "b")]) is True


def test_stale_read_after_acknowledged_write_fails():
    result = check_register("k", [w(0, 1, "a"), w(2, 3, "b"), r(4, 5, "a")])
    assert result.valid is False
    assert len(result.witness) == 3
    assert "not linearizable" in result.message


def test_read_of_initial_value_after_write_fails():
    assert valid([w(0, 1, "a"), r(2, 3, None)]) is False


def test_concurrent_write_may_be_seen_or_not():
    assert valid([w(0, 10, "a"), r(1, 2, None), r(3, 4, "a")]) is True
    # once a read saw the new value, a later read may not see the old one
    assert valid([w(0, 10, "a"), r(1, 2, "a"), r(3, 4, None)]) is False


def test_value_never_written_fails():
    assert valid([w(0, 1, "a"), r(2, 3, "zzz")]) is False


def test_reads_order_concurrent_writes():
    # a and b concurrent; reads fix the order a then b; a later read of a is stale
    ops = [w(0, 10, "a"), w(0, 10, "b"), r(11, 12, "b"), r(13, 14, "a")]
    assert valid(ops) is False
    assert valid(ops[:3]) is True


def test_touching_intervals_are_concurrent():
    # the read is invoked at the instant the write returns: either order is fine
    assert valid([w(0, 5, "a"), r(5, 6, None)]) is True


def test_cas_returns_previous_value():
    assert valid([w(0, 1, "a"), cas(2, 3, "b", result="a"), r(4, 5, "b")]) is True
    assert valid([w(0, 1, "a"), cas(2, 3, "b", result=None)]) is False
    # two cas that both saw "a": one of them must have seen the other's value
    assert valid([w(0, 1, "a"), cas(2, 9, "b", result="a"), cas(2, 9, "c", result="a")]) is False


def test_failed_write_never_happened():
    assert valid([w(0, 1, "a", status=FAIL), r(2, 3, "a")]) is False
    assert valid([w(0, 1, "a", status=FAIL), r(2, 3, None)]) is True


# -- unknown outcomes -----------------------------------------------------------------------


def test_unknown_write_may_take_effect_late():
    # invoked at 0, outcome unknown; seen only long after, then overwritten
    ops = [w(0, None, "a"), r(5, 6, None), r(50, 51, "a"), w(60, 61, "b"), r(70, 71, "b")]
    assert valid(ops) is True


def test_unknown_write_may_never_happen():
    assert valid([w(0, None, "a"), r(5, 6, None), r(50, 51, None)]) is True


def test_unknown_write_cannot_take_effect_before_invocation():
    assert valid([r(0, 1, "a"), w(5, None, "a")]) is False


def test_unknown_write_takes_effect_once():
    ops = [w(0, 1, "x"), w(2, None, "a"), r(3, 4, "a"), w(5, 6, "b"), r(7, 8, "a")]
    assert valid(ops) is False


def test_unknown_cas_writes_any_time_and_returns_nothing():
    ops = [w(0, 1, "a"), cas(2, None, "b"), r(3, 4, "a"), r(10, 11, "b")]
    assert valid(ops) is True


def test_unknown_read_says_nothing():
    assert valid([w(0, 1, "a"), op("read", 2, None, result="zzz")]) is True


def test_unobserved_unknown_writes_are_pruned():
    ops = [w(i, None, f"u{i}") for i in range(200)] + [r(300, 301, None)]
    assert prepare_register(ops) == ops[-1:]
    assert valid(ops) is True


# -- budget: running out is never a pass ---------------------------------------------------


def test_budget_exhausted_is_unknown_not_pass():
    # many concurrent writes, each value observed by some read, in a history that is
    # linearizable only after a long search
    ops = [w(0, 100, f"v{i}") for i in range(16)]
    ops += [r(101 + i, 101 + i, f"v{i}") for i in range(16)]
    ops += [r(200, 201, "v0")]  # v0 read again after v15: not linearizable
    result = check_register("k", ops, budget_seconds=5, max_steps=2_000)
    assert result.valid == "unknown"
    assert "budget" in result.message
    with pytest.raises(BudgetExceeded):
        linearizable(ops, budget=Budget(steps=100))


def test_combine_verdicts():
    assert combine([True, True]) is True
    assert combine([True, "unknown"]) == "unknown"
    assert combine(["unknown", False]) is False


# -- shrinking -------------------------------------------------------------------------------


def test_witness_is_small_and_fails_on_its_own():
    ops = []
    t = 0
    for i in range(300):  # a long correct history ...
        ops.append(w(t, t + 2, f"a{i}"))
        ops.append(r(t + 3, t + 4, f"a{i}"))
        t += 5
    ops.append(r(t, t + 1, "a10"))  # ... and one stale read at the end
    ops.append(w(t + 2, t + 3, "z"))
    result = check_register("k", ops)
    assert result.valid is False
    assert len(result.witness) <= 3
    assert check_register("k", result.witness).valid is False
    assert any(o.result == "a10" and o.kind == "read" for o in result.witness)


# -- counters and the ledger -------------------------------------------------------------------


def incr(start, end, result=None, status=OK):
    return op("incr", start, end, result=result, status=status, key="c")


def test_counter_bounds():
    ops = [incr(0, 1, 1), incr(2, 3, 2), incr(4, None), incr(5, 6, None, status=FAIL)]
    assert check_counter("c", ops, [2]).valid
    assert check_counter("c", ops, [3]).valid
    assert not check_counter("c", ops, [1]).valid  # an acknowledged INCR lost
    assert not check_counter("c", ops, [4]).valid  # more than could have happened
    assert not check_counter("c", ops, [2, 3]).valid  # replicas diverged


def test_counter_duplicate_and_impossible_results():
    assert not check_counter("c", [incr(0, 1, 1), incr(2, 3, 1)], [2]).valid
    # the second began after the first was acknowledged: it cannot return 1
    assert not check_counter("c", [incr(0, 1, 2), incr(2, 3, 1)], [2]).valid
    assert check_counter("c", [incr(0, 5, 2), incr(1, 3, 1)], [2]).valid


def test_ledger():
    ops = [op("ledger", 0, 1, key="l1", value="1"), op("ledger", 0, None, key="l2", value="2"),
           op("ledger", 0, 1, key="l3", value="3", status=FAIL)]
    assert check_ledger(ops, {"n1": {"l1": "1"}, "n2": {"l1": "1", "l2": "2"}}).valid
    assert not check_ledger(ops, {"n1": {"l2": "2"}}).valid
    assert not check_ledger(ops, {"n1": {"l1": "1", "l3": "3"}}).valid


# -- agreement with a brute-force checker -------------------------------------------------------


def brute_force(ops: list[Op]) -> bool:
    """Every order of (a subset of the unknown plus all known) ops that respects real
    time, run against a register model written again from scratch."""
    ops = [o for o in ops if o.status != FAIL and not (o.status == UNKNOWN and o.kind == "read")]

    def precedes(a: Op, b: Op) -> bool:
        return a.status == OK and a.complete < b.invoke

    def search(remaining: list[Op], state) -> bool:
        if all(o.status == UNKNOWN for o in remaining):
            return True  # the rest never happened
        for candidate in remaining:
            if any(precedes(other, candidate) for other in remaining if other is not candidate):
                continue
            if candidate.kind == "read":
                if candidate.result != state:
                    continue
                after = state
            else:
                if candidate.kind == "cas" and candidate.status == OK \
                        and candidate.result != state:
                    continue
                after = candidate.value
            rest = [o for o in remaining if o is not candidate]
            if search(rest, after):
                return True
        return False

    return search(ops, None)


@st.composite
def histories(draw):
    size = draw(st.integers(1, 7))
    ops = []
    written: list[str] = []
    for i in range(size):
        kind = draw(st.sampled_from(["read", "write", "cas"]))
        start = draw(st.integers(0, 12))
        length = draw(st.integers(0, 6))
        status = draw(st.sampled_from([OK, OK, OK, UNKNOWN, FAIL]))
        value = None
        if kind != "read":
            value = f"v{i}"
            written.append(value)
        ops.append(Op(i, i, kind, "k", value, invoke=start,
                      complete=INFINITY if status == UNKNOWN else start + length,
                      status=status))
    for o in ops:
        if o.kind != "write":
            o.result = draw(st.sampled_from([None, *written]))
    return ops


@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(histories())
def test_agrees_with_brute_force(ops):
    expected = brute_force(ops)
    assert check_register("k", ops, budget_seconds=10).valid is expected
    assert linearizable(prepare_register(ops)) is expected


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(histories())
def test_witness_is_a_failing_sub_history(ops):
    result = check_register("k", ops, budget_seconds=10)
    if result.valid is True:
        return
    witness = result.witness
    assert witness and all(any(o is p for p in ops) for o in witness)
    assert brute_force(witness) is False
    # the writer of every value the witness observed is in it (if there is one)
    values = {o.value for o in witness if o.kind != "read"}
    written = {o.value for o in ops if o.kind != "read" and o.status != FAIL}
    assert all(o.result in values for o in witness
               if o.kind != "write" and o.status == OK and o.result in written)


def test_witness_includes_writers_of_writers_observations():
    ops = [w(0, 1, "a"), cas(2, 3, "b", result="a"), cas(4, 5, "c", result="b"),
           r(6, 7, "c"), r(8, 9, "b")]
    result = check_register("k", ops)
    assert result.valid is False
    assert {o.value for o in result.witness if o.kind != "read"} >= {"a", "b", "c"}


def test_brute_force_sees_both_outcomes():
    """The generator makes both kinds of history, so agreement means something."""
    from hypothesis import find

    found_bad = find(histories(), lambda h: not brute_force(h))
    found_good = find(histories(), lambda h: brute_force(h) and len(h) >= 5)
    assert found_bad and found_good
