"""Several futures seen as one: a write sent to several groups, a read barrier on
several groups."""

from __future__ import annotations

import asyncio

from respkv.protocol.reply import Reply, RespError


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
