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


def frame_size(frame: list, max_bulk: int, data: bytes = b"", start: int = -1) -> int:
    """Bytes a request array took on the wire; rejects elements that are not bulks
    and bulks longer than ``max_bulk`` (hiredis parses whole frames unchecked). With
    the frame's ``data`` and ``start``, also that each element starts with "$":
    hiredis returns a simple string ("+OK") as bytes, as it returns a bulk."""
    count = len(frame)
    size = 4 if count < 10 else 3 + len(str(count))
    end = len(data) - start if start >= 0 else 0  # 0: not checked
    for arg in frame:
        if type(arg) is not bytes:
            raise ProtocolError("expected '$'")
        if end and (size >= end or data[start + size] != 0x24):
            raise ProtocolError("expected '$'")
        n = len(arg)
        if n > max_bulk:
            raise ProtocolError("invalid bulk length")
        size += n + (6 if n < 10 else 7 if n < 100 else 5 + len(str(n)))
    return size


class FrameGuard:
    """Walks the headers of one incomplete request frame, checking Redis' limits."""

    __slots__ = ("consumed", "count", "elements", "line", "max_bulk", "skip", "started")

    def __init__(self, max_bulk: int) -> None:
        self.max_bulk = max_bulk
        self.consumed = 0  # bytes of this frame seen so far
        self.line = b""  # a header line not yet ended by \r\n
        self.elements = -1  # bulks still expected; -1 before the array header
        self.count = 0  # the array header's count, once read
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
        # a header ends with one \r\n: Redis reads to the \r, hiredis to the \r\n
        ended = line[-1:] == b"\r"
        line = line[:-1]
        if self.elements < 0:
            count = _parse_len(line[1:]) if ended else None
            if count is None or count > MAX_MULTIBULK:
                raise ProtocolError("invalid multibulk length")
            self.count = count
            self.elements = max(count, 0)  # "*-1", "*0", "*-5": empty requests
            return
        if line[:1] != b"$":
            got = line[:1].decode("utf-8", "surrogateescape")  # sent back as the byte it is
            raise ProtocolError(f"expected '$', got '{got}'")
        size = _parse_len(line[1:]) if ended else None
        if size is None or size < 0 or size > self.max_bulk:
            raise ProtocolError("invalid bulk length")
        self.elements -= 1
        self.skip = size + 2


# An aggregate header with a count of a million or more: inside a request it is an
# error anyway, and hiredis would allocate the whole array (8 bytes an element) as
# soon as it parsed it. Not only at the start of a line: hiredis does not check the
# two bytes after a bulk ("$1\r\naXY*99999999" is read as a second element).
_BIG_NESTED = re.compile(rb"[*%~>|][0-9]{7}")


def check_frames(data: bytes, pos: int, max_bulk: int) -> tuple[int, ProtocolError] | None:
    """Walk the headers of the frames in ``data`` from ``pos``: where the first bad
    one starts and its error, or None."""
    while data[pos : pos + 1] == b"*":
        try:
            done = FrameGuard(max_bulk).scan(data, pos)
        except ProtocolError as error:
            return pos, error
        if done is None:
            return None
        pos = done
    return None


def check_array_header(data: bytes, offset: int) -> None:
    """Refuse a request array header ``*N`` beyond Redis' limit before hiredis sees it."""
    if data[offset : offset + 1] != b"*":
        return
    newline = data.find(b"\n", offset, offset + MAX_HEADER)
    if newline < 0:
        return  # incomplete: the FrameGuard checks it once the line is complete
    count = _parse_len(data[offset + 1 : newline - 1]) if data[newline - 1] == 0x0D else None
    if count is None or count > MAX_MULTIBULK:
        raise ProtocolError("invalid multibulk length")


def _parse_len(raw: bytes) -> int | None:
    """A length as Redis' string2ll reads it: digits, an optional minus, nothing else
    (int() would also take '+3', ' 3' and '3_0', which hiredis and Redis refuse)."""
    digits = raw[1:] if raw[:1] == b"-" else raw
    if not digits.isdigit() or len(digits) > 18:
        return None
    if digits[0] == 0x30 and (len(digits) > 1 or digits is not raw):
        return None  # "01", "-0": string2ll reads only the shortest form
    return int(raw)


class RequestParser:
    """Turns bytes from one client into argument lists."""

    def __init__(self, max_bulk: int = 512 * 1024 * 1024) -> None:
        self.max_bulk = max_bulk
        self.reader = hiredis.Reader()
        self.guard: FrameGuard | None = None  # set while a RESP frame is incomplete
        # set while an inline line is incomplete: its bytes so far
        self.inline: bytearray | None = None
        # hiredis refused a frame at a header line that has not ended yet: Redis waits
        # for the end of that line to say what is wrong with it, and so do we
        self.refused: FrameGuard | None = None

        self.completed = 0  # the size of a request the last feed completed, begun earlier

    @property
    def pending(self) -> int:
        """Bytes of a request received but not complete yet (one waiting for the end
        of its bad header line too: Redis holds those in its query buffer)."""
        guard = self.guard or self.refused
        if guard is not None:
            return guard.consumed
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
        if self.refused is not None:
            self.refused.scan(data)
            self._await_refusal(self.refused)
            return
        if self.inline is not None:
            self._feed_inline(data, frames)
            return
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
            if done is not None and self.guard.count < 0:
                # "*-5" begun in an earlier read: ignored, as above; hiredis must not see it
                self.guard = None
                self.reader = hiredis.Reader()
                self._feed(data[done:], frames)
                return
        bad = check_frames(data, first, self.max_bulk) if _BIG_NESTED.search(data, first) else None
        if bad is not None:
            data = data[: bad[0]]  # the requests before the bad one run, as in Redis
        self._parse(data, frames, offset, scanned)
        if bad is not None:
            self.reader = hiredis.Reader()
            raise bad[1]

    def _parse(self, data: bytes, frames: list[list[bytes]], offset: int,
               scanned: bool) -> None:
        reader = self.reader
        reader.feed(data)
        end = len(data)
        try:
            while True:
                if 0 <= offset < end:
                    if data[offset] != 0x2A:  # not "*": inline, which hiredis must not
                        frame = None  # parse (it would build a "%1" map, a "*N" in it...)
                        break
                    if data[offset + 2 : offset + 4] != b"\r\n":  # not "*N" with N < 10
                        negative = data[offset + 1 : offset + 2] == b"-"
                        newline = data.find(b"\n", offset) if negative else -1
                        check_array_header(data, offset)  # "*-0", "*-x", N too big: refused
                        if newline > 0:
                            # "*-1", "*-5": Redis ignores a request of no arguments;
                            # hiredis refuses all but "*-1", so it is restarted past it
                            offset = newline + 1
                            reader = self.reader = hiredis.Reader()
                            reader.feed(data[offset:])
                            continue
                frame = reader.gets()
                if frame is False:
                    break
                if type(frame) is not list:
                    break  # a top-level non-array: Redis reads that as inline
                start = offset
                try:
                    offset += frame_size(frame, self.max_bulk, data, start)
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
        except (hiredis.ProtocolError, TypeError):  # TypeError: a map keyed by a list
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
        if self.guard is not None:  # the frame began earlier: the guard has seen data
            self._await_refusal(self.guard)
            return
        if data[offset : offset + 1] == b"*":
            guard = FrameGuard(self.max_bulk)
            guard.scan(data, offset)  # raises Redis' error when the bad line is complete
            self._await_refusal(guard)
            return
        self.inline = bytearray()
        self._feed_inline(data[offset:], frames)

    def _await_refusal(self, guard: FrameGuard) -> None:
        """hiredis refused the frame ``guard`` walks: wait for the guard to say why (it
        raises Redis' error once the bad header line has ended), unless it is not in
        the middle of a header line, where Redis' own reasons differ from hiredis'."""
        self.guard = None
        if guard.skip or not guard.line:
            raise ProtocolError("invalid multibulk length")
        self.refused = guard

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
            # (the "\n*" searched from ``newline`` itself: from ``newline - 1`` a line
            # ending at 0 searched from -1, the end, and missed the request after it)
            last = buffer.rfind(b"\n", newline)
            star = buffer.find(b"\n*", newline, last)
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
