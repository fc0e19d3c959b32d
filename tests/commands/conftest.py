"""Fixtures for the command tests: a fresh keyspace and a runner bound to it.

``run("SET", "k", "v")`` calls the handler as the dispatcher would (see
commands_support.call); ``err(reply)`` is the text of a reply that must be an error;
``differ(...)`` runs a command here and on a real redis-server (see redis_diff).
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
from commands_support import NOW, call, error_text
from redis_diff import differ  # noqa: F401  (a fixture for every module)

from respkv.protocol.reply import Reply
from respkv.state.keyspace import Keyspace


@pytest.fixture
def db() -> Keyspace:
    return Keyspace()


@pytest.fixture
def run(db: Keyspace) -> Callable[..., Reply]:
    def runner(*args: object, now: int = NOW) -> Reply:
        return call(db, *args, now=now)

    return runner


@pytest.fixture
def err() -> Callable[[Reply], str]:
    return error_text
