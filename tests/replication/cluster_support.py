"""Helpers for the cluster tests: writers that follow the leader, and checks of
what every node holds.

A ``Writer`` thread writes unique keys (``<name>:<i>`` = ``v<i>``) until told
to stop, following MOVED to the leader and retrying the same key on any error
(SET of the same value is idempotent), and records the keys whose write was
acknowledged with OK: those must survive whatever the test does to the nodes.
"""

from __future__ import annotations

import itertools
import socket
import threading
import time

import hiredis
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from testsupport.processes import Cluster, Node, local_values
from testsupport.waiting import wait_for

RETRYABLE = (redis.ConnectionError, redis.TimeoutError, redis.ResponseError, OSError)


class Writer(threading.Thread):
    def __init__(self, cluster: Cluster, name: str, stop: threading.Event,
                 value_size: int = 0, socket_timeout: float = 3.0) -> None:
        super().__init__(name=f"writer-{name}", daemon=True)
        self.cluster = cluster
        self.key_prefix = name
        self.stop_event = stop
        self.padding = "x" * value_size
        self.socket_timeout = socket_timeout
        self.acked: dict[str, str] = {}
        self.ack_times: list[float] = []  # time.monotonic() of every acknowledged write
        self.errors: list[str] = []  # every failed attempt, for failure messages
        self.lock = threading.Lock()

    def value(self, i: int) -> str:
        return f"v{i}{self.padding}"

    def _addresses(self) -> list[tuple[str, int]]:
        return [("127.0.0.1", n.port) for n in list(self.cluster.nodes)]

    def run(self) -> None:
        addresses = self._addresses()
        target = addresses[0]
        client: redis.Redis | None = None
        i = 0
        turn = 0
        while not self.stop_event.is_set():
            if client is None:
                # no retries inside redis-py (its backoff sleeps for seconds):
                # this loop retries, on the next node
                client = redis.Redis(host=target[0], port=target[1],
                                     socket_timeout=self.socket_timeout,
                                     socket_connect_timeout=self.socket_timeout,
                                     retry=Retry(NoBackoff(), 0))
            key, value = f"{self.key_prefix}:{i}", self.value(i)
            try:
                ok = client.set(key, value)
            except redis.exceptions.MovedError as moved:
                self._error(moved)
                client.close()
                client, target = None, (moved.host, moved.port)
                continue
            except RETRYABLE as error:
                self._error(error)
                client.close()
                client = None
                turn += 1
                addresses = self._addresses()
                target = addresses[turn % len(addresses)]
                self.stop_event.wait(0.02)  # pacing against a busy loop, not a wait on state
                continue
            if ok is True:
                with self.lock:
                    self.acked[key] = value
                    self.ack_times.append(time.monotonic())
                i += 1
        if client is not None:
            client.close()

    def _error(self, error: Exception) -> None:
        with self.lock:
            self.errors.append(f"{time.monotonic():.3f} {error.__class__.__name__}: {error}")

    def count(self) -> int:
        with self.lock:
            return len(self.acked)

    def snapshot(self) -> dict[str, str]:
        with self.lock:
            return dict(self.acked)


class Writers:
    """Several Writer threads started and stopped together."""

    def __init__(self, cluster: Cluster, count: int = 3, prefix: str = "w", **kwargs) -> None:
        self.stop_event = threading.Event()
        self.threads = [Writer(cluster, f"{prefix}{i}", self.stop_event, **kwargs)
                        for i in range(count)]

    def __enter__(self) -> Writers:
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        self.stop_event.set()
        for thread in self.threads:
            thread.join(30)
            assert not thread.is_alive(), f"{thread.name} did not stop"

    def count(self) -> int:
        return sum(t.count() for t in self.threads)

    def wait_more(self, than: int, timeout: float = 20.0, what: str = "more writes") -> int:
        """Wait until more than ``than`` writes in all have been acknowledged."""
        def more() -> int:
            return self.count() > than and self.count()

        try:
            return wait_for(more, timeout, what)
        except TimeoutError as error:
            raise AssertionError(f"{error}\nlast errors: {self.last_errors()}") from None

    def acked(self) -> dict[str, str]:
        acked: dict[str, str] = {}
        for thread in self.threads:
            acked.update(thread.snapshot())
        return acked

    def ack_times(self) -> list[float]:
        return sorted(t for thread in self.threads for t in thread.ack_times)

    def last_errors(self, n: int = 10) -> list[str]:
        errors = sorted(e for thread in self.threads for e in thread.errors)
        return errors[-n:]


def assert_all_present(nodes: list[Node], expected: dict[str, str]) -> None:
    """Every node holds every expected key with its value."""
    keys = sorted(expected)
    for node in nodes:
        found = local_values(node, keys)
        missing = [k for k in keys if found[k] is None]
        wrong = [k for k in keys if found[k] is not None and found[k] != expected[k].encode()]
        assert not missing and not wrong, (
            f"node on port {node.port}: {len(missing)} acknowledged keys missing "
            f"(e.g. {missing[:5]}), {len(wrong)} with other values (e.g. {wrong[:5]})")


def max_gap(times: list[float], start: float, end: float) -> float:
    """The longest stretch in [start, end] with no acknowledged write."""
    points = [start, *[t for t in times if start <= t <= end], end]
    return max(b - a for a, b in itertools.pairwise(points))


def raw_socket_command(port: int, *args: str | bytes, timeout: float = 5.0,
                       before: tuple[tuple[str, ...], ...] = ()) -> socket.socket:
    """Open a connection and send one command (after the ``before`` ones, in one
    write), without waiting for anything: works on a SIGSTOPped server (the
    kernel accepts for it). Read the reply with ``read_reply``."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    sock.sendall(b"".join(hiredis.pack_command(tuple(c)) for c in (*before, args)))
    return sock


def read_reply(sock: socket.socket, skip: int = 0) -> object:
    """The reply to the last command sent on ``sock`` (after ``skip`` others): the
    value, a ``hiredis.ReplyError``, or the ``TimeoutError``/``OSError`` met while
    waiting for it. Closes the socket."""
    reader = hiredis.Reader()
    try:
        while True:
            reply = reader.gets()
            if reply is not False:
                if skip == 0:
                    return reply
                skip -= 1
                continue
            data = sock.recv(65536)
            if not data:
                return ConnectionError("connection closed without a reply")
            reader.feed(data)
    except OSError as error:  # socket.timeout is an OSError
        return error
    finally:
        sock.close()


class RawConnection:
    """A plain socket speaking RESP: commands can be sent to a SIGSTOPped server
    (the kernel buffers them) and are the first thing it reads when it resumes.
    ``reply()`` returns the value, a ``hiredis.ReplyError``, or the
    ``OSError``/timeout met while waiting."""

    def __init__(self, port: int, timeout: float = 5.0) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.reader = hiredis.Reader()

    def send(self, *args: str | bytes) -> None:
        self.sock.sendall(hiredis.pack_command(tuple(args)))

    def reply(self) -> object:
        try:
            while (reply := self.reader.gets()) is False:
                data = self.sock.recv(65536)
                if not data:
                    return ConnectionError("connection closed without a reply")
                self.reader.feed(data)
            return reply
        except OSError as error:  # socket.timeout is an OSError
            return error

    def call(self, *args: str | bytes) -> object:
        self.send(*args)
        return self.reply()

    def close(self) -> None:
        self.sock.close()
