"""Start and stop real respkv processes on 127.0.0.1 for tests.

Every process is started here and stopped by its own PID; waiting is done on
conditions with deadlines, never with bare sleeps.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import redis

ROOT = Path(__file__).resolve().parent.parent


def wait_for(condition: Callable[[], object], timeout: float = 10.0, what: str = "condition",
             interval: float = 0.02) -> object:
    """Poll ``condition`` until it returns something truthy; fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        try:
            value = condition()
            if value:
                return value
        except Exception as error:  # the condition may fail until it holds
            last_error = error
        time.sleep(interval)
    raise TimeoutError(f"timed out after {timeout}s waiting for {what}: {last_error!r}")


def _port_free(port: int) -> bool:
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


_next_port = [20000 + (os.getpid() * 37) % 9000]


def free_port() -> int:
    """A client port whose raft port (port + 10000) is free too."""
    while True:
        _next_port[0] += 1
        if _next_port[0] > 29990:
            _next_port[0] = 20000
        port = _next_port[0]
        if _port_free(port) and _port_free(port + 10000):
            return port


@dataclass
class Node:
    port: int
    dir: Path
    args: list[str] = field(default_factory=list)
    proc: subprocess.Popen | None = None
    log_path: Path | None = None

    @property
    def raft_port(self) -> int:
        return self.port + 10000

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def command(self) -> list[str]:
        return [sys.executable, "-m", "respkv.cli", "server", "--port", str(self.port),
                "--dir", str(self.dir), *self.args]

    def start(self, wait: bool = True) -> Node:
        self.dir.mkdir(parents=True, exist_ok=True)
        self.log_path = self.dir.parent / f"{self.dir.name}.log"
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(self.command(), stdout=log, stderr=subprocess.STDOUT,
                                         cwd=ROOT)
        if wait:
            self.wait_ready()
        return self

    def wait_ready(self, timeout: float = 15.0) -> None:
        def ready() -> bool:
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(f"node exited with {self.proc.returncode}:\n{self.log()}")
            return self.client(socket_timeout=1).ping()

        try:
            wait_for(ready, timeout, f"node on port {self.port}")
        except RuntimeError as error:
            raise AssertionError(str(error)) from None

    def client(self, **kwargs) -> redis.Redis:
        kwargs.setdefault("socket_timeout", 10)
        return redis.Redis(host="127.0.0.1", port=self.port, **kwargs)

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 15.0) -> int | None:
        """Signal the process and wait for it; returns its exit code."""
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else None
        self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError(f"node {self.port} did not exit after signal {sig}") from None

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path else ""
