"""The client port on the wire: raw sockets, exact bytes, Redis 7's texts."""

from __future__ import annotations

import threading
import time

import pytest
from rawconn import RawConn, resp

from testsupport.ports import free_port
from testsupport.processes import Node
from testsupport.waiting import wait_for


@pytest.fixture
def conn(node: Node, r) -> RawConn:  # r: an empty keyspace
    with RawConn(node.port) as raw:
        yield raw


# -- inline commands -------------------------------------------------------------


def test_inline_ping(conn: RawConn) -> None:
    conn.send(b"PING\r\n")
    conn.expect(b"+PONG\r\n")
    conn.send(b"PING\n")  # a bare LF ends an inline command too
    conn.expect(b"+PONG\r\n")
    conn.send(b"\r\n\r\nping hello\r\n")  # empty lines are skipped
    conn.expect(b"$5\r\nhello\r\n")


def test_inline_quoted_arguments(conn: RawConn) -> None:
    conn.send(b"SET \"a b\" 'c d'\r\nGET \"a b\"\r\nECHO \"x\\ny\\x41\"\r\nECHO 'it\\'s'\r\n")
    conn.expect(b"+OK\r\n$3\r\nc d\r\n$4\r\nx\nyA\r\n$4\r\nit's\r\n")


def test_inline_split_across_writes(conn: RawConn) -> None:
    conn.send(b"EC")
    conn.send(b"HO abc")
    conn.send(b"\r\n")
    conn.expect(b"$3\r\nabc\r\n")


def test_inline_unbalanced_quotes_closes(conn: RawConn) -> None:
    conn.send(b'GET "abc\r\n')
    assert conn.closed_after() == b"-ERR Protocol error: unbalanced quotes in request\r\n"


def test_inline_too_big_closes(conn: RawConn) -> None:
    conn.send(b"a" * (64 * 1024 + 100))  # no newline: more than PROTO_INLINE_MAX_SIZE
    assert conn.closed_after() == b"-ERR Protocol error: too big inline request\r\n"


def test_inline_and_resp_mixed(conn: RawConn) -> None:
    conn.send(b"PING\r\n" + resp("ECHO", "x") + b"PING\r\n")
    conn.expect(b"+PONG\r\n$1\r\nx\r\n+PONG\r\n")


# -- pipelining ------------------------------------------------------------------


def test_pipeline_100_commands_in_one_write(conn: RawConn) -> None:
    batch = b"".join(resp("SET", f"k{i}", f"v{i}") for i in range(50))
    batch += b"".join(resp("GET", f"k{i}") for i in range(50))
    conn.send(batch)
    replies = conn.replies(100)
    assert replies[:50] == [b"OK"] * 50
    assert replies[50:] == [f"v{i}".encode() for i in range(50)]


def test_pipeline_replies_in_order_across_kinds(conn: RawConn) -> None:
    batch = []
    for i in range(1, 101):
        batch.append(resp("INCR", "counter") if i % 2 else resp("GET", "counter"))
    conn.send(b"".join(batch))
    replies = conn.replies(100)
    expected = []
    value = 0
    for i in range(1, 101):
        if i % 2:
            value += 1
            expected.append(value)
        else:
            expected.append(str(value).encode())
    assert replies == expected


def test_pipelined_set_then_get_reads_its_own_write(conn: RawConn) -> None:
    for round_ in range(20):
        conn.send(resp("SET", "k", f"v{round_}") + resp("GET", "k") + resp("DEL", "k")
                  + resp("GET", "k"))
        assert conn.replies(4) == [b"OK", f"v{round_}".encode(), 1, None]


def test_pipeline_split_at_every_byte(conn: RawConn) -> None:
    data = resp("SET", "split", "value") + resp("GET", "split")
    for i in range(len(data)):
        conn.send(data[i : i + 1])
    conn.expect(b"+OK\r\n$5\r\nvalue\r\n")


def test_null_and_empty_requests_are_ignored(conn: RawConn) -> None:
    conn.send(b"*-1\r\n*0\r\n" + resp("PING"))
    conn.expect(b"+PONG\r\n")


# -- RESP3 -----------------------------------------------------------------------


def test_resp3_after_hello_3(conn: RawConn) -> None:
    conn.send(resp("HELLO", "3"))
    assert conn.read_line() == b"%7\r\n"  # a map of 7 pairs
    conn.buffer = b"%7\r\n" + conn.buffer
    fields = conn.replies(1)[0]
    assert fields[b"server"] == b"redis"
    assert fields[b"proto"] == 3
    assert fields[b"version"].startswith(b"7.")
    assert fields[b"modules"] == []
    conn.send(resp("GET", "missing"))
    conn.expect(b"_\r\n")
    conn.send(resp("SET", "f", "1.5") + resp("INCRBYFLOAT", "f", "1"))
    conn.expect(b"+OK\r\n$3\r\n2.5\r\n")  # a bulk string in RESP3 too, as Redis 7 sends it
    conn.send(resp("MGET", "f", "missing"))
    conn.expect(b"*2\r\n$3\r\n2.5\r\n_\r\n")
    conn.send(resp("CONFIG", "GET", "appendonly"))
    conn.expect(b"%1\r\n$10\r\nappendonly\r\n$2\r\nno\r\n")
    conn.send(resp("HELLO", "2"))
    assert conn.replies(1)[0][5] == 2  # a flat array now: [..., b"proto", 2, ...]
    conn.send(resp("GET", "missing"))
    conn.expect(b"$-1\r\n")  # back to RESP2 nulls


def test_hello_bad_version(conn: RawConn) -> None:
    conn.send(resp("HELLO", "4") + resp("HELLO", "x") + resp("PING"))
    conn.expect(b"-NOPROTO unsupported protocol version\r\n"
                b"-ERR Protocol version is not an integer or out of range\r\n+PONG\r\n")


# -- protocol errors: Redis' text, then the connection is closed ----------------------


@pytest.mark.parametrize(
    ("payload", "error"),
    [
        (b"*3000000000\r\n", b"invalid multibulk length"),
        (b"*1\r\n$2000000000\r\n", b"invalid bulk length"),
        (b"*2\r\n$3\r\nGET\r\n$2000000000\r\n", b"invalid bulk length"),
        (b"*abc\r\n", b"invalid multibulk length"),
        (b"*1\r\n+foo\r\n", b"expected '$', got '+'"),
        (b"*2\r\n$3\r\nGET\r\n:1\r\n", b"expected '$', got ':'"),
        (b"*1\r\n$-1\r\n", b"invalid bulk length"),
        (b"*1\r\n$abc\r\n", b"invalid bulk length"),
        # nested aggregates: hiredis would allocate the array before we saw it
        (b"*1\r\n*3000000000\r\n", b"expected '$', got '*'"),
        (b"*2\r\n$3\r\nGET\r\n*2000000000\r\n", b"expected '$', got '*'"),
        (b"*1\r\n%2000000000\r\n", b"expected '$', got '%'"),
        (b"*1\r\n~2000000000\r\n", b"expected '$', got '~'"),
        (b"*2\r\n*1\r\n$1\r\na\r\n$1\r\nb\r\n", b"expected '$', got '*'"),
    ],
)
def test_protocol_error_closes(conn: RawConn, payload: bytes, error: bytes) -> None:
    conn.send(payload)
    assert conn.closed_after(timeout=3) == b"-ERR Protocol error: " + error + b"\r\n"


def test_protocol_error_after_good_commands(conn: RawConn) -> None:
    conn.send(resp("PING") + resp("SET", "before", "1") + b"*1\r\n+foo\r\n" + resp("PING"))
    assert conn.closed_after() == b"+PONG\r\n+OK\r\n-ERR Protocol error: expected '$', got '+'\r\n"


@pytest.mark.parametrize(
    ("parts", "error"),
    [
        ((b"*30000", b"00000\r\n"), b"invalid multibulk length"),
        ((b"*2\r\n$3\r\nGET\r\n*20", b"00000000\r\n"), b"expected '$', got '*'"),
        ((b"*2\r\n$3\r\nGET\r", b"\n+foo\r\n"), b"expected '$', got '+'"),
        ((b"*1\r\n$20000", b"00000\r\n"), b"invalid bulk length"),
    ],
)
def test_bad_header_split_across_reads(conn: RawConn, parts: tuple[bytes, ...],
                                       error: bytes) -> None:
    for part in parts:
        conn.send(part)
        conn.sock.getpeername()  # still connected between the parts
    assert conn.closed_after(timeout=3) == b"-ERR Protocol error: " + error + b"\r\n"


def test_values_that_look_like_headers(conn: RawConn) -> None:
    value = b"\n*12345678\r\n%99999999\r\n$2000000000\r\n"
    conn.send(resp("SET", "tricky", value) + resp("GET", "tricky"))
    conn.expect(b"+OK\r\n$%d\r\n%s\r\n" % (len(value), value))


def test_server_healthy_after_protocol_errors(node: Node) -> None:
    for payload in (b"*3000000000\r\n", b"*1\r\n$2000000000\r\n", b"*1\r\n*3000000000\r\n"):
        with RawConn(node.port) as raw:
            raw.send(payload)
            raw.closed_after(timeout=3)
    client = node.client(socket_timeout=2)
    started = time.monotonic()
    assert client.ping()
    assert time.monotonic() - started < 1  # no stall freeing a huge array
    assert client.info("stats")["total_protocol_errors"] >= 3


# -- values and errors -------------------------------------------------------------


def test_binary_safe_keys_and_values(conn: RawConn) -> None:
    key = b"k\x00\r\n*1\r\n"
    value = b"\r\n\x00$3\r\nv\xff\r\n"
    conn.send(resp("SET", key, value) + resp("GET", key) + resp("EXISTS", key, b"k"))
    conn.expect(b"+OK\r\n" + b"$%d\r\n" % len(value) + value + b"\r\n:1\r\n")


def test_one_mib_value(conn: RawConn) -> None:
    value = bytes(range(256)) * 4096
    conn.send(resp("SET", "big", value))
    conn.expect(b"+OK\r\n")
    conn.send(resp("GET", "big") + resp("STRLEN", "big"))
    conn.expect(b"$1048576\r\n" + value + b"\r\n:1048576\r\n")


def test_unknown_command_text(conn: RawConn) -> None:
    conn.send(resp("FOO", "bar", "baz") + resp("NOPE"))
    conn.expect(b"-ERR unknown command 'FOO', with args beginning with: 'bar' 'baz' \r\n"
                b"-ERR unknown command 'NOPE', with args beginning with: \r\n")


def test_wrong_arity_text(conn: RawConn) -> None:
    conn.send(resp("GET") + resp("GET", "a", "b") + resp("SET", "a") + b"get\r\n")
    conn.expect(b"-ERR wrong number of arguments for 'get' command\r\n" * 2
                + b"-ERR wrong number of arguments for 'set' command\r\n"
                + b"-ERR wrong number of arguments for 'get' command\r\n")


def test_quit_replies_ok_then_closes(conn: RawConn) -> None:
    conn.send(b"PING\r\nQUIT\r\nPING\r\n")
    assert conn.closed_after() == b"+PONG\r\n+OK\r\n"


# -- limits: maxclients, idle timeout, back-pressure -----------------------------


def _pings(port: int) -> bool:
    """A new connection that gets served (not refused for maxclients)."""
    with RawConn(port) as raw:
        raw.send(b"PING\r\n")
        return raw.read_line() == b"+PONG\r\n"


def test_maxclients(tmp_path) -> None:
    limited = Node(free_port(), tmp_path / "n", ["--maxclients", "3"]).start()
    try:
        def three_served() -> list[RawConn] | None:
            conns = [RawConn(limited.port) for _ in range(3)]
            for raw in conns:
                raw.send(b"PING\r\n")
            if all(raw.read_line() == b"+PONG\r\n" for raw in conns):
                return conns
            for raw in conns:  # an earlier connection's slot is not free yet
                raw.close()
            return None

        a, b, c = wait_for(three_served, 5, "three clients served")
        with a, b, c:
            with RawConn(limited.port) as d:
                assert d.closed_after() == b"-ERR max number of clients reached\r\n"
            b.send(b"INFO stats\r\n")
            assert b"rejected_connections:1\r\n" in b.replies(1)[0]
            a.send(b"QUIT\r\n")
            a.closed_after()
            wait_for(lambda: _pings(limited.port), 5, "a free slot after QUIT")
    finally:
        assert limited.stop() == 0


@pytest.mark.parametrize("split", [False, True])
def test_proto_max_bulk_len(tmp_path, split: bool) -> None:
    limited = Node(free_port(), tmp_path / "n", ["--set", "proto-max-bulk-len=1000"]).start()
    try:
        with RawConn(limited.port) as raw:
            raw.send(resp("SET", "k", b"x" * 1000))
            raw.expect(b"+OK\r\n")
            data = resp("SET", "k", b"y" * 1001)
            # whole, or the header alone: refused before the payload arrives
            raw.send(data[:27] if split else data)
            assert raw.closed_after() == b"-ERR Protocol error: invalid bulk length\r\n"
        assert limited.client().get("k") == b"x" * 1000
    finally:
        assert limited.stop() == 0


def test_idle_timeout_closes_clients(tmp_path) -> None:
    node = Node(free_port(), tmp_path / "n", ["--timeout", "1"]).start()
    try:
        with RawConn(node.port) as idle, RawConn(node.port) as busy:
            idle.send(b"PING\r\n")
            idle.expect(b"+PONG\r\n")

            def busy_alive_idle_closed() -> bool:
                busy.send(b"PING\r\n")
                assert busy.read_line() == b"+PONG\r\n"
                idle.sock.settimeout(0.05)
                try:
                    return idle.sock.recv(1) == b""
                except TimeoutError:
                    return False

            wait_for(busy_alive_idle_closed, 8, "idle client closed", interval=0.2)
    finally:
        assert node.stop() == 0


def _rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS")


def test_back_pressure_bounds_memory(node: Node, r) -> None:
    """A client that floods GETs without reading must not grow the server's memory."""
    value = b"x" * (256 * 1024)
    count = 2000  # 512 MB of replies if the server produced them all at once
    r.set("big", value)
    pid = node.proc.pid
    before = _rss_kib(pid)
    with RawConn(node.port) as flood:
        flood.send(resp("GET", "big") * count)
        other = node.client(socket_timeout=2)
        peak = before
        end = time.monotonic() + 1.5
        while time.monotonic() < end:  # watch a while: others are served, memory stays flat
            assert other.ping()
            assert other.get("big") == value
            peak = max(peak, _rss_kib(pid))
        assert peak - before < 150 * 1024, f"RSS grew from {before} to {peak} KiB"
        # once the client reads, every reply comes, in order
        reply = b"$262144\r\n" + value + b"\r\n"
        for _ in range(count):
            flood.expect(reply)
        flood.send(b"PING\r\n")
        flood.expect(b"+PONG\r\n")
        other.close()


def test_write_flood_without_reading(node: Node, r) -> None:
    """A client pipelining writes faster than the log commits and not reading its
    replies is throttled (reading paused); others are served; no reply is lost."""
    value = b"v" * 4096
    count = 5000  # 20 MB of writes
    with RawConn(node.port) as flood:
        sender = threading.Thread(
            target=flood.send,
            args=(b"".join(resp("SET", f"flood:{i % 100}", value) + resp("INCR", "flood:n")
                           for i in range(count)),),
            daemon=True,
        )
        sender.start()
        other = node.client(socket_timeout=2)
        end = time.monotonic() + 1.0
        while time.monotonic() < end:
            started = time.monotonic()
            assert other.ping()
            assert time.monotonic() - started < 1.0
        replies = flood.replies(2 * count)
        sender.join(10)
        assert replies[0::2] == [b"OK"] * count
        assert replies[1::2] == list(range(1, count + 1))
        assert other.get("flood:n") == str(count).encode()
        other.close()
