"""Request parsing: RESP arrays via hiredis, inline commands by hand, Redis' limits.

hiredis parses complete frames in C. It does not know Redis' request limits,
so an incomplete frame at the end of a read (the only place a bogus
``*3000000000`` or ``$2000000000`` header can hide) is checked by
``FrameGuard``, which walks only the headers of that frame. The cost is paid
once per read that ends mid-frame, not once per command.

A frame whose first byte is not ``*`` is an inline command (``PING\\r\\n``), as
Redis treats it; hiredis rejects those, and this module takes over from the
byte where hiredis stopped.
"""

from __future__ import annotations

import re

import hiredis

MAX_MULTIBULK = 1024 * 1024  # Redis' limit on arguments per request
MAX_INLINE = 64 * 1024  # PROTO_INLINE_MAX_SIZE
MAX_HEADER = 64 * 1024  # a "*N" or "$N" line longer than this is garbage


class ProtocolError(Exception):
    """A request Redis would answer with '-ERR Protocol error: ...' and close."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reply_text = f"ERR Protocol error: {reason}"


def frame_size(frame: list, max_bulk: int) -> int:
    """Bytes a request array took on the wire; rejects elements that are not bulks
    and bulks longer than ``max_bulk`` (hiredis parses whole frames unchecked)."""
    count = len(frame)
    size = 4 if count < 10 else 3 + len(str(count))
    for arg in frame:
        if type(arg) is not bytes:
            raise ProtocolError("expected '$'")
        n = len(arg)
        if n > max_bulk:
            raise ProtocolError("invalid bulk length")
        size += n + (6 if n < 10 else 7 if n < 100 else 5 + len(str(n)))
    return size


class FrameGuard:
    """Walks the headers of one incomplete request frame, checking Redis' limits."""

    __slots__ = ("consumed", "elements", "line", "max_bulk", "skip", "started")

    def __init__(self, max_bulk: int) -> None:
        self.max_bulk = max_bulk
        self.consumed = 0  # bytes of this frame seen so far
        self.line = b""  # a header line not yet ended by \r\n
        self.elements = -1  # bulks still expected; -1 before the array header
        self.skip = 0  # payload bytes (plus CRLF) still to pass over

    def scan(self, data: bytes, start: int = 0) -> int | None:
        """Check the headers in ``data[start:]``; where in ``data`` the frame ends, or
        None. Payloads are skipped by count and nothing is copied but header lines."""
        end = len(data)
        self.consumed += end - start
        pos = start
        while pos < end:
            if self.skip:
                step = min(self.skip, end - pos)
                self.skip -= step
                pos += step
                continue
            if self.elements == 0:
                return pos  # complete: hiredis has it
            newline = data.find(b"\n", pos, pos + MAX_HEADER)
            if newline < 0:
                self.line += data[pos : pos + MAX_HEADER + 1]
                if len(self.line) > MAX_HEADER:
                    raise ProtocolError(
                        "too big mbulk count string" if self.elements < 0
                        else "too big bulk count string"
                    )
                return None
            self.header(self.line + data[pos:newline] if self.line else data[pos:newline])
            self.line = b""
            pos = newline + 1
        return pos if self.elements == 0 and not self.skip else None

    def header(self, line: bytes) -> None:
        line = line.rstrip(b"\r")
        if self.elements < 0:
            count = _parse_len(line[1:])
            if count is None or count > MAX_MULTIBULK:
                raise ProtocolError("invalid multibulk length")
            self.elements = max(count, 0)  # "*-1" and "*0": empty requests
            return
        if line[:1] != b"$":
            raise ProtocolError(f"expected '$', got '{line[:1].decode('latin-1')}'")
        size = _parse_len(line[1:])
        if size is None or size < 0 or size > self.max_bulk:
            raise ProtocolError("invalid bulk length")
        self.elements -= 1
        self.skip = size + 2


# An aggregate header with a count of a million or more at the start of a line:
# inside a request it is an error anyway, and hiredis would allocate the whole
# array (8 bytes an element) as soon as it parsed it.
_BIG_NESTED = re.compile(rb"\n[*%~>|][0-9]{7}")


def check_frames(data: bytes, pos: int, max_bulk: int) -> None:
    """Walk the headers of the frames in ``data`` from ``pos``, raising on a bad one."""
    while data[pos : pos + 1] == b"*":
        done = FrameGuard(max_bulk).scan(data, pos)
        if done is None:
            return
        pos = done


def check_array_header(data: bytes, offset: int) -> None:
    """Refuse a request array header ``*N`` beyond Redis' limit before hiredis sees it."""
    if data[offset : offset + 1] != b"*":
        return
    newline = data.find(b"\n", offset, offset + MAX_HEADER)
    if newline < 0:
        return  # incomplete: the FrameGuard checks it once the line is complete
    count = _parse_len(data[offset + 1 : newline].rstrip(b"\r"))
    if count is None or count > MAX_MULTIBULK:
        raise ProtocolError("invalid multibulk length")


def _parse_len(raw: bytes) -> int | None:
    try:
        value = int(raw)
    except ValueError:
        return None
    return value if value >= -1 else None


class RequestParser:
    """Turns bytes from one client into argument lists."""

    def __init__(self, max_bulk: int = 512 * 1024 * 1024) -> None:
        self.max_bulk = max_bulk
        self.reader = hiredis.Reader()
        self.guard: FrameGuard | None = None  # set while a RESP frame is incomplete
        # set while an inline line is incomplete: its bytes so far
        self.inline: bytearray | None = None

        self.completed = 0  # the size of a request the last feed completed, begun earlier

    @property
    def pending(self) -> int:
        """Bytes of a request received but not complete yet."""
        if self.guard is not None:
            return self.guard.consumed
        return len(self.inline) if self.inline else 0

    @property
    def held(self) -> int:
        """The most bytes of one request held at once in the last feed: what Redis'
        client-query-buffer-limit bounds (Redis holds a request whole before it runs
        it, so a request bigger than the limit is refused even once complete)."""
        return max(self.pending, self.completed)

    def feed(self, data: bytes) -> list[list[bytes]]:
        """Complete requests in ``data`` (plus earlier leftovers).

        Raises ProtocolError; requests parsed before the bad bytes are in its
        ``frames`` attribute so they run before the error is sent.
        """
        frames: list[list[bytes]] = []
        self.completed = 0
        try:
            self._feed(data, frames)
        except ProtocolError as error:
            error.frames = frames  # type: ignore[attr-defined]
            raise
        return frames

    def _feed(self, data: bytes, frames: list[list[bytes]]) -> None:
        if self.inline is not None:
            self._feed_inline(data, frames)
            return
        reader = self.reader
        # offset: where in ``data`` the next frame starts (negative while the
        # frame that began in earlier data is still being completed)
        offset = -self.guard.consumed if self.guard is not None else 0
        # hiredis allocates a whole array when it parses "*N", so headers are
        # checked before it sees them: the rest of a frame begun in an earlier
        # read (its headers only), the first header of each new frame (below),
        # and nested aggregates with a huge count (rare: a regex finds them).
        scanned = self.guard is not None
        first = 0
        if scanned:
            done = self.guard.scan(data)
            first = len(data) if done is None else done
            if done is not None:
                self.completed = self.guard.consumed - (len(data) - done)
        if _BIG_NESTED.search(data, first):
            check_frames(data, first, self.max_bulk)
        reader.feed(data)
        end = len(data)
        try:
            while True:
                if 0 <= offset < end and data[offset + 2 : offset + 4] != b"\r\n":
                    check_array_header(data, offset)  # a count of 10 or more: check it
                frame = reader.gets()
                if frame is False:
                    break
                if frame is None and data[offset : offset + 2] == b"*-":
                    offset += 5  # "*-1\r\n": Redis ignores a null request
                    continue
                if type(frame) is not list:
                    break  # a top-level non-array: Redis reads that as inline
                start = offset
                try:
                    offset += frame_size(frame, self.max_bulk)
                except ProtocolError:
                    self._explain(data, start)  # Redis' text for it, when we can tell
                    raise
                if offset > end or (offset >= 2 and data[offset - 2 : offset] != b"\r\n"):
                    self._explain(data, start)  # an element was not a bulk string
                    if offset > end:
                        raise ProtocolError("expected '$'")
                self.guard = None
                if frame:
                    frames.append(frame)
        except hiredis.ProtocolError:
            frame = None
        if frame is not False or (offset >= 0 and data[offset : offset + 1] not in (b"*", b"")):
            self._restart_inline(data, max(offset, 0), frames)
            return
        if offset < len(data):
            if self.guard is None:
                self.guard = FrameGuard(self.max_bulk)
            elif scanned:
                return
            self.guard.scan(data, max(offset, 0))

    def _explain(self, data: bytes, start: int) -> None:
        """A frame hiredis accepted but Redis would not: raise Redis' error for it."""
        if start >= 0:
            FrameGuard(self.max_bulk).scan(data, start)

    def _restart_inline(self, data: bytes, offset: int, frames: list[list[bytes]]) -> None:
        """hiredis stopped at ``offset``: what follows is inline or garbage."""
        self.reader = hiredis.Reader()
        if self.guard is not None or data[offset : offset + 1] == b"*":
            FrameGuard(self.max_bulk).scan(data, offset)
            raise ProtocolError("invalid multibulk length")
        self.inline = bytearray()
        self._feed_inline(data[offset:], frames)

    def _feed_inline(self, data: bytes, frames: list[list[bytes]]) -> None:
        if self.inline:
            # a line trickled in: grow it in place until its newline comes, so a slow
            # client costs each byte once, not the whole line again for every read
            if data.find(b"\n") < 0:
                self.inline += data
                if len(self.inline) > MAX_INLINE:
                    raise ProtocolError("too big inline request")
                return
            buffer = bytes(self.inline) + data
        else:
            buffer = data
        pos = 0
        while True:
            if buffer[pos : pos + 1] == b"*":
                self.inline = None
                self._feed(buffer[pos:], frames)
                return
            newline = buffer.find(b"\n", pos)
            if newline < 0:
                if len(buffer) - pos > MAX_INLINE:
                    raise ProtocolError("too big inline request")
                self.inline = bytearray(buffer[pos:])
                return
            # every complete line up to the last, or up to one that starts a RESP
            # request, split at once: a pipeline of inline commands costs per line
            last = buffer.rfind(b"\n", newline)
            star = buffer.find(b"\n*", newline - 1, last)
            stop = last if star < 0 else star
            for line in buffer[pos:stop].split(b"\n"):
                if len(line) > MAX_INLINE:
                    raise ProtocolError("too big inline request")
                if b'"' in line or b"'" in line:
                    args = split_args(line.rstrip(b"\r"))
                else:
                    args = line.split()
                if args:
                    frames.append(args)
            pos = stop + 1
            if pos == len(buffer):
                self.inline = None
                return


_ESCAPES = {ord("n"): b"\n", ord("r"): b"\r", ord("t"): b"\t", ord("b"): b"\b", ord("a"): b"\a"}


def split_args(line: bytes) -> list[bytes]:
    """Redis' sdssplitargs: words, "double quoted" with escapes, 'single quoted'."""
    if b'"' not in line and b"'" not in line:
        return line.split()  # no quotes: words between the same ASCII spaces
    args: list[bytes] = []
    i, end = 0, len(line)
    while True:
        while i < end and line[i] in b" \t\n\r\v\f":
            i += 1
        if i >= end:
            return args
        word = bytearray()
        quote = 0
        while True:
            if i >= end:
                if quote:
                    raise ProtocolError("unbalanced quotes in request")
                break
            c = line[i]
            if quote == 0x22:  # inside "..."
                hex_escape = c == 0x5C and i + 3 < end and line[i + 1] == 0x78
                if hex_escape and _is_hex(line[i + 2 : i + 4]):
                    word.append(int(line[i + 2 : i + 4], 16))
                    i += 3
                elif c == 0x5C and i + 1 < end:
                    i += 1
                    word += _ESCAPES.get(line[i], bytes([line[i]]))
                elif c == 0x22:
                    if i + 1 < end and line[i + 1] not in b" \t\n\r\v\f":
                        raise ProtocolError("unbalanced quotes in request")
                    i += 1
                    break
                else:
                    word.append(c)
            elif quote == 0x27:  # inside '...'
                if c == 0x5C and i + 1 < end and line[i + 1] == 0x27:
                    i += 1
                    word.append(0x27)
                elif c == 0x27:
                    if i + 1 < end and line[i + 1] not in b" \t\n\r\v\f":
                        raise ProtocolError("unbalanced quotes in request")
                    i += 1
                    break
                else:
                    word.append(c)
            elif c in b" \t\n\r\v\f":
                break
            elif c == 0x22 or c == 0x27:
                quote = c
            else:
                word.append(c)
            i += 1
        args.append(bytes(word))


def _is_hex(pair: bytes) -> bool:
    return len(pair) == 2 and all(ch in b"0123456789abcdefABCDEF" for ch in pair)
