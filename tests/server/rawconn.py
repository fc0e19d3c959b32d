"""A raw socket to a server: send bytes, read exact replies, see when it closes."""

from __future__ import annotations

import socket
import time

import hiredis


def resp(*args: bytes | str) -> bytes:
    """One command as RESP."""
    return hiredis.pack_command(tuple(args))


class RawConn:
    def __init__(self, port: int, timeout: float = 10.0) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buffer = b""
        self.timeout = timeout

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def _fill(self, deadline: float) -> bool:
        """Read more into the buffer; False at EOF."""
        self.sock.settimeout(max(deadline - time.monotonic(), 0.001))
        chunk = self.sock.recv(1 << 20)
        if not chunk:
            return False
        self.buffer += chunk
        return True

    def read_exact(self, size: int) -> bytes:
        deadline = time.monotonic() + self.timeout
        while len(self.buffer) < size:
            if not self._fill(deadline):
                raise EOFError(f"closed after {self.buffer!r}")
        data, self.buffer = self.buffer[:size], self.buffer[size:]
        return data

    def expect(self, expected: bytes) -> None:
        got = self.read_exact(len(expected))
        assert got == expected, f"expected {expected[:300]!r}, got {got[:300]!r}"

    def read_line(self) -> bytes:
        deadline = time.monotonic() + self.timeout
        while b"\r\n" not in self.buffer:
            if not self._fill(deadline):
                raise EOFError(f"closed after {self.buffer!r}")
        line, _, self.buffer = self.buffer.partition(b"\r\n")
        return line + b"\r\n"

    def replies(self, count: int) -> list[object]:
        """``count`` parsed replies (hiredis; errors come back as ReplyError objects)."""
        reader = hiredis.Reader()
        reader.feed(self.buffer)
        self.buffer = b""
        out: list[object] = []
        deadline = time.monotonic() + self.timeout
        while len(out) < count:
            reply = reader.gets()
            if reply is not False:
                out.append(reply)
                continue
            self.sock.settimeout(max(deadline - time.monotonic(), 0.001))
            chunk = self.sock.recv(1 << 20)
            if not chunk:
                raise EOFError(f"closed after {len(out)} replies")
            reader.feed(chunk)
        return out

    def read_reply_bytes(self) -> bytes:
        """The exact bytes of the one reply the server owes (nothing else may be
        pending: send one command, read its reply, and so on)."""
        more = object()
        deadline = time.monotonic() + self.timeout
        while True:
            reader = hiredis.Reader(notEnoughData=more)
            reader.feed(self.buffer)
            if self.buffer and reader.gets() is not more:
                data, self.buffer = self.buffer, b""
                return data
            if not self._fill(deadline):
                raise EOFError(f"closed after {self.buffer!r}")

    def closed_after(self, timeout: float = 5.0) -> bytes:
        """Everything the server sends until it closes; fails if it stays open."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                if not self._fill(deadline):
                    data, self.buffer = self.buffer, b""
                    return data
            except TimeoutError:
                raise AssertionError(
                    f"connection still open after {timeout}s; got {self.buffer!r}"
                ) from None
            except ConnectionResetError:
                data, self.buffer = self.buffer, b""
                return data

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> RawConn:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
