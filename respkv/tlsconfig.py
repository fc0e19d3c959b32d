"""The TLS contexts a node uses, built from Redis' tls-* directives with stdlib ssl.

Three uses: the client listener (tls-port), which asks for a client certificate as
tls-auth-clients says; the Raft port under tls-cluster, where both ends present the
node's certificate and verify the other's against the CA; and the node's own calls to
other nodes' client ports under tls-replication (joining, forwarded membership
changes), which present the node's certificate as a client certificate.

Peer certificates are checked against the CA only, not against a host name, as
Redis does: a node is known by its certificate's issuer, and on the Raft port by the
cluster secret proved on top (respkv.replication.peerauth).
"""

from __future__ import annotations

import os
import ssl
from dataclasses import dataclass

AUTH_CLIENTS = {"yes": ssl.CERT_REQUIRED, "optional": ssl.CERT_OPTIONAL, "no": ssl.CERT_NONE}
_PROTOCOLS = {"tlsv1.2": ssl.TLSVersion.TLSv1_2, "tlsv1.3": ssl.TLSVersion.TLSv1_3}


class TlsError(ValueError):
    """A certificate, key or CA that cannot be loaded, or a bad tls-* value."""


@dataclass(frozen=True, slots=True)
class PeerTls:
    """Both ends of mutual TLS between nodes: accepting, and dialing."""

    server: ssl.SSLContext
    client: ssl.SSLContext


@dataclass(frozen=True, slots=True)
class TlsFiles:
    cert: str
    key: str
    ca_file: str = ""
    ca_dir: str = ""
    protocols: str = ""  # "TLSv1.2 TLSv1.3"; empty: TLSv1.2 and up
    ciphers: str = ""  # OpenSSL cipher list for TLSv1.2; empty: OpenSSL's default

    def server_context(self, auth_clients: str = "yes") -> ssl.SSLContext:
        """For a listener: our certificate; a client certificate required, verified if
        given, or not asked for (tls-auth-clients yes, optional, no)."""
        context = self._context(ssl.PROTOCOL_TLS_SERVER)
        context.verify_mode = AUTH_CLIENTS[auth_clients]
        if context.verify_mode != ssl.CERT_NONE:
            self._load_ca(context)
        return context

    def client_context(self) -> ssl.SSLContext:
        """For dialing another node: our certificate, theirs verified against the CA."""
        context = self._context(ssl.PROTOCOL_TLS_CLIENT)
        context.check_hostname = False  # the CA is the check, as in Redis
        context.verify_mode = ssl.CERT_REQUIRED
        self._load_ca(context)
        return context

    def peer_contexts(self) -> PeerTls:
        """For the Raft port: each end presents our certificate and requires the other's."""
        return PeerTls(self.server_context("yes"), self.client_context())

    def _context(self, protocol: int) -> ssl.SSLContext:
        context = ssl.SSLContext(protocol)
        low, high = protocol_range(self.protocols)
        context.minimum_version, context.maximum_version = low, high
        if self.ciphers:
            try:
                context.set_ciphers(self.ciphers)
            except ssl.SSLError:
                raise TlsError(f"tls-ciphers: no cipher matches {self.ciphers!r}") from None
        for directive, path in (("tls-cert-file", self.cert), ("tls-key-file", self.key)):
            if not os.path.isfile(path):
                raise TlsError(f"{directive} {path}: no such file")
        try:
            context.load_cert_chain(self.cert, self.key)
        except (OSError, ssl.SSLError) as error:
            raise TlsError(f"cannot load tls-cert-file {self.cert} with tls-key-file "
                           f"{self.key}: {error}") from None
        return context

    def _load_ca(self, context: ssl.SSLContext) -> None:
        if self.ca_file and not os.path.isfile(self.ca_file):
            raise TlsError(f"tls-ca-cert-file {self.ca_file}: no such file")
        if self.ca_dir and not os.path.isdir(self.ca_dir):
            raise TlsError(f"tls-ca-cert-dir {self.ca_dir}: no such directory")
        try:
            context.load_verify_locations(cafile=self.ca_file or None,
                                          capath=self.ca_dir or None)
        except (OSError, ssl.SSLError) as error:
            raise TlsError(f"cannot load tls-ca-cert-file/tls-ca-cert-dir: {error}") from None


def protocol_range(text: str) -> tuple[ssl.TLSVersion, ssl.TLSVersion]:
    """tls-protocols ("TLSv1.2 TLSv1.3", any case) as the lowest and highest version."""
    names = text.lower().split()
    if not names:
        return ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.MAXIMUM_SUPPORTED
    unknown = [name for name in names if name not in _PROTOCOLS]
    if unknown:
        raise TlsError(f"tls-protocols: unsupported {unknown[0]!r} (TLSv1.2, TLSv1.3)")
    versions = sorted(_PROTOCOLS[name] for name in names)
    return versions[0], versions[-1]
