"""A client on the TLS port (tls-port): the same connection, marked as on TLS, and
sent to the other nodes' TLS ports.

A -MOVED reply names the leader's plain client address wherever it is made (the
router, transactions, scripts, blocked pops, a write lost to an election). A TLS
connection's replies all pass through ``_write``, so that is where such a reply is
made to name the leader's TLS address instead, as Redis sends a TLS client to TLS
ports. A leader whose TLS address is not known keeps its plain one.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from respkv.server.client import Client, ClientHost

_MOVED = b"-MOVED "


class TlsClientHost(ClientHost, Protocol):
    def tls_address_of(self, client_address: str) -> str | None:
        """The TLS address of the node at this plain client address, if it has one."""


class TlsClient(Client):
    tls = True
    host: TlsClientHost

    def _write(self, out: list[bytes]) -> None:
        for i, reply in enumerate(out):
            if reply.startswith(_MOVED):
                out[i] = moved_to_tls(reply, self.host.tls_address_of)
        super()._write(out)


def moved_to_tls(reply: bytes, tls_address_of: Callable[[str], str | None]) -> bytes:
    """``-MOVED <slot> <host:port>`` with the TLS address of the node it names."""
    head, _, address = reply.rstrip(b"\r\n").rpartition(b" ")
    tls = tls_address_of(address.decode("utf-8", "replace"))
    return reply if tls is None else b"%s %s\r\n" % (head, tls.encode())
