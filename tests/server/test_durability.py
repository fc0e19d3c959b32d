"""Crash safety and process lifecycle: kill -9, torn log tails, SIGTERM, the dir lock, logs."""

from __future__ import annotations

import json
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from testsupport.ports import free_port
from testsupport.processes import ROOT, Node
from testsupport.waiting import wait_for


def no_retry_client(node: Node, **kwargs) -> redis.Redis:
    """A client that never resends a command: an error means 'maybe applied'."""
    return node.client(retry=Retry(NoBackoff(), 0), **kwargs)


def wait_writable(node: Node, timeout: float = 15.0) -> None:
    client = no_retry_client(node, socket_timeout=2)

    def writable() -> bool:
        return client.set("__probe__", "1") and client.delete("__probe__") == 1

    try:
        wait_for(writable, timeout, f"node {node.port} to accept writes")
    finally:
        client.close()


def restart(node: Node) -> Node:
    node.start()  # same port: the node id (n<port>) is recorded in the data dir
    wait_writable(node)
    return node


@pytest.fixture
def fresh(tmp_path: Path):
    started = Node(free_port(), tmp_path / "n1").start()
    wait_writable(started)
    yield started
    started.kill()


@pytest.fixture
def one_group(tmp_path: Path):
    """One Raft group: the last record of its log is the last write."""
    started = Node(free_port(), tmp_path / "n1", ["--shards", "1"]).start()
    wait_writable(started)
    yield started
    started.kill()


# -- kill -9 in the middle of acknowledged writes --------------------------------------


class Writer(threading.Thread):
    """INCRs one counter and SETs unique keys until the connection fails."""

    def __init__(self, node: Node, number: int) -> None:
        super().__init__(daemon=True)
        self.client = no_retry_client(node, socket_timeout=10)
        self.number = number
        self.acked_incrs = 0
        self.inflight_incrs = 0
        self.acked_keys: list[str] = []
        self.error: Exception | None = None

    def run(self) -> None:
        i = 0
        try:
            while True:
                i += 1
                self.inflight_incrs = 1
                self.client.incr(f"counter:{self.number}")
                self.acked_incrs += 1
                self.inflight_incrs = 0
                key = f"key:{self.number}:{i}"
                assert self.client.set(key, f"value-{i}") is True
                self.acked_keys.append(key)
        except (redis.ConnectionError, redis.TimeoutError, ConnectionError) as error:
            self.error = error
        except redis.ResponseError as error:  # "shutting down": not applied, and we stop
            assert "shutting down" in str(error) or "CLUSTERDOWN" in str(error), error
            self.error = error
        finally:
            self.client.close()


@pytest.mark.slow
def test_kill_9_keeps_every_acknowledged_write(fresh: Node) -> None:
    writers = [Writer(fresh, n) for n in range(4)]
    for writer in writers:
        writer.start()
    wait_for(lambda: sum(len(w.acked_keys) for w in writers) >= 600, 60,
             "acknowledged writes before the crash")
    fresh.kill()  # SIGKILL, mid-stream
    for writer in writers:
        writer.join(15)
        assert not writer.is_alive()
        assert writer.error is not None  # each one was cut off by the crash
    restart(fresh)
    client = fresh.client()
    for writer in writers:
        keys = writer.acked_keys
        values = client.mget(keys)
        missing = [k for k, v in zip(keys, values, strict=True) if v is None]
        assert not missing, f"acknowledged SETs lost: {missing[:5]} of {len(missing)}"
        assert values == [f"value-{k.rsplit(':', 1)[1]}".encode() for k in keys]
        counter = int(client.get(f"counter:{writer.number}") or 0)
        assert writer.acked_incrs <= counter <= writer.acked_incrs + writer.inflight_incrs
    assert fresh.stop() == 0


@pytest.mark.slow
def test_sigterm_during_writes_exits_0_and_keeps_acknowledged(fresh: Node) -> None:
    writers = [Writer(fresh, n) for n in range(4)]
    for writer in writers:
        writer.start()
    wait_for(lambda: sum(len(w.acked_keys) for w in writers) >= 300, 60, "writes")
    started = time.monotonic()
    assert fresh.stop(signal.SIGTERM) == 0, fresh.log()
    # busy clients do not hold the shutdown up: they are read no more
    assert time.monotonic() - started < 3, "shutdown waited out its drain deadline"
    for writer in writers:
        writer.join(15)
        assert not writer.is_alive()
    restart(fresh)
    client = fresh.client()
    for writer in writers:
        values = client.mget(writer.acked_keys)
        assert None not in values, "an acknowledged SET was lost in a clean shutdown"
        counter = int(client.get(f"counter:{writer.number}") or 0)
        assert writer.acked_incrs <= counter <= writer.acked_incrs + writer.inflight_incrs
    assert fresh.stop() == 0


# -- a damaged log tail ------------------------------------------------------------------


def last_segment(node: Node) -> Path:
    segments = sorted((node.dir / "raft" / "wal").glob("*.wal"))
    assert segments, "no WAL segment"
    return segments[-1]


def truncate_tail(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[:-7])


def flip_tail_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[-3] ^= 0xFF
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("replay_all", [False, True], ids=["store-kept", "store-dropped"])
@pytest.mark.parametrize("damage", [truncate_tail, flip_tail_byte])
def test_damaged_log_tail(one_group: Node, damage, replay_all: bool) -> None:
    fresh = one_group
    client = fresh.client()
    for i in range(200):
        client.set(f"before:{i}", i)
    client.close()
    assert fresh.stop(signal.SIGKILL) != 0  # no clean shutdown: the log is all there is
    damage(last_segment(fresh))
    if replay_all:  # without the state machine's file, every key must come from the log
        for path in (fresh.dir / "data").glob("g0.sqlite*"):
            path.unlink()
    restart(fresh)
    assert "torn tail" in fresh.log()  # the damage was seen and cut off
    client = fresh.client()
    # every record before the damage survives; the damaged last one may be gone
    values = client.mget([f"before:{i}" for i in range(200)])
    assert values[:199] == [str(i).encode() for i in range(199)]
    # the node keeps working, and what it acknowledges now survives another restart
    for i in range(50):
        assert client.set(f"after:{i}", i) is True
    assert client.incr("after:count") == 1
    client.close()
    assert fresh.stop() == 0
    restart(fresh)
    client = fresh.client()
    assert client.mget([f"after:{i}" for i in range(50)]) == [str(i).encode() for i in range(50)]
    assert client.get("after:count") == b"1"
    assert client.mget([f"before:{i}" for i in range(199)]) == values[:199]
    client.close()
    assert fresh.stop() == 0


# -- clean shutdown, the directory lock, logs ---------------------------------------------


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_signal_exits_0_and_restart_has_everything(fresh: Node, sig: int) -> None:
    client = fresh.client()
    pipe = client.pipeline(transaction=False)
    for i in range(500):
        pipe.set(f"k{i}", i)
        pipe.incr("count")
    pipe.execute()
    client.close()
    assert fresh.stop(sig) == 0, fresh.log()
    assert "shutdown complete" in fresh.log()
    restart(fresh)
    client = fresh.client()
    assert client.dbsize() == 501
    assert client.get("count") == b"500"
    assert client.get("k499") == b"499"
    client.close()
    assert fresh.stop() == 0


def test_second_process_on_same_dir_is_refused(fresh: Node) -> None:
    second = subprocess.run(
        [sys.executable, "-m", "respkv.cli", "server", "--port", str(free_port()),
         "--dir", str(fresh.dir)],
        capture_output=True, timeout=30, cwd=ROOT, check=False,
    )
    output = (second.stdout + second.stderr).decode()
    assert second.returncode != 0
    assert "in use by another respkv process" in output, output
    assert fresh.client().ping()  # the first one is untouched
    assert fresh.stop() == 0


def test_json_logs(tmp_path: Path) -> None:
    node = Node(free_port(), tmp_path / "n1", ["--log-format", "json", "--node-id", "jn1"]).start()
    wait_writable(node)
    assert node.stop() == 0
    lines = [line for line in node.log().splitlines() if line.strip()]
    assert len(lines) >= 2
    records = [json.loads(line) for line in lines]  # every line is one JSON object
    assert all(record["node"] == "jn1" for record in records)
    assert all({"ts", "level", "msg"} <= set(record) for record in records)
    assert any(record["msg"] == "shutdown complete" for record in records)


def test_dir_with_a_per_group_log_of_an_older_version_is_refused(fresh: Node) -> None:
    """Each group once had its own WAL: starting without it would lose data."""
    client = fresh.client()
    assert client.set("kept", "by the old log") is True
    client.close()
    assert fresh.stop() == 0
    shared = fresh.dir / "raft" / "wal"
    old = fresh.dir / "raft" / "g0" / "wal"
    shared.rename(old)  # what an older respkv left
    fresh.start(wait=False)
    assert fresh.proc.wait(30) == 1
    log = fresh.log()
    assert "per-group Raft log" in log and str(old) in log, log


def test_dir_with_a_store_of_python_serialized_values_is_refused(fresh: Node) -> None:
    """An older respkv stored values in Python's own serialization, which must never be
    read back: such a dir is refused, with the way out, and nothing in it is read."""
    client = fresh.client()
    assert client.set("kept", "in the old store") is True
    client.close()
    assert fresh.stop() == 0
    store = fresh.dir / "data" / "g0.sqlite"
    conn = sqlite3.connect(store)
    conn.execute("DELETE FROM kv WHERE key = '@format'")  # as the older layout had none
    conn.commit()
    conn.close()
    fresh.start(wait=False)
    assert fresh.proc.wait(30) == 1
    log = fresh.log()
    assert "older respkv" in log and "let it join" in log, log
    assert "Traceback" not in log, log
