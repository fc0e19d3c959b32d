"""Waiting on several groups at once: a write sent to several groups, a read barrier on
several groups, and their pending writes settling before a check-then-propose."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Sequence
from typing import Protocol

from respkv.protocol.reply import Reply, RespError


class Settling(Protocol):
    """A group whose pending writes can be waited for (a RaftGroup)."""

    def is_leader(self) -> bool: ...

    def settled(self) -> bool: ...

    def when_settled(self) -> asyncio.Future[None]: ...


async def settle(groups: Sequence[Settling], timeout: float) -> bool:
    """Wait until every write proposed to the groups is applied; False if this node
    stopped leading one of them, or after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        if not all(g.is_leader() for g in groups):
            return False
        busy = [g for g in groups if not g.settled()]
        if not busy:
            return True
        left = deadline - time.monotonic()
        if left <= 0:
            return False
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.gather(*(g.when_settled() for g in busy)), left)


def first_failure_or_reply(futures: list[asyncio.Future[Reply]]) -> asyncio.Future[Reply]:
    """One reply for a write sent to several groups: the first failure, else the
    first error reply, else the first reply."""
    if len(futures) == 1:
        return futures[0]
    combined: asyncio.Future[Reply] = asyncio.get_running_loop().create_future()

    def done(_: object) -> None:
        if combined.done() or not all(f.done() for f in futures):
            return
        failures = [e for f in futures if (e := f.exception()) is not None]
        if failures:
            combined.set_exception(failures[0])
            return
        replies = [f.result() for f in futures]
        errors = [r for r in replies if isinstance(r, RespError)]
        combined.set_result(errors[0] if errors else replies[0])

    for future in futures:
        future.add_done_callback(done)
    return combined


def all_of(futures: list[asyncio.Future[None]]) -> asyncio.Future[None]:
    """Resolves when every future has; fails with the first failure."""
    combined: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def done(future: asyncio.Future[None]) -> None:
        if combined.done():
            if not future.cancelled():
                future.exception()  # retrieved: no "never retrieved" warning
            return
        if future.cancelled():
            combined.cancel()
        elif (error := future.exception()) is not None:
            combined.set_exception(error)
        elif all(f.done() for f in futures):
            combined.set_result(None)

    for future in futures:
        future.add_done_callback(done)
    return combined
