"""Fuzz targets: everything that parses bytes from the network, with its invariants.

Each target takes the bytes a peer could send (and where they are cut into
reads) and raises ``FuzzFailure`` when an invariant breaks:

- only the documented error escapes (a ProtocolError from the request parser,
  a CodecError from the Raft codec, a ConnectionError or IncompleteReadError
  from a handshake); a connection's ``data_received`` raises nothing;
- the work per input is bounded: a connection is idle again within a deadline;
- garbage changes nothing: the keyspace and the Raft log stay as they were
  unless a valid write command was parsed, and a Raft core sees no message
  unless it came, well formed, from the peer that authenticated;
- memory stays bounded (``MemoryWatch``: a header that promises a hundred
  million elements must not make anyone allocate for them).

The targets are shared by the short hypothesis runs in CI (tests/protocol,
tests/raft, tests/replication) and the long runs of ``benchmarks/fuzz.py``.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import resource
import shutil
import struct
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import hiredis

from respkv.commands.table import COMMANDS, Kind, lookup
from respkv.config import Config
from respkv.protocol.parser import MAX_HEADER, MAX_INLINE, ProtocolError, RequestParser
from respkv.raft.codec import CodecError, decode_message, encode_message
from respkv.raft.core import Config as CoreConfig
from respkv.raft.core import RaftCore
from respkv.raft.messages import ConfState, Message, MessageType, SnapshotMeta
from respkv.raft.types import Entry, EntryKind
from respkv.replication import peerauth, snapstream
from respkv.replication import transport as raft_port
from respkv.replication.keyring import Keyring

MEMORY_LIMIT = 64 << 20  # growth of the peak address space one input may cause


class FuzzFailure(AssertionError):
    """An invariant broke: the message names it; ``data`` is the input."""

    def __init__(self, message: str, data: bytes = b"") -> None:
        super().__init__(f"{message} (input {data[:200]!r}{'...' if len(data) > 200 else ''})")
        self.data = data


def split(data: bytes, cuts: Sequence[int]) -> list[bytes]:
    """``data`` cut at the given offsets (taken modulo its length), as reads arrive."""
    if not data:
        return [data]
    points = sorted({c % len(data) for c in cuts} - {0})
    pieces, last = [], 0
    for point in points:
        pieces.append(data[last:point])
        last = point
    pieces.append(data[last:])
    return pieces


# -- memory ------------------------------------------------------------------------


def _peak_address_space() -> int:
    """The process' peak virtual size (VmPeak): it counts what was allocated and never
    touched, as a calloc'd array of a hundred million pointers is, which the peak
    resident size would miss."""
    try:
        with open("/proc/self/status", "rb") as status:
            for line in status:
                if line.startswith(b"VmPeak:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


class MemoryWatch:
    """Fails an input during which the peak address space grew by more than ``limit``.

    The peak only rises, so a run checks each input against the peak before it:
    the first input that allocates too much is the one named."""

    def __init__(self, limit: int = MEMORY_LIMIT,
                 background: Callable[[], object] | None = None) -> None:
        self.limit = limit
        self.peak = _peak_address_space()
        # what tells of work no input asked for (a snapshot the server took, a thread
        # started): an input during which it changed is not blamed for the growth
        self.background = background
        self.seen = background() if background is not None else None

    def check(self, data: bytes) -> None:
        peak = _peak_address_space()
        if self.background is not None:
            seen, self.seen = self.seen, self.background()
            if seen != self.seen:
                self.peak = peak
                return
        if peak - self.peak > self.limit:
            grown = (peak - self.peak) >> 20
            self.peak = peak
            raise FuzzFailure(f"one input grew the peak address space by {grown} MB", data)
        self.peak = peak


# -- the RESP request parser ---------------------------------------------------------


@dataclass(slots=True)
class Parsed:
    frames: list[list[bytes]]
    error: str | None  # the ProtocolError's reply text


def _parse(pieces: Sequence[bytes], max_bulk: int) -> Parsed:
    parser = RequestParser(max_bulk)
    frames: list[list[bytes]] = []
    for piece in pieces:
        try:
            frames.extend(parser.feed(piece))
        except ProtocolError as error:
            frames.extend(error.frames)  # type: ignore[attr-defined]
            return Parsed(frames, error.reply_text)
        if parser.inline is not None and len(parser.inline) > MAX_INLINE:
            raise AssertionError(f"{len(parser.inline)} bytes of inline request buffered")
        if parser.guard is not None and len(parser.guard.line) > MAX_HEADER:
            raise AssertionError(f"{len(parser.guard.line)} bytes of header line buffered")
    return Parsed(frames, None)


def parse_request(data: bytes, cuts: Sequence[int] = (), max_bulk: int = 512 << 20) -> Parsed:
    """The request parser on ``data``, whole and cut into reads at ``cuts``.

    Only ProtocolError may escape; every request is a non-empty list of bytes no
    longer than the input; and where the reads are cut changes nothing: the same
    requests, the same error."""
    try:
        whole = _parse([data], max_bulk)
        pieces = _parse(split(data, cuts), max_bulk) if cuts else whole
    except AssertionError as error:
        raise FuzzFailure(str(error), data) from None
    except Exception as error:
        raise FuzzFailure(f"the parser raised {error!r}", data) from error
    for parsed in (whole, pieces):
        total = 0
        for request in parsed.frames:
            if type(request) is not list or not request:
                raise FuzzFailure(f"request {request!r} is not a non-empty list", data)
            for arg in request:
                if type(arg) is not bytes or len(arg) > max_bulk:
                    raise FuzzFailure(f"argument {arg!r:.80} is not a bulk", data)
                total += len(arg)
        if total > len(data):
            raise FuzzFailure(f"{total} bytes of arguments from {len(data)} of input", data)
    if whole.frames != pieces.frames or whole.error != pieces.error:
        raise FuzzFailure(
            f"cut at {sorted(cuts)}: {len(pieces.frames)} requests, error {pieces.error!r};"
            f" whole: {len(whole.frames)}, error {whole.error!r}", data)
    return whole


# -- a whole client connection -------------------------------------------------------


def _runnable(command: Any) -> bool:
    """Commands a fuzzed connection may run: data commands that cannot block, and
    transactions. Admin commands (SHUTDOWN, CONFIG SET, ACL, CLUSTER, DEBUG, scripts)
    would change the server the next input meets, and blocking ones wait by design."""
    if command is None:
        return True  # unknown: an error reply
    if command.kind is Kind.TRANSACTION:
        return True
    if command.kind in (Kind.READ, Kind.WRITE):
        return "blocking" not in command.flags
    return command.name in ("ping", "echo", "dbsize", "time", "lastsave")


class FakeTransport(asyncio.Transport):
    """What a Client writes to, kept in memory; reading can be paused and closed."""

    def __init__(self, peer: tuple[str, int] = ("127.0.0.1", 40000)) -> None:
        super().__init__()
        self.out = bytearray()
        self.closed = False
        self.paused = False
        self.peer = peer

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"peername": self.peer, "sockname": ("127.0.0.1", 6379)}.get(name, default)

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if self.closed:
            raise AssertionError("write after close")
        self.out += data

    def close(self) -> None:
        self.closed = True

    def is_closing(self) -> bool:
        return self.closed

    def can_write_eof(self) -> bool:
        # as TLS: a refused snapshot closes at once, not after the sender's timeout
        return False

    def pause_reading(self) -> None:
        self.paused = True

    def resume_reading(self) -> None:
        self.paused = False

    def is_reading(self) -> bool:
        return not self.paused

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        pass

    def get_write_buffer_size(self) -> int:
        return 0


@dataclass(slots=True)
class ConnectionOutcome:
    skipped: bool = False  # the input asks for a command a fuzzed connection may not run
    requests: int = 0
    replies: int = 0
    wrote: bool = False


class ClientHarness:
    """A single-node respkv server run in this process, with no client listener: each
    input is a fresh connection (respkv.server.client.Client) on a FakeTransport."""

    DEADLINE = 10.0  # seconds a connection may take to answer one input

    def __init__(self, port: int, directory: Path) -> None:
        from respkv.server.server import Server  # the top layer: only this target needs it

        self.loop = asyncio.new_event_loop()
        self.config = Config(port=port, dir=str(directory), shards=1, log_level="warning",
                             protected_mode=False)
        self.server = Server(self.config)
        self.loop.run_until_complete(self._start())
        self.group = self.server.node.groups[0]

    async def _start(self) -> None:
        await self.server.start()
        for listener in self.server.listeners:
            listener.close()  # inputs come through connection_made/data_received only
        deadline = time.monotonic() + self.DEADLINE
        while not self.server.node.groups[0].is_leader():
            if time.monotonic() > deadline:
                raise RuntimeError("the fuzz server never became leader")
            await asyncio.sleep(0.01)

    def close(self) -> None:
        self.loop.run_until_complete(self.server.shutdown())
        self.loop.close()

    def __enter__(self) -> ClientHarness:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @staticmethod
    def _idle(client: Any) -> bool:
        if client.closing:
            return True
        return (not client.commands and client.waiting is None and client.inflight == 0
                and not client.replies)

    async def _feed(self, pieces: Sequence[bytes], data: bytes) -> FakeTransport:
        server = self.server
        client = server._new_client()
        transport = FakeTransport()
        client.connection_made(transport)
        deadline = time.monotonic() + self.DEADLINE
        try:
            for piece in pieces:
                if client.closing:
                    break
                while transport.paused and not client.closing:  # back-pressure: wait
                    if time.monotonic() > deadline:
                        raise FuzzFailure("reading stayed paused (hang)", data)
                    await asyncio.sleep(0)
                try:
                    client.data_received(piece)
                except Exception as error:
                    raise FuzzFailure(f"data_received raised {error!r}", data) from error
            while not self._idle(client):
                if time.monotonic() > deadline:
                    raise FuzzFailure(f"no reply within {self.DEADLINE}s (hang)", data)
                await asyncio.sleep(0.001 if client.waiting is None else 0)
        finally:
            client.connection_lost(None)
        return transport

    def background_work(self) -> tuple[int, int]:
        """Changes when the server took a snapshot or started a thread (MemoryWatch)."""
        return self.group.snapshot_index, threading.active_count()

    def _state(self) -> tuple[int, int]:
        return self.group.last_index, len(self.group.keyspace)

    def run(self, data: bytes, cuts: Sequence[int] = ()) -> ConnectionOutcome:
        parsed = parse_request(data, cuts, self.config.proto_max_bulk_len)
        commands = [lookup(request[0]) for request in parsed.frames]
        if not all(_runnable(command) for command in commands):
            return ConnectionOutcome(skipped=True)
        writes = any(command is not None and command.is_write for command in commands)
        before = self._state()
        transport = self.loop.run_until_complete(self._feed(split(data, cuts), data))
        replies = _count_replies(bytes(transport.out), data)
        expected = len(parsed.frames) + (parsed.error is not None)
        if replies != expected:
            raise FuzzFailure(f"{replies} replies to {expected} requests", data)
        if parsed.error is not None:
            text = parsed.error.replace("\r", " ").replace("\n", " ")  # as Redis sends it
            tail = f"-{text}\r\n".encode("utf-8", "surrogateescape")
            if not transport.out.endswith(tail) or not transport.closed:
                raise FuzzFailure(f"a protocol error was not {tail!r} and a close", data)
        after = self._state()
        if not writes and after != before:
            raise FuzzFailure(f"no write command, yet (log, keys) went {before} -> {after}",
                              data)
        if writes and after[1]:
            self.loop.run_until_complete(self._feed([b"FLUSHALL\r\n"], b"FLUSHALL"))
        return ConnectionOutcome(False, len(parsed.frames), replies, writes)


_NOT_YET = object()


def _count_replies(out: bytes, data: bytes) -> int:
    reader = hiredis.Reader(notEnoughData=_NOT_YET)  # error replies come back as values
    reader.feed(out)
    count = 0
    while True:
        try:
            reply = reader.gets()
        except hiredis.ProtocolError as error:
            raise FuzzFailure(f"the replies are not RESP: {error}", data) from None
        if reply is _NOT_YET:
            if reader.has_data():
                raise FuzzFailure("the replies end in the middle of one", data)
            return count
        count += 1


def _scratch(prefix: str) -> Path:
    """A temporary dir, in memory where the machine has one: the server fsyncs every
    write, and a fuzz run makes hundreds of thousands."""
    shm = Path("/dev/shm")
    return Path(tempfile.mkdtemp(prefix=prefix, dir=shm if shm.is_dir() else None))


@contextlib.contextmanager
def client_harness(port: int) -> Iterator[ClientHarness]:
    directory = _scratch("respkv-fuzz-")
    try:
        with ClientHarness(port, directory) as harness:
            yield harness
    finally:
        shutil.rmtree(directory, ignore_errors=True)


# -- the Raft codec and frames ---------------------------------------------------------


def decode_raft_message(data: bytes) -> Message | None:
    """decode_message raises CodecError only; what it decodes encodes back to itself."""
    try:
        message = decode_message(data)
    except CodecError:
        return None
    except Exception as error:
        raise FuzzFailure(f"decode_message raised {error!r}", data) from error
    try:
        again = decode_message(encode_message(message))
    except Exception as error:
        raise FuzzFailure(f"a decoded message does not encode back: {error!r}", data) from None
    if again != message:
        raise FuzzFailure(f"{message!r} came back as {again!r}", data)
    return message


def read_frames(data: bytes, cuts: Sequence[int] = ()) -> list[tuple[int, bytes]]:
    """transport.read_frame on a stream of ``data``: frames, then an
    IncompleteReadError or ConnectionError, nothing else, and never a wait."""
    async def run() -> list[tuple[int, bytes]]:
        reader = asyncio.StreamReader()
        for piece in split(data, cuts):
            reader.feed_data(piece)
        reader.feed_eof()
        frames = []
        while True:
            try:
                frames.append(await asyncio.wait_for(raft_port.read_frame(reader), 5))
            except (asyncio.IncompleteReadError, ConnectionError):
                return frames
            except TimeoutError:
                raise FuzzFailure("read_frame waited on a closed stream", data) from None
            except Exception as error:
                raise FuzzFailure(f"read_frame raised {error!r}", data) from error

    return _loop().run_until_complete(run())


_LOOPS: list[asyncio.AbstractEventLoop] = []


def _loop() -> asyncio.AbstractEventLoop:
    """One event loop for the stream targets (a new loop per input costs more than
    the input); they are called from synchronous code, never from a running loop."""
    if not _LOOPS:
        _LOOPS.append(asyncio.new_event_loop())
    return _LOOPS[0]


# -- the Raft port: the accepting side (Inbound) ----------------------------------------

CLUSTER = "cluster-fuzz"
SECRET = b"f" * peerauth.SECRET_BYTES
PEER, SELF, GROUP = "n1", "n2", "g0"
DIALER_NONCE = b"d" * peerauth.NONCE_BYTES


class CoreEndpoint:
    """A group for the transport to hand messages to: a real RaftCore, stepped."""

    def __init__(self) -> None:
        self.core = RaftCore(CoreConfig(node_id=SELF, group=GROUP, voters=(PEER, SELF, "n3")))
        self.messages: list[Message] = []
        self.snapshots: list[Message] = []
        self.removed: list[tuple[str, int]] = []
        self.failures: list[str] = []

    def state(self) -> tuple[int, int, int, str | None]:
        core = self.core
        return core.term, core.log.last_index(), core.log.committed, core.vote

    def on_message(self, message: Message) -> None:
        self.messages.append(message)
        try:
            self.core.step(message)
            if self.core.has_ready():
                self.core.advance(self.core.ready())
        except Exception as error:  # the transport let through what the core fails on
            self.failures.append(f"the core raised {error!r} on {message!r}")
            raise

    def on_snapshot(self, message: Message, path: Path) -> None:
        self.snapshots.append(message)

    def on_removed_notice(self, sender: str, index: int) -> None:
        self.removed.append((sender, index))

    def on_unreachable(self, node_id: str) -> None:
        pass


@dataclass
class InboundOutcome:
    delivered: list[Message] = field(default_factory=list)
    snapshots: list[Message] = field(default_factory=list)
    closed: bool = False


def hello_payload(nonce: bytes = DIALER_NONCE) -> bytes:
    return json.dumps({"cluster": CLUSTER, "from": PEER, "to": SELF, "nonce": nonce.hex(),
                       "addresses": {"raft": "127.0.0.1:1"}}).encode()


class InboundHarness:
    """An accepting Transport (not listening) whose group g0 is a real RaftCore; each
    input is one connection (an Inbound on a FakeTransport)."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.loop = asyncio.new_event_loop()
        # one worker for the snapshots' to_thread: each new thread reserves a stack and
        # an arena (~70 MB of address space), which the memory watch would count
        self.loop.set_default_executor(ThreadPoolExecutor(max_workers=1))
        self.told: list[tuple[str, dict[str, str]]] = []
        self.transport = raft_port.Transport(
            SELF, CLUSTER, Keyring(SECRET), "127.0.0.1", 0, lambda group: directory / group, {},
            lambda peer, addresses: self.told.append((peer, addresses)))
        self.endpoint = CoreEndpoint()
        self.genesis = self.endpoint.state()

    def close(self) -> None:
        self.loop.close()

    def _handshake(self, inbound: raft_port.Inbound, fake: FakeTransport) -> None:
        payload = hello_payload()
        inbound.data_received(raft_port.frame(raft_port.HELLO, payload))
        length, kind = struct.unpack_from(">IB", fake.out)
        if kind != raft_port.CHALLENGE:
            raise AssertionError(f"a valid HELLO was answered with frame {kind}")
        theirs = bytes.fromhex(json.loads(bytes(fake.out[5 : 4 + length]))["nonce"])
        inbound.data_received(raft_port.frame(raft_port.PROOF, peerauth.dialer_proof(
            SECRET, CLUSTER, PEER, SELF, DIALER_NONCE, theirs, payload)))
        if inbound.peer != PEER:
            raise AssertionError("the harness's handshake failed")
        fake.out.clear()

    async def _feed(self, pieces: Sequence[bytes], data: bytes,
                    authenticated: bool) -> tuple[CoreEndpoint, raft_port.Inbound,
                                                  FakeTransport]:
        endpoint = self.endpoint
        if endpoint.messages or endpoint.snapshots or endpoint.removed or endpoint.failures:
            endpoint = self.endpoint = CoreEndpoint()  # the last input changed it
        self.transport.handlers = {GROUP: endpoint}
        inbound = raft_port.Inbound(self.transport)
        fake = FakeTransport()
        inbound.connection_made(fake)
        if authenticated:
            self._handshake(inbound, fake)
        try:
            for piece in pieces:
                if fake.closed:
                    break
                try:
                    inbound.data_received(piece)
                except Exception as error:
                    raise FuzzFailure(f"data_received raised {error!r}", data) from error
            # a SNAP_END spawned the snapshot's finish, which closes when done
            deadline = time.monotonic() + 5.0
            while inbound.done and not fake.closed:
                if time.monotonic() > deadline:
                    raise FuzzFailure("a finished snapshot was never handed over", data)
                await asyncio.sleep(0.001)
        finally:
            inbound.connection_lost(None)
        return endpoint, inbound, fake

    def run(self, data: bytes, cuts: Sequence[int] = (),
            authenticated: bool = False) -> InboundOutcome:
        """Feed ``data`` to a new connection, before or after the handshake."""
        self.told.clear()
        endpoint, inbound, fake = self.loop.run_until_complete(
            self._feed(split(data, cuts), data, authenticated))
        genesis = self.genesis
        if endpoint.failures:
            raise FuzzFailure(endpoint.failures[0], data)
        if not authenticated:
            if endpoint.messages or endpoint.snapshots or endpoint.removed:
                raise FuzzFailure("a connection that never authenticated reached the group",
                                  data)
            if inbound.peer is not None or self.told:
                raise FuzzFailure("garbage passed the handshake", data)
            _check_handshake_replies(bytes(fake.out), data)
        for message in endpoint.messages + endpoint.snapshots:
            if message.from_ != PEER:
                raise FuzzFailure(f"{message!r} names another sender than {PEER}", data)
            if message.group != GROUP:
                raise FuzzFailure(f"{message!r} reached group {GROUP}", data)
        for snapshot in endpoint.snapshots:
            if snapshot.snapshot is None or snapshot.type is not MessageType.SNAP:
                raise FuzzFailure(f"{snapshot!r} was handed over as a snapshot", data)
        if not endpoint.messages and endpoint.state() != genesis:
            raise FuzzFailure(f"the core changed with no message: {endpoint.state()}", data)
        return InboundOutcome(endpoint.messages, endpoint.snapshots, fake.closed)


def _check_handshake_replies(out: bytes, data: bytes) -> None:
    """Before the handshake ends the acceptor sends a CHALLENGE or HELLO_REFUSED, only."""
    pos = 0
    while pos < len(out):
        length, kind = struct.unpack_from(">IB", out, pos)
        if kind not in (raft_port.CHALLENGE, raft_port.HELLO_REFUSED):
            raise FuzzFailure(f"frame {kind} sent before the handshake ended", data)
        pos += 4 + length


@contextlib.contextmanager
def inbound_harness() -> Iterator[InboundHarness]:
    directory = _scratch("respkv-fuzz-raft-")
    harness = InboundHarness(directory)
    try:
        yield harness
    finally:
        harness.close()
        shutil.rmtree(directory, ignore_errors=True)


# -- BROADCAST payloads: pub/sub messages from a peer -------------------------------------


@dataclass
class _Listener:
    """A subscriber to every channel (a pattern "*") and to the shard channel "s"."""

    id: int = 1
    resp3: bool = True
    subscriptions: dict[str, set[bytes]] = field(default_factory=lambda: {
        "channel": set(), "pattern": set(), "shard": set()})
    received: list[bytes] = field(default_factory=list)

    def push(self, data: bytes) -> None:
        self.received.append(data)


_HUBS: list[tuple[Any, _Listener]] = []


def broadcast_payload(data: bytes) -> int:
    """PubSubHub.on_broadcast on a peer's payload: it raises ValueError only (a bad
    payload, on which the transport closes the peer's link), and delivers at most one
    message, whose channel and message are bytes. Returns how many it delivered."""
    if not _HUBS:
        from respkv.server.pubsub import PubSubHub  # the top layer: only this target

        hub, listener = PubSubHub(lambda payload: 0), _Listener()
        hub.subscribe(listener, "pattern", [b"*"])
        hub.subscribe(listener, "shard", [b"s"])
        listener.received.clear()
        _HUBS.append((hub, listener))
    hub, listener = _HUBS[0]
    listener.received.clear()
    try:
        hub.on_broadcast(data)
    except ValueError as error:
        if type(error) is not ValueError:  # UnicodeDecodeError and such are bugs
            raise FuzzFailure(f"on_broadcast raised {error!r}", data) from error
        return 0
    except Exception as error:
        raise FuzzFailure(f"on_broadcast raised {error!r}", data) from error
    if len(listener.received) > 1:
        raise FuzzFailure(f"one payload delivered {len(listener.received)} messages", data)
    return len(listener.received)


def broadcast_corpus() -> list[bytes]:
    return [resp("c", "news", "hello"), resp("s", "s", "hi"), resp("c", "x", ""),
            b"*3\r\n$1\r\nc\r\n:1\r\n:2\r\n", b"*1\r\n%1\r\n*0\r\n:1\r\n"]


# -- the Raft port: the dialing side ----------------------------------------------------


class _Writer:
    """What Transport._handshake writes to."""

    def __init__(self) -> None:
        self.out = bytearray()

    def write(self, data: bytes) -> None:
        self.out += data


def dial_handshake(data: bytes, cuts: Sequence[int] = ()) -> None:
    """The dialer's handshake against a peer that answers ``data``: it fails with
    ConnectionError or IncompleteReadError (what Peer._run retries on), never passes
    (no answer without the secret can), never waits on a closed stream."""
    async def run() -> None:
        transport = raft_port.Transport(PEER, CLUSTER, Keyring(SECRET), "127.0.0.1", 0,
                                        lambda group: Path("/nonexistent"), {},
                                        lambda peer, addresses: None)
        reader = asyncio.StreamReader()
        for piece in split(data, cuts):
            reader.feed_data(piece)
        reader.feed_eof()
        try:
            await asyncio.wait_for(transport._handshake(reader, _Writer(), SELF), 5)
        except (ConnectionError, asyncio.IncompleteReadError):
            return
        except TimeoutError:
            raise FuzzFailure("the dialer waited on a closed stream", data) from None
        except Exception as error:
            raise FuzzFailure(f"the dialer's handshake raised {error!r}", data) from error
        raise FuzzFailure("the dialer accepted a peer that holds no secret", data)

    _loop().run_until_complete(run())


# -- corpora: valid inputs to mutate ------------------------------------------------------


def resp(*args: bytes | str) -> bytes:
    parts = [b"*%d\r\n" % len(args)]
    for arg in args:
        raw = arg.encode() if isinstance(arg, str) else arg
        parts.append(b"$%d\r\n%s\r\n" % (len(raw), raw))
    return b"".join(parts)


def request_corpus() -> list[bytes]:
    """Valid requests, RESP and inline, and a few of Redis' error cases."""
    corpus = [
        resp("PING"), resp("SET", "k", "v"), resp("GET", "k"), resp("ECHO", "x" * 40),
        resp("HSET", "h", "f", "v", "g", "w"), resp("LPUSH", "l", "a", "b"),
        resp("ZADD", "z", "1", "m"), resp("SADD", "s", "a"), resp("INCR", "c"),
        resp("MULTI") + resp("SET", "a", "1") + resp("EXEC"),
        resp("SET", "k", "v") + resp("GET", "k") + resp("DEL", "k"),
        b"PING\r\n", b"SET k v\r\nGET k\r\n", b"ECHO \"a\\x41\\n\" 'b\\'c'\r\n",
        b"*-1\r\n*0\r\n" + resp("PING"), b"\r\n\r\nPING\n",
        b"*1\r\n*99999999\r\n", b"*2\r\n$1\r\na\r\n%1\r\n$1\r\nb\r\n$1\r\nc\r\n",
        b"*1\r\n$-1\r\n", b"*3000000000\r\n", b"$5\r\nhello\r\n", b":1\r\n",
        resp("SET", "k", "v", "EX", "100"), resp("MSET", "a", "1", "b", "2"),
    ]
    return corpus


def message_corpus() -> list[Message]:
    entries = (Entry(2, 4, EntryKind.NORMAL, b"SET k v"), Entry(2, 5, EntryKind.NOOP, b""))
    snap = SnapshotMeta(10, 2, ConfState((PEER, SELF, "n3"), ()))
    common = {"group": GROUP, "from_": PEER, "to": SELF}
    return [
        Message(MessageType.APP, term=2, index=3, log_term=1, entries=entries, commit=4,
                **common),
        Message(MessageType.HEARTBEAT, term=2, commit=3, context=b"ctx", **common),
        Message(MessageType.VOTE, term=3, index=7, log_term=2, **common),
        Message(MessageType.PRE_VOTE, term=3, index=7, log_term=2, **common),
        Message(MessageType.APP_RESP, term=2, index=5, reject=True, reject_hint=3, **common),
        Message(MessageType.SNAP, term=2, snapshot=snap, **common),
        Message(MessageType.TIMEOUT_NOW, term=2, **common),
        Message(MessageType.READ_INDEX, term=2, context=b"r1", **common),
    ]


def codec_corpus() -> list[bytes]:
    return [encode_message(m) for m in message_corpus()]


def snapshot_stream(end: Message, data: bytes = b"data" * 16, chunk: int = 32) -> bytes:
    """A snapshot of ``data`` as PEER streams it for GROUP (see snapstream): its chunks,
    the manifest for the snapshot ``end`` announces (as valid ``end`` allows), ``end``."""
    frame = raft_port.frame
    chunks = [frame(raft_port.SNAP_CHUNK,
                    snapstream.chunk_payload(GROUP, offset, data[offset : offset + chunk]))
              for offset in range(0, len(data), chunk)]
    meta = end.snapshot or SnapshotMeta(0, 0, ConfState((), ()))
    manifest = snapstream.Manifest(GROUP, PEER, meta.index, meta.term, len(data),
                                   hashlib.sha256(data).hexdigest(),
                                   {PEER: {"raft": "127.0.0.1:1"}})
    return b"".join([*chunks, frame(raft_port.SNAP_MANIFEST, manifest.to_bytes()),
                     frame(raft_port.SNAP_END, encode_message(end))])


def frame_corpus() -> list[bytes]:
    """Streams of frames an authenticated peer sends after the handshake."""
    frame = raft_port.frame
    messages = [frame(raft_port.MSG, encoded) for encoded in codec_corpus()]
    snap = next(m for m in message_corpus() if m.type is MessageType.SNAP)
    removed = frame(raft_port.REMOVED, json.dumps(
        {"group": GROUP, "node": SELF, "index": 9}).encode())
    return [
        *messages, b"".join(messages),
        raft_port.PING_FRAME + frame(raft_port.BROADCAST, b"pubsub"),
        snapshot_stream(snap),
        removed,
    ]


def handshake_corpus() -> list[bytes]:
    """What a dialer sends first: HELLOs, and a HELLO with a PROOF after it."""
    frame = raft_port.frame
    hello = frame(raft_port.HELLO, hello_payload())
    return [hello, hello + frame(raft_port.PROOF, b"p" * 32),
            frame(raft_port.HELLO, b"{}"), frame(raft_port.MSG, codec_corpus()[0])]


def dial_corpus() -> list[bytes]:
    """What an acceptor answers a dialer: CHALLENGEs (with a wrong proof), refusals."""
    frame = raft_port.frame
    challenge = json.dumps({"nonce": "ab" * 16, "proof": "cd" * 32}).encode()
    return [frame(raft_port.CHALLENGE, challenge),
            frame(raft_port.CHALLENGE, challenge) + frame(raft_port.HELLO_OK, b""),
            frame(raft_port.HELLO_REFUSED, b"another cluster"), frame(raft_port.HELLO_OK, b"")]


def runnable_commands() -> list[str]:
    """The names the client target runs (for mutators that swap command names)."""
    return sorted(name for name, command in COMMANDS.items() if _runnable(command))
