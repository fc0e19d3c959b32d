"""Proposals, with a real single-node Raft core: writes over max-entry-bytes fail
alone, the rest of their batch goes on; writes still queued at shutdown are told."""

from __future__ import annotations

import asyncio

import pytest

from respkv.raft.core import Config, RaftCore
from respkv.replication.outcomes import EntryTooBig, ShuttingDown
from respkv.replication.proposals import Proposals


def leading_core() -> RaftCore:
    core = RaftCore(Config(node_id="n1", voters=("n1",)))
    core.campaign()
    while core.has_ready():
        core.advance(core.ready())
    return core


def test_a_write_over_the_limit_fails_alone() -> None:
    async def run() -> None:
        core = leading_core()
        proposals = Proposals(core, lambda: None, lambda: 1024)
        small = proposals.submit([b"SET", b"k", b"v"], 0)
        big = proposals.submit([b"SET", b"k", b"v" * 2000], 0)
        last = core.log.last_index()
        proposals.hand_over()
        assert core.log.last_index() == last + 1  # only the small one was proposed
        assert not small.done() and set(proposals.waiters) == {last + 1}
        with pytest.raises(EntryTooBig, match=r"entry would be \d+ bytes, over "
                                              r"max-entry-bytes \(1024\)"):
            big.result()

    asyncio.run(run())


def test_writes_queued_at_shutdown_are_told() -> None:
    async def run() -> None:
        proposals = Proposals(leading_core(), lambda: None, lambda: 1 << 20)
        queued = [proposals.submit([b"SET", b"k", b"%d" % i], 0) for i in range(3)]
        proposals.reject_queued(ShuttingDown())
        for future in queued:
            with pytest.raises(ShuttingDown):
                future.result()
        assert proposals.settled

    asyncio.run(run())
