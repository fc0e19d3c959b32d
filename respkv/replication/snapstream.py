"""The snapshot stream's format, and the receiving side's checks.

A snapshot crosses the Raft port on a connection of its own as SNAP_CHUNK frames,
one SNAP_MANIFEST frame, then SNAP_END (the MsgSnap that announces it):

- a chunk is ``group length u16 | group | offset u64 | crc32 u32 | bytes``: the
  receiver checks the group (one it runs, the same on every chunk), that the offset
  is where the file stands, and the CRC32 of the bytes;
- the manifest (JSON) says the stream's format version, the group, the sender, the
  snapshot's index and term, the file's size and SHA-256, and the addresses of the
  snapshot's members;
- at SNAP_END the receiver checks the manifest against what arrived (size, SHA-256)
  and against the MsgSnap (sender, group, index, term) before the file goes anywhere.

A stream that fails any check is refused: the receiver deletes what it wrote and
answers SNAP_REFUSED; the sender reports the snapshot as failed and Raft sends again.
Files are written under random names in the group's snapshot dir: nothing a peer
sends becomes part of a path.
"""

from __future__ import annotations

import hashlib
import json
import secrets
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path

from respkv.raft.messages import Message, MessageType
from respkv.storage.files import ChunkWriter

FORMAT = 1
_GROUP = struct.Struct(">H")
_CHUNK = struct.Struct(">QI")  # offset in the file, CRC32 of the chunk's bytes
MAX_MANIFEST = 1 << 20  # bytes: member addresses, not data


class StreamRefused(Exception):
    """A snapshot stream that is not what it claims; the message is the reason."""


def chunk_payload(group: str, offset: int, data: bytes) -> bytes:
    name = group.encode()
    return _GROUP.pack(len(name)) + name + _CHUNK.pack(offset, zlib.crc32(data)) + data


def chunk_group(payload: memoryview) -> str:
    """The group a chunk names (raises StreamRefused when it names none)."""
    try:
        (size,) = _GROUP.unpack_from(payload)
        if 2 + size + _CHUNK.size > len(payload):
            raise StreamRefused("a chunk shorter than its header")
        return str(payload[2 : 2 + size], "utf-8")
    except (struct.error, UnicodeDecodeError):
        raise StreamRefused("a chunk without a group") from None


@dataclass(slots=True)
class Manifest:
    group: str
    sender: str
    index: int
    term: int
    size: int
    sha256: str
    members: dict[str, dict[str, str]]  # node id -> its addresses (see AddressBook)
    format: int = FORMAT

    def to_bytes(self) -> bytes:
        return json.dumps({"format": self.format, "group": self.group, "from": self.sender,
                           "index": self.index, "term": self.term, "size": self.size,
                           "sha256": self.sha256, "members": self.members}).encode()

    @classmethod
    def from_bytes(cls, data: bytes) -> Manifest:
        if len(data) > MAX_MANIFEST:
            raise StreamRefused("manifest too large")
        try:
            fields = json.loads(data)
            manifest = cls(str(fields["group"]), str(fields["from"]), int(fields["index"]),
                           int(fields["term"]), int(fields["size"]), str(fields["sha256"]),
                           fields["members"], int(fields["format"]))
        except (ValueError, KeyError, TypeError, AttributeError):
            raise StreamRefused("manifest unreadable") from None
        members = manifest.members
        if not isinstance(members, dict) or not all(
                isinstance(node, str) and isinstance(addresses, dict)
                and all(isinstance(v, str) for v in addresses.values())
                for node, addresses in members.items()):
            raise StreamRefused("manifest members unreadable")
        return manifest


class Receiver:
    """One snapshot arriving on one connection from an authenticated ``peer``."""

    def __init__(self, group: str, directory: Path, peer: str) -> None:
        self.group = group
        self.peer = peer
        self.directory = directory
        name = f"incoming-{secrets.token_hex(8)}"
        self.file = ChunkWriter(directory / f"{name}.tmp", directory / f"{name}.sqlite")
        self.sha256 = hashlib.sha256()
        self.manifest: Manifest | None = None

    def chunk(self, payload: memoryview) -> None:
        group = chunk_group(payload)
        if group != self.group:
            raise StreamRefused(f"a chunk of group {group[:40]!r} in a snapshot of "
                                f"{self.group!r}")
        if self.manifest is not None:
            raise StreamRefused("a chunk after the manifest")
        start = 2 + _GROUP.unpack_from(payload)[0]
        offset, crc = _CHUNK.unpack_from(payload, start)
        data = payload[start + _CHUNK.size :]
        if offset != self.file.bytes_written:
            raise StreamRefused(f"a chunk at offset {offset}, the file is at "
                                f"{self.file.bytes_written}")
        if zlib.crc32(data) != crc:
            raise StreamRefused(f"bad CRC32 in the chunk at offset {offset}")
        self.sha256.update(data)
        self.file.write(data)

    def on_manifest(self, payload: bytes) -> None:
        if self.manifest is not None:
            raise StreamRefused("a second manifest")
        self.manifest = Manifest.from_bytes(payload)

    def check_end(self, message: Message) -> Manifest:
        """The MsgSnap closing the stream: the manifest once everything matches."""
        manifest = self.manifest
        if manifest is None:
            raise StreamRefused("no manifest before the end")
        meta = message.snapshot
        if message.type is not MessageType.SNAP or meta is None:
            raise StreamRefused(f"the stream ends with a {message.type.name}, not a snapshot")
        if message.from_ != self.peer or manifest.sender != self.peer:
            raise StreamRefused(f"a snapshot claiming to be from "
                                f"{message.from_[:40]!r}/{manifest.sender[:40]!r}")
        if manifest.format != FORMAT:
            raise StreamRefused(f"snapshot stream format {manifest.format}, not {FORMAT}")
        if not manifest.group == message.group == self.group:
            raise StreamRefused(f"chunks of {self.group!r}, manifest of "
                                f"{manifest.group[:40]!r}, message of {message.group[:40]!r}")
        if (manifest.index, manifest.term) != (meta.index, meta.term):
            raise StreamRefused(f"manifest at {manifest.index}/{manifest.term}, message "
                                f"announces {meta.index}/{meta.term}")
        if manifest.size != self.file.bytes_written:
            raise StreamRefused(f"{self.file.bytes_written} bytes arrived, the manifest "
                                f"says {manifest.size}")
        if not secrets.compare_digest(manifest.sha256.encode(), self.sha256.hexdigest().encode()):
            raise StreamRefused("SHA-256 of the file is not the manifest's")
        return manifest

    def finish(self, index: int) -> Path:
        """Make the file durable under its final name (blocking: run in a thread)."""
        self.file.dest = self.directory / f"received-{index}-{secrets.token_hex(8)}.sqlite"
        return self.file.finish()

    def abort(self) -> None:
        self.file.abort()
