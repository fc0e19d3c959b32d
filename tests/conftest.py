"""Fixtures shared by every test directory."""

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import settings

sys.path.insert(0, str(Path(__file__).resolve().parent))

from testsupport.processes import redis_server
from testsupport.tls import Certs, make_certs

# The same examples on every run, so that CI passes or fails the same way each time;
# `pytest --hypothesis-profile=explore` draws new ones (and keeps what fails).
settings.register_profile("repeatable", derandomize=True, database=None)
settings.register_profile("explore")
settings.load_profile("repeatable")


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Certs:
    """A CA, and a certificate it signed for 127.0.0.1 and localhost."""
    return make_certs(tmp_path_factory.mktemp("certs"))


@pytest.fixture(scope="module")
def other_ca(tmp_path_factory: pytest.TempPathFactory) -> Certs:
    """Another CA, and a certificate of its own: trusted by nobody here."""
    return make_certs(tmp_path_factory.mktemp("other-ca"))


@pytest.fixture(scope="module")
def redis_port() -> Iterator[int]:
    """A real redis-server for the module's differential tests: its port."""
    with redis_server() as port:
        yield port
