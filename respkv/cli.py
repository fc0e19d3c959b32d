"""The ``respkv`` command."""

from __future__ import annotations

import asyncio
import logging
import os
import sys
from pathlib import Path

import click

from respkv import logs
from respkv.config import READ_MODES, Config, ConfigError

logger = logging.getLogger("respkv")


def run_async(main) -> None:
    try:
        import uvloop
    except ImportError:
        asyncio.run(main)
    else:
        uvloop.run(main)


@click.group()
@click.version_option(package_name="respkv")
def main() -> None:
    """respkv: a Redis-protocol key-value server replicated with Raft."""


@main.command()
@click.argument("config_file", required=False, type=click.Path(exists=True, dir_okay=False))
@click.option("--node-id", help="This node's id (default: n<port>).")
@click.option("--bind", help="Address to listen on (default 127.0.0.1).")
@click.option("--port", type=int, help="Client (RESP) port (default 6379).")
@click.option("--raft-port", type=int, help="Raft port (default: port + 10000).")
@click.option("--raft-bind", help="Address the Raft port listens on (default 127.0.0.1, "
              "whatever --bind says).")
@click.option("--dir", "dir_", help="Data directory (default: current directory).")
@click.option("--join", help="host:port of a member of the cluster to join.")
@click.option("--join-token", help="The cluster's join token (CLUSTER TOKEN prints it); "
              "with --bootstrap: the token of the cluster this first node bootstraps.")
@click.option("--bootstrap", is_flag=True, default=None,
              help="On an empty dir, without --join: bootstrap the cluster --join-token "
              "names (its first node's first start only; ignored once the dir has data).")
@click.option("--force-new-cluster", is_flag=True, default=None,
              help="After a lost quorum: make this survivor the only member of every group, "
              "its whole log committed (read the README's 'Losing a quorum' first).")
@click.option("--advertise", help="host:port told to clients (MOVED, CLUSTER SLOTS).")
@click.option("--raft-advertise", help="host:port told to peers.")
@click.option("--log-level", type=click.Choice(["debug", "info", "warning", "error"]))
@click.option("--log-format", type=click.Choice(["text", "json"]))
@click.option("--maxclients", type=int)
@click.option("--timeout", type=int, help="Close clients idle this many seconds (0: never).")
@click.option("--metrics-port", type=int, help="Serve Prometheus metrics here (0: off).")
@click.option("--read-consistency", type=click.Choice([*READ_MODES, "lease"]),
              help="linearizable (default: the leader's lease, else a ReadIndex round), "
              "strict (a round for every batch of reads) or stale; lease = linearizable.")
@click.option("--shards", type=int,
              help="Raft groups of a new cluster (default 3; a joining node takes the cluster's).")
@click.option("--tls-port", type=int, help="TLS client port (0: none; --port 0 leaves only it).")
@click.option("--tls-cert-file", help="This node's certificate (PEM).")
@click.option("--tls-key-file", help="Its private key (PEM).")
@click.option("--tls-ca-cert-file", help="The CA that client and peer certificates must have.")
@click.option("--tls-auth-clients", type=click.Choice(["yes", "no", "optional"]),
              help="Client certificates on the TLS port: required (default), checked if "
              "given, or not asked for.")
@click.option("--tls-cluster", is_flag=True, default=None,
              help="Mutual TLS on the Raft port (every node of the cluster needs it).")
@click.option("--set", "extra", multiple=True, metavar="NAME=VALUE",
              help="Any other directive, as in the config file.")
@click.option("--repair-wal", is_flag=True,
              help="Before starting, cut a Raft log damaged before its end at the first bad "
              "record (the rest is moved aside, not deleted); the node catches up from the "
              "leaders. Safe only while the other members hold a quorum without this node.")
def server(config_file: str | None, dir_: str | None, extra: tuple[str, ...],
           repair_wal: bool, **flags) -> None:
    """Run a node, like redis-server: CONFIG_FILE, then flags, win in that order."""
    flags["dir"] = dir_
    try:
        settings = [(name, value) for name, _, value in (item.partition("=") for item in extra)]
        config = Config.load(config_file, flags, settings)
    except (ConfigError, OSError, ValueError) as error:
        raise click.UsageError(str(error)) from None
    logs.setup(config.node_id, config.log_level, config.log_format)
    from respkv.gcpolicy import POLICY
    from respkv.replication import damage
    from respkv.replication.identity import NodeRefused
    from respkv.server.server import DirectoryLocked, Server
    from respkv.storage.files import CorruptFileError
    from respkv.storage.repair import RepairRefused
    from respkv.storage.store import StoreFormatError
    from respkv.storage.wal import CorruptLogError
    from respkv.tlsconfig import TlsError

    POLICY.install()
    try:
        if repair_wal:
            _repair_wal(config.data_dir)
        run_async(Server(config).serve())
    except (DirectoryLocked, NodeRefused, TlsError) as error:
        logger.error("%s", error)
        sys.exit(1)
    except (CorruptLogError, RepairRefused, StoreFormatError, CorruptFileError) as error:
        logger.error("cannot start: %s", damage.advice(error, config.data_dir))
        logger.debug("details", exc_info=True)
        sys.exit(1)
    except OSError as error:
        logger.error("cannot start: %s", error)
        sys.exit(1)


def _repair_wal(data_dir: Path) -> None:
    """--repair-wal: under the dir's lock, so a running node's log is never cut."""
    from respkv.replication import damage
    from respkv.server.server import lock_directory

    fd = lock_directory(data_dir)
    try:
        result = damage.repair(data_dir)
    finally:
        os.close(fd)
    if result.damage is None:
        logger.info("--repair-wal: the log has no damage; starting as usual")


@main.command()
@click.option("--nodes", type=int, default=3, show_default=True, help="How many nodes.")
@click.option("--base-port", type=int, default=7001, show_default=True,
              help="Client port of the first node; the others follow it.")
@click.option("--dir", "dir_", default="data", show_default=True,
              help="Parent of the nodes' data directories.")
@click.option("--shards", type=int, default=3, show_default=True,
              help="Raft groups the slots are spread over.")
@click.option("--log-level", default="info", show_default=True)
@click.option("--metrics-port", type=int, default=0, show_default=True,
              help="Prometheus metrics of the first node here, the others following it "
              "(0: off).")
def local(nodes: int, base_port: int, dir_: str, shards: int, log_level: str,
          metrics_port: int) -> None:
    """Start a local cluster on 127.0.0.1; Ctrl-C stops every node cleanly."""
    import signal
    import subprocess

    procs: list[subprocess.Popen] = []
    seed = f"127.0.0.1:{base_port}"
    token = _local_token(Path(dir_))
    # --bootstrap only for a cluster none of whose nodes has started yet: a first node
    # whose dir alone was lost must be replaced, not bootstrap a copy of the cluster
    fresh = not any((Path(dir_) / f"n{i + 1}" / "node.json").exists() for i in range(nodes))
    for i in range(nodes):
        port = base_port + i
        command = [sys.executable, "-m", "respkv.cli", "server", "--node-id", f"n{i + 1}",
                   "--port", str(port), "--dir", f"{dir_}/n{i + 1}", "--log-level", log_level,
                   "--shards", str(shards), "--join-token", token]
        if i > 0:
            command += ["--join", seed]
        elif fresh:
            command += ["--bootstrap"]
        if metrics_port:
            command += ["--metrics-port", str(metrics_port + i)]
        # Own sessions: a signal reaches a node only through us, once (Ctrl-C in a
        # terminal would otherwise reach it twice, and a second signal means "now").
        procs.append(subprocess.Popen(command, start_new_session=True))
        metrics = (f", metrics http://127.0.0.1:{metrics_port + i}/metrics"
                   if metrics_port else "")
        click.echo(f"node n{i + 1}: redis-cli -p {port}   (raft port {port + 10000}{metrics})")

    def stop(*_: object) -> None:  # Ctrl-C, kill -INT/-TERM/-HUP of this process
        for proc in procs:
            if proc.poll() is None:
                proc.terminate()  # SIGTERM: the node hands over and stops in order

    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, stop)
    if not _all_ready(procs, [base_port + i for i in range(nodes)]):
        click.echo("a node failed to start (see its log above); stopping the others", err=True)
        for proc in procs:
            if proc.poll() is None:
                proc.terminate()
        for proc in procs:
            proc.wait()
        sys.exit(1)
    click.echo(f"cluster of {nodes} on 127.0.0.1:{base_port}..{base_port + nodes - 1}; "
               f"try: redis-cli -c -p {base_port} set hello world; Ctrl-C stops it")
    codes = [p.wait() for p in procs]
    sys.exit(max(codes) if any(codes) else 0)


@main.command("rotate-secret")
@click.option("--via", required=True, metavar="HOST:PORT",
              help="Client port of any member: the nodes are those its CLUSTER NODES lists.")
@click.option("--password", default="", envvar="REDISCLI_AUTH",
              help="The nodes' requirepass (default: $REDISCLI_AUTH, as redis-cli).")
def rotate_secret(via: str, password: str) -> None:
    """Rotate the cluster secret: every node accepts a new one, then proves with it, then
    drops the old one. Stops, saying where and how to go on, if a node fails."""
    from respkv.replication.rotation import Rotation, RotationFailed

    try:
        asyncio.run(Rotation(via, password, report=click.echo).run())
    except RotationFailed as error:
        click.echo(f"rotate-secret: {error}", err=True)
        sys.exit(1)


@main.group()
def member() -> None:
    """The cluster's members, as an operator replaces one (README "Replacing a node")."""


_VIA = click.option("--via", required=True, metavar="HOST:PORT",
                    help="Client port of any member.")
_PASSWORD = click.option("--password", default="", envvar="REDISCLI_AUTH",
                         help="The nodes' requirepass (default: $REDISCLI_AUTH, as redis-cli).")


def _ask(via: str, password: str, *args: str) -> object:
    """One command on ``via``; its reply, or exit with its error."""
    import hiredis

    from respkv.replication.rpc import command

    try:
        reply = asyncio.run(command(via, [a.encode() for a in args], password))
    except (OSError, TimeoutError) as error:
        raise click.ClickException(f"cannot reach {via}: {error}") from None
    if isinstance(reply, hiredis.ReplyError):
        raise click.ClickException(f"{via}: {reply}")
    return reply


@member.command("list")
@_VIA
@_PASSWORD
def member_list(via: str, password: str) -> None:
    """Each group's voters and learners, and its leader, as that node sees them."""
    text = _ask(via, password, "INFO", "raft")
    assert isinstance(text, bytes)
    for line in text.decode().splitlines():
        name, _, value = line.partition(":")
        if not name.startswith("raft_group_"):
            continue
        group = name[len("raft_group_"):]
        fields = dict(part.split("=", 1) for part in value.split(",") if "=" in part)
        click.echo(f"{group}: leader={fields.get('leader') or '-'} "
                   f"voters={fields.get('voters', '').replace('|', ',')} "
                   f"learners={fields.get('learners', '').replace('|', ',') or '-'} "
                   f"commit_index={fields.get('commit_index')}")


@member.command("remove")
@click.argument("node_id")
@_VIA
@_PASSWORD
def member_remove(node_id: str, via: str, password: str) -> None:
    """Remove a member (dead or alive) from every group: CLUSTER LEAVE."""
    _ask(via, password, "CLUSTER", "LEAVE", node_id)
    click.echo(f"{node_id} removed")


@member.command("add")
@click.argument("node_id")
@_VIA
@_PASSWORD
def member_add(node_id: str, via: str, password: str) -> None:
    """How to start a new member: it joins as a learner, gets a snapshot and the log,
    and is promoted to voter once caught up (it counts toward no quorum before)."""
    token = _ask(via, password, "CLUSTER", "TOKEN")
    assert isinstance(token, bytes)
    click.echo(f"start the new node on an empty dir with:\n  respkv server --node-id "
               f"{node_id} --dir DIR --port PORT --join {via} --join-token {token.decode()}")


def _local_token(parent: Path) -> str:
    """The local cluster's join token, kept beside its nodes' dirs (mode 0600) so the
    next `respkv local` on the same dirs starts the same cluster."""
    from respkv.replication.peerauth import new_token

    path = parent / "cluster.token"
    if path.exists():
        return path.read_text().strip()
    parent.mkdir(parents=True, exist_ok=True)
    token = new_token()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(token + "\n")
    return token


def _all_ready(procs: list, ports: list[int], timeout: float = 30.0) -> bool:
    """Wait until every node answers PING; False as soon as one has exited."""
    import socket
    import time

    deadline = time.monotonic() + timeout
    waiting = set(ports)
    while waiting and time.monotonic() < deadline:
        if any(proc.poll() is not None for proc in procs):
            return False
        for port in list(waiting):
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.5) as sock:
                    sock.sendall(b"PING\r\n")
                    if sock.recv(64).startswith(b"+PONG"):
                        waiting.discard(port)
            except OSError:
                pass
        time.sleep(0.1)
    return not waiting


if __name__ == "__main__":
    main()
