"""Free ports on 127.0.0.1 for the nodes that tests, benchmarks and the fault suite start.

Every port handed out here lies outside Linux's ephemeral range (32768-60999 by
default): connect() never takes one of those as its local port, so a port found
free here is still free when the node binds it. A port from bind(0) is
ephemeral: any outgoing connection of any process could take it in between
("address already in use").
"""

from __future__ import annotations

import os
import socket

# Ports above the ephemeral range, for free_ports().
_HIGH = range(61000, 65500)
_next_high = [_HIGH.start + (os.getpid() * 53) % len(_HIGH)]

# Client ports 10000-19989, so that their raft ports (port + 10000) stay below 30000.
_CLIENT = range(10000, 19990)
_next_client = [_CLIENT.start + (os.getpid() * 37) % 9000]


def port_free(port: int) -> bool:
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_ports(count: int) -> list[int]:
    """``count`` distinct ports free right now; successive calls of one process do not
    hand out the same port twice until the range wraps."""
    ports: list[int] = []
    for _ in range(len(_HIGH)):
        _next_high[0] = _HIGH.start + (_next_high[0] + 1 - _HIGH.start) % len(_HIGH)
        if port_free(_next_high[0]):
            ports.append(_next_high[0])
            if len(ports) == count:
                return ports
    raise RuntimeError(f"fewer than {count} free ports in {_HIGH}")


def free_port() -> int:
    """A client port whose default raft port (port + 10000) is free too."""
    for _ in range(len(_CLIENT)):
        _next_client[0] = _CLIENT.start + (_next_client[0] + 1 - _CLIENT.start) % len(_CLIENT)
        port = _next_client[0]
        if port_free(port) and port_free(port + 10000):
            return port
    raise RuntimeError(f"no free client port in {_CLIENT}")
