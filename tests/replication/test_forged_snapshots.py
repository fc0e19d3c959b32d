"""A peer that holds the cluster's secret but lies: bad snapshots and false addresses.

The test plays a node of the cluster with the secret from a member's dir and the
transport's own handshake, against a real follower: five kinds of bad snapshot are
each refused and change nothing, the follower still catches up from the real leader,
by the log and then by a real snapshot; a HELLO claiming other addresses changes
neither the address book nor what clients are told."""

from __future__ import annotations

import asyncio
import hashlib
import json
import signal
import sqlite3
import struct
from collections.abc import Callable
from pathlib import Path

import redis
from cluster_support import assert_all_present

from respkv.raft.codec import encode_message
from respkv.raft.messages import ConfState, Message, MessageType, SnapshotMeta
from respkv.replication import snapstream
from respkv.replication.keyring import load_keyring
from respkv.replication.transport import (
    SNAP_CHUNK,
    SNAP_END,
    SNAP_MANIFEST,
    SNAP_OK,
    SNAP_REFUSED,
    Transport,
    frame,
)
from respkv.storage.store import TABLE, encode_key
from testsupport.processes import SNAPSHOT_ARGS, Cluster, Node, command, raft_info
from testsupport.waiting import wait_for

CHUNK = 8192  # our own, smaller than the nodes': several chunks for a small snapshot
FALSE = {"raft": "127.0.0.1:1", "client": "127.0.0.1:2"}


def as_peer(cluster: Cluster, node_id: str, advertise: dict[str, str] | None = None,
            ) -> Transport:
    """A Transport that is ``node_id`` of ``cluster`` for the handshake (never started)."""
    seed = cluster.nodes[0]
    keys = load_keyring(seed.dir)
    assert keys is not None
    return Transport(node_id, cluster.token.split(".")[1], keys, "127.0.0.1", 0,
                     lambda group: Path("/nonexistent"), advertise or {},
                     lambda peer, addresses: None)


async def send_frames(peer: Transport, target: Node, target_id: str,
                      frames: list[bytes]) -> tuple[int, bytes]:
    """Authenticate to ``target`` as ``peer``, send ``frames``: its answer frame
    (with no frames, only the handshake: (0, b""))."""
    reader, writer = await peer.dial(f"127.0.0.1:{target.raft_port}", target_id)
    try:
        if not frames:
            return 0, b""
        writer.write(b"".join(frames))
        await writer.drain()
        answer = await asyncio.wait_for(reader.read(), 10)
    finally:
        writer.close()
    if len(answer) < 5:
        return -1, answer
    length, kind = struct.unpack(">IB", answer[:5])
    return kind, answer[5 : 4 + length]


def snapshot_stream(data: bytes, sender: str, target: str, index: int, term: int,
                    conf: ConfState, crc_at: int | None = None, cut: bool = False,
                    manifest: dict | None = None) -> list[bytes]:
    """The frames of a snapshot of group g0 holding ``data``: ``crc_at`` spoils the
    chunk at that offset, ``cut`` drops the last chunk, ``manifest`` changes the
    manifest's fields."""
    group = "g0"
    frames = []
    for offset in range(0, len(data), CHUNK):
        payload = snapstream.chunk_payload(group, offset, data[offset : offset + CHUNK])
        if offset == crc_at:
            payload = payload[:-1] + bytes([payload[-1] ^ 0x55])
        frames.append(frame(SNAP_CHUNK, payload))
    if cut:
        frames.pop()
    fields: dict = {"group": group, "sender": sender, "index": index, "term": term,
                    "size": len(data), "sha256": hashlib.sha256(data).hexdigest(),
                    "members": {}}
    fields.update(manifest or {})
    message = Message(MessageType.SNAP, group=group, to=target, from_=sender, term=term,
                      snapshot=SnapshotMeta(index, term, conf))
    return [*frames, frame(SNAP_MANIFEST, snapstream.Manifest(**fields).to_bytes()),
            frame(SNAP_END, encode_message(message))]


def leftovers(node: Node) -> list[str]:
    return sorted(p.name for p in (node.dir / "raft" / "g0" / "snap").iterdir()
                  if p.name.startswith(("incoming-", "received-")))


def write(node: Node, keys: range, prefix: str) -> dict[str, str]:
    client = node.client()
    expected = {f"{prefix}:{i}": f"v{i}" for i in keys}
    pipe = client.pipeline(transaction=False)
    for key, value in expected.items():
        pipe.set(key, value)
    assert all(pipe.execute())
    client.close()
    return expected


def poisoned(snap: Path, tmp_path: Path, marker: Path) -> bytes:
    """A copy of a real snapshot file whose first user record holds a Python pickle
    that would run a shell command if it were loaded (what the store held before it
    had a codec of its own): well-formed SQLite, so only decoding can refuse it."""
    copy = tmp_path / "poisoned.sqlite"
    copy.write_bytes(snap.read_bytes())
    payload = b"cos\nsystem\n(S'touch " + str(marker).encode() + b"'\ntR."
    conn = sqlite3.connect(copy)
    try:
        conn.execute("PRAGMA journal_mode=DELETE")  # the change in the file itself
        (key,) = conn.execute(f'SELECT key FROM "{TABLE}" WHERE key = ?',
                              (encode_key(b"before:0"),)).fetchone()
        conn.execute(f'UPDATE "{TABLE}" SET value = ? WHERE key = ?', (payload, key))
        conn.commit()
    finally:
        conn.close()
    return copy.read_bytes()


def test_bad_snapshots_from_a_peer_with_the_secret_change_nothing(
        make_cluster: Callable[..., Cluster], tmp_path: Path) -> None:
    cluster = make_cluster(args=SNAPSHOT_ARGS)
    leader = cluster.leader()
    leader_id = cluster.id_of(leader)
    expected = write(leader, range(600), "before")
    wait_for(lambda: int(raft_info(leader)["raft_snapshot_index"]) > 0, 15, "a snapshot")
    cluster.wait_caught_up()
    snap = sorted((leader.dir / "raft" / "g0" / "snap").glob("snap-*.sqlite"))[-1]
    data = snap.read_bytes()  # a real snapshot: only the stream around it lies
    meta = json.loads((leader.dir / "raft" / "g0" / "snap" / "meta.json").read_text())
    index, term = meta["index"], meta["term"]
    conf = ConfState(tuple(meta["voters"]), tuple(meta["learners"]))
    target = cluster.followers()[0]
    target_id = cluster.id_of(target)
    assert len(data) > 3 * CHUNK

    marker = tmp_path / "pickle-ran"
    bad = {
        "a pickle inside": ({"data": poisoned(snap, tmp_path, marker)}, "value record"),
        "bad chunk CRC": ({"crc_at": CHUNK}, "bad CRC32"),
        "bad SHA-256": ({"manifest": {"sha256": hashlib.sha256(b"x").hexdigest()}},
                        "SHA-256"),
        "wrong group": ({"manifest": {"group": "g1"}}, "manifest of 'g1'"),
        "wrong index": ({"manifest": {"index": index + 7}}, f"announces {index}/{term}"),
        "truncated": ({"cut": True}, "bytes arrived"),
    }
    peer = as_peer(cluster, leader_id)
    for what, (lies, reason) in bad.items():
        frames = snapshot_stream(lies.get("data", data), leader_id, target_id, index, term,
                                 conf, **{k: v for k, v in lies.items() if k != "data"})
        kind, answer = asyncio.run(send_frames(peer, target, target_id, frames))
        if "data" in lies:  # a sound stream: its file is refused once decoded, unused
            assert kind == SNAP_OK, (what, kind, answer)
            wait_for(lambda r=reason: r in target.log(), 10, f"{what} refused")
        else:
            assert kind == SNAP_REFUSED and reason in answer.decode(), (what, kind, answer)
        assert not marker.exists(), what
        assert leftovers(target) == [], what
    info = raft_info(target)
    assert "installing snapshot" not in target.log()
    assert_all_present([target], expected)

    # the real leader still replicates to it, by the log...
    expected.update(write(leader, range(100), "after"))
    cluster.wait_caught_up()
    assert_all_present([target], expected)
    # ... and by a real snapshot, once its log is behind the leader's
    target.stop(signal.SIGTERM)
    expected.update(write(leader, range(2500), "while-down"))
    wait_for(lambda: int(raft_info(leader)["raft_snapshot_index"])
             > int(info["raft_commit_index"]) + 1500, 15, "a snapshot past the follower")
    target.start()
    cluster.wait_caught_up(timeout=30)
    assert_all_present([target], expected)
    log = target.log()
    assert "installing snapshot" in log
    assert 1 <= log.count("refused a snapshot") <= 3  # six refusals, rate-limited
    assert "Traceback" not in log


def cluster_nodes(node: Node) -> list[tuple[str, ...]]:
    """CLUSTER NODES as ``node`` sees it: each node's id, address and flags."""
    text = command(node.port, "CLUSTER", "NODES")
    text = text.decode() if isinstance(text, bytes) else str(text)
    return sorted(tuple(line.split()[:3]) for line in text.splitlines())


def moved_of(node: Node) -> str:
    """The error a write to ``node`` (a follower) gets: a MOVED to its leader."""
    try:
        reply = command(node.port, "SET", "k", "v")
    except redis.ResponseError as error:
        return str(error)
    raise AssertionError(f"a follower took a write: {reply!r}")


def test_a_hello_claiming_other_addresses_changes_nothing(
        make_cluster: Callable[..., Cluster]) -> None:
    cluster = make_cluster()
    leader = cluster.leader()
    leader_id = cluster.id_of(leader)
    target = cluster.followers()[0]
    target_id = cluster.id_of(target)
    book = (target.dir / "peers.json").read_bytes()
    view = cluster_nodes(target)
    moved = moved_of(target)
    assert moved.endswith(f"127.0.0.1:{leader.port}"), moved

    for claimed in (leader_id, "n9"):  # a member's id, and one no one knows
        peer = as_peer(cluster, claimed, FALSE)
        kind, answer = asyncio.run(send_frames(peer, target, target_id, []))
        assert (kind, answer) == (0, b"")  # accepted: dial() raises when refused
        assert (target.dir / "peers.json").read_bytes() == book
        assert cluster_nodes(target) == view
        assert moved_of(target) == moved

    # and the cluster still works through the real addresses
    assert leader.client().set("k", "v")
    cluster.wait_caught_up()
    assert raft_info(target)["raft_role"] == "follower"


def test_a_burst_of_garbage_connections_keeps_the_log_small(
        make_cluster: Callable[..., Cluster]) -> None:
    """Garbage before the handshake and, from a peer with the secret, after it, of
    every frame kind: each connection is closed, the node logs a handful of lines
    without a traceback and keeps serving."""
    cluster = make_cluster(size=1)
    node = cluster.nodes[0]
    node.client().set("k", "before")
    peer = as_peer(cluster, "n2")
    after = [frame(kind, b"\xff\x00garbage") for kind in range(1, 16)]
    after += [struct.pack(">IB", 1 << 30, 4), struct.pack(">IB", 0, 4)]

    async def burst() -> None:
        for data in after:
            reader, writer = await peer.dial(f"127.0.0.1:{node.raft_port}", "n1")
            writer.write(data)
            await asyncio.wait_for(reader.read(), 10)  # closed (after an answer, maybe)
            writer.close()
        for i in range(60):
            reader, writer = await asyncio.open_connection("127.0.0.1", node.raft_port)
            writer.write([struct.pack(">IB", 1 << 20, 1), b"GET / HTTP/1.0\r\n\r\n",
                          frame(1, b"\x00" * i), b"\x00" * 5][i % 4])
            await asyncio.wait_for(reader.read(), 10)
            writer.close()

    asyncio.run(burst())
    assert node.client().get("k") == b"before"
    assert node.client().set("k", "after")
    log = node.log()
    refusals = log.count("refused raft connection") + log.count("refused a snapshot")
    assert 1 <= refusals <= 4, refusals
    assert "Traceback" not in log and "malformed" not in log
