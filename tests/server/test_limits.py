"""Limits on the client port that hold under bad clients, as Redis 7 has them:
client-output-buffer-limit (per class, hard and soft), client-query-buffer-limit,
proto-max-bulk-len, maxclients fitted to the open-file limit, the idle timeout; each
with the node still serving everyone else. Texts and outcomes are diffed against a
real redis-server where Redis has the feature."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from rawconn import RawConn, resp

from testsupport.ports import free_port
from testsupport.processes import Node
from testsupport.waiting import wait_for

DEFAULT_OUTPUT_LIMITS = "normal 0 0 0 slave 268435456 67108864 60 pubsub 33554432 8388608 60"


@pytest.fixture
def both(node: Node, redis_port: int) -> Iterator[list[redis.Redis]]:
    """A client on respkv and one on redis-server; the limits put back afterwards."""
    clients = [node.client(), redis.Redis(port=redis_port, socket_timeout=10)]
    saved = [c.config_get("*limit*") | c.config_get("proto-max-bulk-len") for c in clients]
    yield clients
    for client, values in zip(clients, saved, strict=True):
        for name, value in values.items():
            client.config_set(name, value)
        client.close()


def outcome(client: redis.Redis, *args: str) -> object:
    try:
        return client.execute_command(*args)
    except redis.ResponseError as error:
        return f"error: {error}"


def stat(client: redis.Redis, name: str) -> int:
    return int(client.info("stats")[name])


def closed_without_reply(conn: RawConn, timeout: float = 5.0) -> bool:
    """The server closed the connection (EOF or reset), having sent nothing more."""
    try:
        return conn.closed_after(timeout) == b""
    except BrokenPipeError:
        return True


# -- CONFIG GET/SET: Redis' syntax, ranges and texts --------------------------------


CONFIG_CASES = [
    ("client-output-buffer-limit", "normal 1mb 2mb 3"),
    ("client-output-buffer-limit", "replica 1k 2k 3 pubsub 1kb 0 0"),
    ("client-output-buffer-limit", "slave 1 2 3"),
    ("client-output-buffer-limit", ""),
    ("client-output-buffer-limit", "normal 1 2"),
    ("client-output-buffer-limit", "master 1 2 3"),
    ("client-output-buffer-limit", "foo 1 2 3"),
    ("client-output-buffer-limit", "normal 1 2 x"),
    ("client-output-buffer-limit", "normal -1 2 3"),
    ("client-query-buffer-limit", "100"),
    ("client-query-buffer-limit", "1048575"),
    ("client-query-buffer-limit", "1048576"),
    ("client-query-buffer-limit", "5gb"),
    ("proto-max-bulk-len", "1000"),
    ("proto-max-bulk-len", "0"),
    ("proto-max-bulk-len", "1mb"),
    ("proto-max-bulk-len", "2gb"),
    ("maxclients", "0"),
    ("timeout", "-1"),
]


def test_config_defaults_as_redis(both: list[redis.Redis]) -> None:
    ours, theirs = both
    for name in ("client-output-buffer-limit", "client-query-buffer-limit",
                 "proto-max-bulk-len", "timeout"):
        assert ours.config_get(name) == theirs.config_get(name), name
    assert ours.config_get("client-output-buffer-limit") == {
        "client-output-buffer-limit": DEFAULT_OUTPUT_LIMITS}


def test_config_set_as_redis(both: list[redis.Redis]) -> None:
    ours, theirs = both
    for name, value in CONFIG_CASES:
        expected = outcome(theirs, "CONFIG", "SET", name, value)
        assert outcome(ours, "CONFIG", "SET", name, value) == expected, (name, value)
        assert ours.config_get(name) == theirs.config_get(name), (name, value)


def test_output_limits_from_the_config_file(tmp_path) -> None:
    conf = tmp_path / "respkv.conf"
    conf.write_text("client-output-buffer-limit normal 10mb 5mb 30\n"
                    "client-output-buffer-limit pubsub 64mb 16mb 90\n"
                    "client-query-buffer-limit 2mb\n")
    node = Node(free_port(), tmp_path / "n", [str(conf)]).start()
    try:
        client = node.client()
        assert client.config_get("client-output-buffer-limit") == {
            "client-output-buffer-limit":
                "normal 10485760 5242880 30 slave 268435456 67108864 60 "
                "pubsub 67108864 16777216 90"}
        assert client.config_get("client-query-buffer-limit") == {
            "client-query-buffer-limit": "2097152"}
        client.close()
    finally:
        assert node.stop() == 0


# -- client-query-buffer-limit and proto-max-bulk-len --------------------------------


def _set_outcome(port: int, size: int) -> bytes:
    """What one SET of a ``size``-byte value gets: its reply, or b"closed"."""
    with RawConn(port) as conn:
        try:
            conn.send(resp("SET", "qbuf", b"x" * size))
            return conn.read_line()
        except (EOFError, ConnectionResetError, BrokenPipeError):
            return b"closed"


def test_query_buffer_limit_as_redis(both: list[redis.Redis], node: Node,
                                     redis_port: int) -> None:
    """A request bigger than the limit closes the connection without a reply, also
    when it arrives whole; one just under it is served."""
    for client in both:
        client.config_set("client-query-buffer-limit", "1mb")
    before = stat(both[0], "client_query_buffer_limit_disconnections")
    for size in (900_000, 1_048_536, 1_048_576, 2_000_000):
        assert _set_outcome(node.port, size) == _set_outcome(redis_port, size), size
    assert stat(both[0], "client_query_buffer_limit_disconnections") == before + 2
    assert "Closing client that reached max query buffer length" in node.log()
    assert both[0].ping()


def test_trickled_bulk_past_the_query_limit(both: list[redis.Redis], node: Node) -> None:
    """A bulk sent slowly is cut off once the unparsed part passes the limit; the node
    keeps serving others meanwhile."""
    ours = both[0]
    ours.config_set("client-query-buffer-limit", "1mb")
    other = node.client(socket_timeout=2)
    with RawConn(node.port) as slow:
        slow.send(b"*3\r\n$3\r\nSET\r\n$8\r\ntrickled\r\n$4000000\r\n")
        sent = 0
        try:
            while sent < 4_000_000:
                slow.send(b"y" * 65536)
                sent += 65536
                assert other.ping()
        except (BrokenPipeError, ConnectionResetError):
            pass
        assert closed_without_reply(slow)
    # cut off near the limit: not after the whole 4 MB was taken in
    assert sent < 3_000_000, sent
    assert other.get("trickled") is None
    other.close()


def test_proto_max_bulk_len_set_at_runtime(both: list[redis.Redis], node: Node,
                                           redis_port: int) -> None:
    """CONFIG SET applies to connections already open; the refusal is Redis' text
    and closes the connection, before the payload arrives."""
    conns = [RawConn(node.port), RawConn(redis_port)]
    try:
        for client in both:
            client.config_set("proto-max-bulk-len", "1mb")
        for conn in conns:
            conn.send(resp("SET", "k", b"x" * (1 << 20)))
            conn.expect(b"+OK\r\n")
            conn.send(b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$1048577\r\n")
            assert conn.closed_after() == b"-ERR Protocol error: invalid bulk length\r\n"
    finally:
        for conn in conns:
            conn.close()


@pytest.mark.parametrize("payload", [
    b"a" * (64 * 1024 + 100),  # an inline command without its newline
    b"*1\r\n$600000000\r\n",  # over the default proto-max-bulk-len
    b"*1\r\n$" + b"1" * 70000,  # a bulk length line that never ends
], ids=["inline", "bulk-len", "bulk-len-line"])
def test_protocol_limits_as_redis(node: Node, redis_port: int, payload: bytes) -> None:
    replies = []
    for port in (node.port, redis_port):
        with RawConn(port) as conn:
            conn.send(payload)
            replies.append(conn.closed_after())
    assert replies[0] == replies[1]


# -- client-output-buffer-limit ------------------------------------------------------


def _subscriber(port: int, channel: str) -> RawConn:
    """A subscriber named ``stuck``, with a small receive buffer, that never reads."""
    conn = RawConn(port)
    conn.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16384)
    conn.send(resp("CLIENT", "SETNAME", "stuck") + resp("SUBSCRIBE", channel))
    conn.replies(2)
    return conn


def test_subscriber_that_never_reads_is_dropped(both: list[redis.Redis],
                                                node: Node) -> None:
    ours = both[0]
    ours.config_set("client-output-buffer-limit", "pubsub 1mb 0 0")
    before = stat(ours, "client_output_buffer_limit_disconnections")
    message = b"m" * 10_000
    reader = node.client().pubsub(ignore_subscribe_messages=True)
    reader.subscribe("news")

    def next_message() -> bytes:
        got = wait_for(lambda: reader.get_message(timeout=1), 5, "a message")
        return got["data"]  # type: ignore[index]

    with _subscriber(node.port, "news") as stuck:
        published = 0
        while True:
            receivers = ours.publish("news", message)
            assert next_message() == message  # a reading subscriber keeps up
            if receivers == 1:
                break
            published += len(message)
            assert published < 64 << 20, "never dropped"
        # dropped at the limit plus what the kernel's buffers took in
        assert published >= 1 << 20
        assert ours.publish("news", b"after") == 1
        assert next_message() == b"after"
        # gone from the node (the kernel still holds what it took in: not read here)
        assert not [c for c in ours.client_list() if c["name"] == "stuck"]
        stuck.close()
    reader.close()
    assert stat(ours, "client_output_buffer_limit_disconnections") == before + 1
    assert "scheduled to be closed ASAP for overcoming of output buffer limits" in node.log()


def test_messages_queued_behind_a_blocked_reply_count(both: list[redis.Redis],
                                                     node: Node) -> None:
    """A RESP3 subscriber blocked in BLPOP: its messages wait behind the BLPOP reply in
    the node, not in the transport, and count against the pubsub limit all the same."""
    ours = both[0]
    ours.config_set("client-output-buffer-limit", "pubsub 1mb 0 0")
    before = stat(ours, "client_output_buffer_limit_disconnections")
    with RawConn(node.port) as blocked:
        blocked.send(resp("HELLO", "3") + resp("CLIENT", "SETNAME", "stuck")
                     + resp("SUBSCRIBE", "queued") + resp("BLPOP", "nothing", "0"))
        blocked.replies(3)
        wait_for(lambda: int(ours.info("clients")["blocked_clients"]) == 1, 5, "BLPOP")
        published = 0
        while ours.publish("queued", b"q" * 100_000) == 1:
            published += 100_000
            assert published <= 1_100_000, "not dropped at the limit"
        assert published >= 1_000_000
    assert stat(ours, "client_output_buffer_limit_disconnections") == before + 1


def test_soft_output_limit_after_its_seconds(both: list[redis.Redis], node: Node) -> None:
    """Past the soft limit, with nothing more sent to it, the subscriber stays until
    soft-seconds have passed, then the server's sweep drops it."""
    ours = both[0]
    ours.config_set("client-output-buffer-limit", "pubsub 0 200kb 1")
    before = stat(ours, "client_output_buffer_limit_disconnections")

    def stuck_omem() -> int:
        return sum(int(c["omem"]) for c in ours.client_list() if c["name"] == "stuck")

    with _subscriber(node.port, "soft"):
        for _ in range(200):  # 20 MB at most: far more than the kernel's buffers take
            assert ours.publish("soft", b"s" * 100_000) == 1
            if stuck_omem() >= 200 * 1024:
                break
        assert stuck_omem() >= 200 * 1024
        assert ours.publish("soft", b"x") == 1  # over the soft limit: not dropped at once
        wait_for(lambda: stat(ours, "client_output_buffer_limit_disconnections") == before + 1,
                 5, "the soft limit's drop")
        assert ours.publish("soft", b"x") == 0


def test_normal_hard_limit_drops_a_pipeline_that_never_reads(both: list[redis.Redis],
                                                             node: Node) -> None:
    ours = both[0]
    value = b"v" * (256 * 1024)
    ours.set("big", value)
    ours.config_set("client-output-buffer-limit", "normal 1mb 0 0")
    before = stat(ours, "client_output_buffer_limit_disconnections")
    with RawConn(node.port) as flood:
        flood.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16384)
        flood.send(resp("GET", "big") * 200)  # 50 MB of replies
        wait_for(lambda: stat(ours, "client_output_buffer_limit_disconnections") == before + 1,
                 5, "the flood dropped")
    assert ours.get("big") == value


def test_slow_reader_under_the_limits_is_not_dropped(both: list[redis.Redis],
                                                     node: Node) -> None:
    """Back-pressure keeps a slow reader's pending output under the limits: it gets
    every reply, in order, whatever their total."""
    ours = both[0]
    value = b"w" * (256 * 1024)
    ours.set("big", value)
    ours.config_set("client-output-buffer-limit", "normal 8mb 4mb 1")
    count = 64  # 16 MiB of replies, four times the soft limit
    with RawConn(node.port) as slow:
        slow.send(resp("GET", "big") * count)
        reply = b"$262144\r\n" + value + b"\r\n"
        for _ in range(count):
            slow.expect(reply)
            time.sleep(0.02)  # pacing a slow reader (1.3 s in all, past soft-seconds)
        slow.send(b"PING\r\n")
        slow.expect(b"+PONG\r\n")


def _rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


def test_pipelined_flood_that_never_reads(node: Node) -> None:
    """A client pipelining PINGs without pause and never reading is stopped being read
    from once its output backs up, and shares the loop meanwhile: another client's
    PINGs are answered all along, and the node's memory stays flat."""
    payload = memoryview(b"PING\r\n" * ((8 << 20) // 6))  # 8 MiB of inline requests
    before = _rss_kib(node.proc.pid)
    flood = RawConn(node.port)
    flood.sock.settimeout(0.1)
    stop = threading.Event()

    def send() -> None:
        sent = 0
        while sent < len(payload) and not stop.is_set():
            try:
                sent += flood.sock.send(payload[sent:])
            except TimeoutError:
                continue  # not read from any more: try until told to stop
            except OSError:
                return

    sender = threading.Thread(target=send, daemon=True)
    sender.start()
    other = node.client(socket_timeout=5)
    worst = 0.0
    end = time.monotonic() + 2.0
    try:
        while time.monotonic() < end:
            started = time.monotonic()
            assert other.ping()
            worst = max(worst, time.monotonic() - started)
        peak = _rss_kib(node.proc.pid)
    finally:
        stop.set()
        sender.join(5)
        flood.close()
        other.close()
    assert worst < 1.5, f"another client waited {worst:.2f}s for a PING"
    assert peak - before < 100 * 1024, f"RSS grew from {before} to {peak} KiB"


# -- maxclients and the open-file limit, idle timeout --------------------------------


class FdLimitedNode(Node):
    """A node started under a low open-file limit (prlimit)."""

    def command(self) -> list[str]:
        return ["prlimit", "--nofile=100:100", "--", *super().command()]


def test_maxclients_fitted_to_the_open_file_limit(tmp_path) -> None:
    node = FdLimitedNode(free_port(), tmp_path / "n").start()
    allowed = 100 - 64  # the limit less the descriptors kept for the node's own use
    try:
        client = node.client()
        assert client.config_get("maxclients") == {"maxclients": str(allowed)}
        wait_for(lambda: client.info("clients")["connected_clients"] == 1, 5,
                 "the start-up probes gone")
        assert (f"You requested maxclients of 10000 requiring at least 10064 max file "
                f"descriptors. maxclients has been reduced to {allowed}") in node.log()
        assert outcome(client, "CONFIG", "SET", "maxclients", "1000") == (
            "error: CONFIG SET failed (possibly related to argument 'maxclients') - The "
            "operating system is not able to handle the specified number of clients, try "
            f"with {allowed}")
        conns = [RawConn(node.port) for _ in range(allowed - 1)]  # the client above is one
        try:
            for conn in conns:
                conn.send(b"PING\r\n")
                conn.expect(b"+PONG\r\n")
            with RawConn(node.port) as refused:
                assert refused.closed_after() == b"-ERR max number of clients reached\r\n"
            assert client.ping()
        finally:
            for conn in conns:
                conn.close()
        client.close()
    finally:
        assert node.stop() == 0


def test_idle_timeout_spares_blocked_and_subscribed(tmp_path) -> None:
    node = Node(free_port(), tmp_path / "n", ["--timeout", "1"]).start()
    try:
        with RawConn(node.port) as idle, RawConn(node.port) as blocked, \
                RawConn(node.port) as subscribed:
            idle.send(b"PING\r\n")
            idle.expect(b"+PONG\r\n")
            blocked.send(resp("BLPOP", "queue", "0"))
            subscribed.send(resp("SUBSCRIBE", "ch"))
            subscribed.replies(1)
            assert idle.closed_after(timeout=5) == b""
            pusher = node.client()
            pusher.rpush("queue", "job")
            assert blocked.replies(1) == [[b"queue", b"job"]]
            assert pusher.publish("ch", "hello") == 1
            assert subscribed.replies(1) == [[b"message", b"ch", b"hello"]]
            pusher.close()
    finally:
        assert node.stop() == 0


def test_blocked_client_that_leaves_is_unblocked(node: Node) -> None:
    """Clients that BLPOP forever and hang up leave nothing waiting behind them."""
    client = node.client()
    client.delete("left")
    for _ in range(20):
        with RawConn(node.port) as gone:
            gone.send(resp("BLPOP", "left", "0"))
            wait_for(lambda: int(client.info("clients")["blocked_clients"]) == 1, 5, "BLPOP")
    wait_for(lambda: int(client.info("clients")["blocked_clients"]) == 0, 5, "none blocked")
    client.rpush("left", "kept")
    assert client.lrange("left", 0, -1) == [b"kept"]  # popped for no one
    client.close()


def test_info_counts_limit_disconnections(node: Node) -> None:
    info = node.client().info("stats")
    assert "client_query_buffer_limit_disconnections" in info
    assert "client_output_buffer_limit_disconnections" in info
