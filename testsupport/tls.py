"""Certificates for TLS tests, the fault suite and benchmarks, made on the spot (trustme).

``make_certs(dir)`` writes a CA and one certificate (server and client use, for
127.0.0.1 and localhost) signed by it; ``node_args`` are the respkv flags that use
them; ``client_kwargs`` the redis-py arguments of a client that trusts the CA and
presents the certificate. ``TlsCluster`` is a test cluster whose nodes have TLS
ports, and mutual TLS between them.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import redis
import trustme

from testsupport.ports import free_ports
from testsupport.processes import Cluster, Node


@dataclass(frozen=True)
class Certs:
    ca: Path  # the CA's certificate
    cert: Path  # a certificate it signed, for 127.0.0.1 and localhost
    key: Path

    def node_args(self, tls_port: int = 0, auth_clients: str = "yes",
                  cluster: bool = False) -> list[str]:
        """respkv flags: this certificate, this CA; a TLS port, and/or mutual TLS on
        the Raft port."""
        args = ["--tls-cert-file", str(self.cert), "--tls-key-file", str(self.key),
                "--tls-ca-cert-file", str(self.ca), "--tls-auth-clients", auth_clients]
        if tls_port:
            args += ["--tls-port", str(tls_port)]
        if cluster:
            args.append("--tls-cluster")
        return args

    def client_kwargs(self, with_cert: bool = True) -> dict[str, object]:
        """redis-py's arguments for a client that trusts the CA (and shows the cert)."""
        return {"ssl": True, **self.ssl_kwargs(with_cert)}

    def ssl_kwargs(self, with_cert: bool = True) -> dict[str, object]:
        """The same for a redis.SSLConnection."""
        kwargs: dict[str, object] = {"ssl_ca_certs": str(self.ca)}
        if with_cert:
            kwargs.update(ssl_certfile=str(self.cert), ssl_keyfile=str(self.key))
        return kwargs

    def cli_args(self, with_cert: bool = True) -> list[str]:
        """redis-cli / redis-benchmark's TLS flags."""
        args = ["--tls", "--cacert", str(self.ca)]
        if with_cert:
            args += ["--cert", str(self.cert), "--key", str(self.key)]
        return args

    def client(self, port: int, with_cert: bool = True, **kwargs: object) -> redis.Redis:
        kwargs.setdefault("socket_timeout", 10)
        return redis.Redis(host="127.0.0.1", port=port, **self.client_kwargs(with_cert),
                           **kwargs)


def make_certs(directory: Path) -> Certs:
    """A new CA, and a certificate it signs, as PEM files in ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    ca = trustme.CA()
    issued = ca.issue_cert("127.0.0.1", "localhost")
    certs = Certs(directory / "ca.crt", directory / "node.crt", directory / "node.key")
    ca.cert_pem.write_to_path(str(certs.ca))
    issued.cert_chain_pems[0].write_to_path(str(certs.cert))
    issued.private_key_pem.write_to_path(str(certs.key))
    return certs


class TlsCluster(Cluster):
    """A ``Cluster`` whose nodes also have a TLS client port each (``tls_ports`` by node
    id), with mutual TLS on their Raft ports unless ``raft_tls`` is False."""

    def __init__(self, base: Path, certs: Certs, size: int = 3,
                 args: list[str] | tuple[str, ...] = (), shards: int = 1,
                 raft_tls: bool = True) -> None:
        super().__init__(base, size, [*certs.node_args(cluster=raft_tls), *args], shards)
        self.certs = certs
        self.tls_ports: dict[str, int] = {}

    def new_node(self, node_id: str, join: Node | None = None, dir_name: str | None = None,
                 args: list[str] | tuple[str, ...] = ()) -> Node:
        port = free_ports(1)[0]
        self.tls_ports[node_id] = port
        return super().new_node(node_id, join, dir_name, [*args, "--tls-port", str(port)])

    def tls_client(self, node_id: str, **kwargs: object) -> redis.Redis:
        return self.certs.client(self.tls_ports[node_id], **kwargs)
