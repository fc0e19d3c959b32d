"""TLS on the client port (tls-port): redis-py, redis-cli and redis-benchmark over TLS,
client certificates as tls-auth-clients says, refusals that neither crash nor flood
the log, a node with port 0, the start-up errors, and replies the same as a
redis-server's over TLS."""

from __future__ import annotations

import contextlib
import shutil
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from rawconn import RawConn, resp

from respkv.config import Config, ConfigError
from respkv.server.tlsclient import moved_to_tls
from respkv.tlsconfig import TlsError, TlsFiles, protocol_range
from testsupport.ports import free_port
from testsupport.processes import ROOT, Node
from testsupport.tls import Certs
from testsupport.waiting import wait_for


def start_tls_node(directory: Path, certs: Certs, auth_clients: str = "yes",
                   extra: list[str] | None = None) -> Node:
    node = Node(free_port(), directory, args=[*certs.node_args(free_port(), auth_clients),
                                              *(extra or [])])
    node.tls_port = int(node.args[node.args.index("--tls-port") + 1])  # type: ignore[attr-defined]
    return node


def stop_clean(node: Node) -> None:
    code = node.stop()
    log = node.log()
    assert code == 0, log
    assert "Traceback" not in log, log


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory, certs: Certs) -> Iterator[Node]:
    """A node with its plain port and a TLS port that requires client certificates."""
    started = start_tls_node(tmp_path_factory.mktemp("tls") / "n1", certs).start()
    yield started
    stop_clean(started)


def tls_port(node: Node) -> int:
    return node.tls_port  # type: ignore[attr-defined]


def test_redis_py_over_tls(node: Node, certs: Certs) -> None:
    client = certs.client(tls_port(node), protocol=2)
    try:
        assert client.set("tls:k", "v") is True
        assert client.get("tls:k") == b"v"
        assert client.incr("tls:n") == 1
    finally:
        client.close()
    plain = node.client()
    try:
        assert plain.get("tls:k") == b"v"  # one keyspace, two ports
    finally:
        plain.close()


def test_resp3_over_tls(node: Node, certs: Certs) -> None:
    client = certs.client(tls_port(node), protocol=3)
    try:
        client.hset("tls:h", mapping={"a": "1", "b": "2"})
        assert client.hgetall("tls:h") == {b"a": b"1", b"b": b"2"}
        hello = client.execute_command("HELLO", "3")
        assert hello[b"proto"] == 3
    finally:
        client.close()


def test_redis_cli_over_tls(node: Node, certs: Certs) -> None:
    cli = ["redis-cli", "-p", str(tls_port(node)), *certs.cli_args()]
    done = subprocess.run([*cli, "SET", "tls:cli", "hello"], capture_output=True, text=True,
                          timeout=20)
    assert done.stdout.strip() == "OK", done.stderr
    done = subprocess.run([*cli, "GET", "tls:cli"], capture_output=True, text=True, timeout=20)
    assert done.stdout.strip() == "hello", done.stderr


def test_redis_benchmark_over_tls(node: Node, certs: Certs) -> None:
    done = subprocess.run(["redis-benchmark", "-p", str(tls_port(node)), *certs.cli_args(),
                           "-n", "500", "-c", "5", "-t", "set,get", "-q"],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.replace("\r", "\n")
    assert "SET: " in lines and "GET: " in lines, done.stdout + done.stderr
    assert "requests per second" in lines


def refused(client: redis.Redis) -> bool:
    """True when the server refuses the connection (a TLS error, or closed)."""
    try:
        client.ping()
    except (redis.ConnectionError, OSError):
        return True
    finally:
        client.close()
    return False


def test_client_without_certificate_is_refused(node: Node, certs: Certs) -> None:
    assert refused(certs.client(tls_port(node), with_cert=False, socket_timeout=5))


def test_client_certificate_from_another_ca_is_refused(node: Node, certs: Certs,
                                                       other_ca: Certs) -> None:
    client = redis.Redis(host="127.0.0.1", port=tls_port(node), socket_timeout=5, ssl=True,
                         ssl_ca_certs=str(certs.ca), ssl_certfile=str(other_ca.cert),
                         ssl_keyfile=str(other_ca.key))
    assert refused(client)


def test_client_not_trusting_the_server_ca_refuses_it(node: Node, certs: Certs,
                                                      other_ca: Certs) -> None:
    client = redis.Redis(host="127.0.0.1", port=tls_port(node), socket_timeout=5, ssl=True,
                         ssl_ca_certs=str(other_ca.ca), ssl_certfile=str(certs.cert),
                         ssl_keyfile=str(certs.key))
    with pytest.raises(redis.ConnectionError, match="certificate verify failed"):
        client.ping()
    client.close()


def test_plaintext_client_on_the_tls_port_is_refused(node: Node, certs: Certs) -> None:
    for _ in range(20):  # a flood of them: no crash, no line per connection
        with socket.create_connection(("127.0.0.1", tls_port(node)), timeout=5) as sock:
            sock.sendall(resp("PING"))
            with contextlib.suppress(ConnectionResetError):
                assert sock.recv(100) == b""  # closed, nothing answered in plain text
    silent = socket.create_connection(("127.0.0.1", tls_port(node)), timeout=5)
    silent.close()  # connected, said nothing, left
    client = certs.client(tls_port(node))
    try:
        assert client.ping() is True  # still serving, over TLS
    finally:
        client.close()
    assert "Traceback" not in node.log()


def raw(client: redis.Redis, *args: object) -> object:
    """A reply as the server sent it, without redis-py's reply callbacks."""
    pool = client.connection_pool
    conn = pool.get_connection()
    try:
        conn.send_command(*args)
        return conn.read_response()
    finally:
        pool.release(conn)


def shard_nodes(client: redis.Redis) -> list[dict[bytes, object]]:
    """Every node of every CLUSTER SHARDS entry (a RESP2 client's), as a dict."""
    found = []
    for shard in raw(client, "CLUSTER", "SHARDS"):
        for node in shard[3]:
            found.append(dict(zip(node[::2], node[1::2], strict=True)))
    return found


def test_cluster_replies_name_the_tls_port_to_tls_clients(node: Node, certs: Certs) -> None:
    client = certs.client(tls_port(node), protocol=2)
    plain = node.client(protocol=2)
    try:
        tls_slots = client.execute_command("CLUSTER", "SLOTS")
        plain_slots = plain.execute_command("CLUSTER", "SLOTS")
        assert {entry[2][1] for entry in tls_slots} == {tls_port(node)}
        assert {entry[2][1] for entry in plain_slots} == {node.port}
        tls_nodes = client.execute_command("CLUSTER", "NODES")
        plain_nodes = plain.execute_command("CLUSTER", "NODES")
        assert f"127.0.0.1:{tls_port(node)}@{node.raft_port}" in str(tls_nodes)
        assert f"127.0.0.1:{node.port}@{node.raft_port}" in str(plain_nodes)
        for fields in shard_nodes(plain) + shard_nodes(client):
            assert fields[b"port"] == node.port
            assert fields[b"tls-port"] == tls_port(node)
    finally:
        client.close()
        plain.close()


def test_config_get_shows_the_tls_directives(node: Node) -> None:
    client = node.client()
    try:
        found = client.config_get("tls-*")
        assert found["tls-port"] == str(tls_port(node))
        assert found["tls-auth-clients"] == "yes"
        assert found["tls-cluster"] == "no"
        with pytest.raises(redis.ResponseError, match="immutable"):
            client.config_set("tls-port", "0")
    finally:
        client.close()


# -- tls-auth-clients no / optional -------------------------------------------------


@pytest.fixture(scope="module", params=["no", "optional"])
def lenient_node(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory,
                 certs: Certs) -> Iterator[tuple[str, Node]]:
    started = start_tls_node(tmp_path_factory.mktemp(f"auth-{request.param}") / "n1", certs,
                             request.param).start()
    yield request.param, started
    stop_clean(started)


def test_no_client_certificate_needed_unless_yes(lenient_node: tuple[str, Node],
                                                 certs: Certs) -> None:
    _, started = lenient_node
    client = certs.client(tls_port(started), with_cert=False)
    try:
        assert client.set("k", "v") is True
        assert client.get("k") == b"v"
    finally:
        client.close()
    with_cert = certs.client(tls_port(started))
    try:
        assert with_cert.ping() is True
    finally:
        with_cert.close()


def test_optional_still_checks_a_certificate_given(lenient_node: tuple[str, Node],
                                                   certs: Certs, other_ca: Certs) -> None:
    mode, started = lenient_node
    client = redis.Redis(host="127.0.0.1", port=tls_port(started), socket_timeout=5, ssl=True,
                         ssl_ca_certs=str(certs.ca), ssl_certfile=str(other_ca.cert),
                         ssl_keyfile=str(other_ca.key))
    # "no" does not ask for one, so what the client has does not matter
    assert refused(client) is (mode == "optional")


# -- only a TLS port ------------------------------------------------------------------


def test_port_0_leaves_only_the_tls_port(tmp_path: Path, certs: Certs) -> None:
    node = start_tls_node(tmp_path / "n1", certs, extra=["--port", "0"])
    node.start(wait=False)
    try:
        client = certs.client(tls_port(node), socket_timeout=1, protocol=2)

        def ready() -> bool:
            assert node.proc is not None and node.proc.poll() is None, node.log()
            try:
                return client.ping()
            except (redis.ConnectionError, redis.TimeoutError):
                return False

        wait_for(ready, 15, "the TLS port to answer")
        assert client.set("k", "v") is True
        slots = client.execute_command("CLUSTER", "SLOTS")
        assert {entry[2][1] for entry in slots} == {tls_port(node)}
        for fields in shard_nodes(client):
            assert b"port" not in fields  # no plain port to show
            assert fields[b"tls-port"] == tls_port(node)
        client.close()
        with pytest.raises(OSError):
            socket.create_connection(("127.0.0.1", node.port), timeout=2).close()
    finally:
        stop_clean(node)


# -- start-up errors --------------------------------------------------------------------


def start_fails(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "respkv.cli", "server", "--port", str(free_port()),
               "--dir", str(tmp_path / "d"), *args]
    done = subprocess.run(command, capture_output=True, text=True, timeout=30, cwd=ROOT)
    assert done.returncode != 0, done.stdout + done.stderr
    assert "Traceback" not in done.stderr, done.stderr
    return done


@pytest.mark.parametrize("flag", [["--tls-port", "16999"], ["--tls-cluster"],
                                  ["--set", "tls-replication=yes"]])
def test_tls_without_certificate_refuses_to_start(tmp_path: Path, flag: list[str]) -> None:
    done = start_fails(tmp_path, *flag)
    assert "needs tls-cert-file and tls-key-file" in done.stderr


def test_tls_without_ca_refuses_to_start(tmp_path: Path, certs: Certs) -> None:
    done = start_fails(tmp_path, "--tls-port", "16999", "--tls-cert-file", str(certs.cert),
                       "--tls-key-file", str(certs.key))
    assert "tls-ca-cert-file or tls-ca-cert-dir must be specified" in done.stderr


def test_unreadable_certificate_refuses_to_start(tmp_path: Path, certs: Certs) -> None:
    done = start_fails(tmp_path, "--tls-port", str(free_port()), "--tls-cert-file",
                       str(tmp_path / "missing.crt"), "--tls-key-file", str(certs.key),
                       "--tls-ca-cert-file", str(certs.ca))
    assert "missing.crt" in done.stderr and "no such file" in done.stderr
    done = start_fails(tmp_path, "--tls-port", str(free_port()), "--tls-cert-file",
                       str(certs.key), "--tls-key-file", str(certs.cert),
                       "--tls-ca-cert-file", str(certs.ca))
    assert "cannot load tls-cert-file" in done.stderr


def test_bad_tls_values_refuse_to_start(tmp_path: Path, certs: Certs) -> None:
    done = start_fails(tmp_path, *certs.node_args(16999), "--set", "tls-auth-clients=maybe")
    assert "tls-auth-clients must be yes, no or optional" in done.stderr
    done = start_fails(tmp_path, *certs.node_args(16999), "--set", "tls-protocols=SSLv3")
    assert "tls-protocols" in done.stderr


# -- the same replies as redis-server over TLS -----------------------------------------


@pytest.fixture(scope="module")
def redis_tls(certs: Certs) -> Iterator[int]:
    server = shutil.which("redis-server")
    assert server is not None, "redis-server is installed by make install"
    port = free_port()
    proc = subprocess.Popen([server, "--port", "0", "--tls-port", str(port), "--bind",
                             "127.0.0.1", "--save", "", "--tls-cert-file", str(certs.cert),
                             "--tls-key-file", str(certs.key), "--tls-ca-cert-file",
                             str(certs.ca)], stdout=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                with tls_conn(port, certs) as conn:
                    conn.send(resp("PING"))
                    conn.replies(1)
                break
            except OSError:
                assert proc.poll() is None, "redis-server exited: built without TLS?"
                assert time.monotonic() < deadline, "redis-server did not start"
                time.sleep(0.05)  # pacing the connection attempts
        yield port
    finally:
        proc.terminate()
        proc.wait(10)


def tls_conn(port: int, certs: Certs) -> RawConn:
    conn = RawConn(port)
    context = ssl.create_default_context(cafile=str(certs.ca))
    context.load_cert_chain(str(certs.cert), str(certs.key))
    conn.sock = context.wrap_socket(conn.sock, server_hostname="127.0.0.1")
    return conn


SEQUENCE = [
    ("PING",), ("ECHO", "hi"), ("DEL", "d"), ("SET", "d", "v"), ("GET", "d"), ("GET",),
    ("INCR", "d"), ("LPUSH", "d", "x"), ("NOSUCHCOMMAND", "a"), ("MGET", "d", "nope"),
    ("HELLO", "4"), ("DEL", "d"),
]


def test_replies_over_tls_are_redis_own(node: Node, certs: Certs, redis_tls: int) -> None:
    def replies(port: int) -> list[bytes]:
        out = []
        with tls_conn(port, certs) as conn:
            for command in SEQUENCE:
                conn.send(resp(*command))
                out.append(conn.read_reply_bytes())
        return out

    assert replies(tls_port(node)) == replies(redis_tls)


# -- the directives and the MOVED rewrite, without a server -----------------------------


def test_config_defaults_and_addresses_with_tls() -> None:
    config = Config(port=0, tls_port=7400, tls_cert_file="c", tls_key_file="k",
                    tls_ca_cert_file="ca")
    assert (config.raft_port, config.node_id) == (17400, "n7400")  # from the TLS port
    assert config.client_address == config.tls_client_address == "127.0.0.1:7400"
    config = Config(port=7001, tls_port=7401, advertise="10.0.0.5:6001", tls_cert_file="c",
                    tls_key_file="k", tls_auth_clients="no")
    assert config.client_address == "10.0.0.5:6001"
    assert config.tls_client_address == "10.0.0.5:7401"  # the advertised host
    assert Config(port=7001).tls_client_address == ""
    assert (Config().tls_auth_clients, Config().tls_cluster) == ("yes", False)


@pytest.mark.parametrize(("values", "message"), [
    ({"port": 0}, "port 0 needs a tls-port"),
    ({"tls_port": 7401}, "tls-port needs tls-cert-file and tls-key-file"),
    ({"tls_cluster": True, "tls_cert_file": "c"}, "tls-cluster needs tls-cert-file"),
    ({"tls_port": 7401, "tls_cert_file": "c", "tls_key_file": "k"}, "tls-ca-cert-file"),
    ({"tls_auth_clients": "sometimes"}, "tls-auth-clients must be yes, no or optional"),
    ({"tls_protocols": "TLSv1.0"}, "tls-protocols: unsupported"),
])
def test_config_refuses_incomplete_tls(values: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        Config(**values)


def test_set_flags_apply_before_the_config_is_checked() -> None:
    config = Config.load(None, {"port": 0}, [("tls-port", "7400"), ("tls-cert-file", "c"),
                                             ("tls-key-file", "k"), ("tls-ca-cert-dir", "d"),
                                             ("tls-cluster", "yes")])
    assert (config.port, config.tls_port, config.tls_cluster) == (0, 7400, True)


def test_protocol_range() -> None:
    assert protocol_range("") == (ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.MAXIMUM_SUPPORTED)
    assert protocol_range("TLSv1.3") == (ssl.TLSVersion.TLSv1_3, ssl.TLSVersion.TLSv1_3)
    assert protocol_range("tlsv1.3 TLSv1.2") == (ssl.TLSVersion.TLSv1_2,
                                                 ssl.TLSVersion.TLSv1_3)


def test_contexts_verify_as_the_directives_say(certs: Certs) -> None:
    files = TlsFiles(str(certs.cert), str(certs.key), str(certs.ca))
    assert files.server_context("yes").verify_mode == ssl.CERT_REQUIRED
    assert files.server_context("optional").verify_mode == ssl.CERT_OPTIONAL
    assert files.server_context("no").verify_mode == ssl.CERT_NONE
    peer = files.peer_contexts()
    assert peer.server.verify_mode == peer.client.verify_mode == ssl.CERT_REQUIRED
    assert peer.client.check_hostname is False
    with pytest.raises(TlsError, match="tls-ciphers"):
        TlsFiles(str(certs.cert), str(certs.key), ciphers="NO-SUCH-CIPHER").server_context("no")


def test_moved_is_rewritten_to_the_tls_address() -> None:
    book = {"10.0.0.2:7002": "10.0.0.2:7402"}
    assert moved_to_tls(b"-MOVED 3999 10.0.0.2:7002\r\n", book.get) == \
        b"-MOVED 3999 10.0.0.2:7402\r\n"
    # a leader without a TLS port keeps its plain address
    assert moved_to_tls(b"-MOVED 1 10.0.0.3:7003\r\n", book.get) == b"-MOVED 1 10.0.0.3:7003\r\n"


@pytest.mark.parametrize(("tail", "error"), [
    (["TLS"], "syntax error"),
    (["TLS", "h:7403", "TLS", "h:7404"], "syntax error"),
    (["GROUP", "g0", "GROUP", "g0"], "syntax error"),
    (["TLS", "no-port"], "invalid address 'no-port'"),
    (["TLS", "h:7403", "GROUP", "g0"], "join refused"),  # parsed: then the proof fails
    (["GROUP", "g0", "TLS", "h:7403"], "join refused"),
])
def test_cluster_join_tls_option(node: Node, tail: list[str], error: str) -> None:
    client = node.client()
    try:
        with pytest.raises(redis.ResponseError, match=error):
            client.execute_command("CLUSTER", "JOIN", "n9", "h:17003", "h:7003", "00", *tail)
    finally:
        client.close()
