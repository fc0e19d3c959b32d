"""Pub/Sub: SUBSCRIBE, PSUBSCRIBE, SSUBSCRIBE and their UN- forms, PUBLISH, SPUBLISH,
PUBSUB. Delivery, across the cluster's nodes, is the server's (respkv.server.pubsub).
"""

from __future__ import annotations

from respkv.commands.context import ServerContext, Session
from respkv.commands.subcommands import subcommand
from respkv.commands.table import Kind, command
from respkv.protocol.reply import Reply, Simple

_FLAGS = ("pubsub", "noscript", "loading", "stale")


@command("subscribe", -2, Kind.SERVER, flags=_FLAGS, family="pubsub", since="2.0.0",
         summary="Listen for messages published to the given channels")
def subscribe(server: ServerContext, session: Session, args: list[bytes]) -> Reply:
    return server.pubsub.subscribe(session, "channel", args[1:])


@command("unsubscribe", -1, Kind.SERVER, flags=_FLAGS, family="pubsub", since="2.0.0",
         summary="Stop listening for messages posted to the given channels")
def unsubscribe(server: ServerContext, session: Session, args: list[bytes]) -> Reply:
    return server.pubsub.unsubscribe(session, "channel", args[1:])


@command("psubscribe", -2, Kind.SERVER, flags=_FLAGS, family="pubsub", since="2.0.0",
         summary="Listen for messages published to channels matching the given patterns")
def psubscribe(server: ServerContext, session: Session, args: list[bytes]) -> Reply:
    return server.pubsub.subscribe(session, "pattern", args[1:])


@command("punsubscribe", -1, Kind.SERVER, flags=_FLAGS, family="pubsub", since="2.0.0",
         summary="Stop listening for messages posted to channels matching the given patterns")
def punsubscribe(server: ServerContext, session: Session, args: list[bytes]) -> Reply:
    return server.pubsub.unsubscribe(session, "pattern", args[1:])


@command("ssubscribe", -2, Kind.SERVER, flags=_FLAGS, keys=(1, -1, 1), family="pubsub",
         since="7.0.0", summary="Listen for messages published to the given shard channels")
def ssubscribe(server: ServerContext, session: Session, args: list[bytes]) -> Reply:
    return server.pubsub.subscribe(session, "shard", args[1:])


@command("sunsubscribe", -1, Kind.SERVER, flags=_FLAGS, keys=(1, -1, 1), family="pubsub",
         since="7.0.0", summary="Stop listening for messages posted to the given shard channels")
def sunsubscribe(server: ServerContext, session: Session, args: list[bytes]) -> Reply:
    return server.pubsub.unsubscribe(session, "shard", args[1:])


@command("publish", 3, Kind.SERVER, flags=("pubsub", "loading", "stale", "fast"),
         family="pubsub", since="2.0.0", summary="Post a message to a channel")
def publish(server: ServerContext, session: Session, args: list[bytes]) -> Reply:
    return server.pubsub.publish(args[1], args[2])


@command("spublish", 3, Kind.SERVER, flags=("pubsub", "loading", "stale", "fast"),
         keys=(1, 1, 1), family="pubsub", since="7.0.0",
         summary="Post a message to a shard channel")
def spublish(server: ServerContext, session: Session, args: list[bytes]) -> Reply:
    return server.pubsub.publish(args[1], args[2], shard=True)


@command("pubsub", -2, Kind.SERVER, family="pubsub", since="2.8.0",
         summary="A container for Pub/Sub commands")
def pubsub_(server: ServerContext, session: Session, args: list[bytes]) -> Reply:
    return subcommand(server, session, args)


def _pubsub_sub(name: str, arity: int, since: str = "2.8.0",
                flags: tuple[str, ...] = ("pubsub", "loading", "stale")):
    return command(name, arity, Kind.SERVER, flags=flags, family="pubsub", parent="pubsub",
                   since=since)


@_pubsub_sub("channels", -2)
def pubsub_channels(server: ServerContext, session: Session, args: list[bytes]) -> Reply:
    return server.pubsub.names("channel", args[2] if len(args) > 2 else None)


@_pubsub_sub("numsub", -2)
def pubsub_numsub(server: ServerContext, session: Session, args: list[bytes]) -> Reply:
    return server.pubsub.numsub("channel", args[2:])


@_pubsub_sub("numpat", 2)
def pubsub_numpat(server: ServerContext, session: Session, args: list[bytes]) -> Reply:
    return server.pubsub.numpat()


@_pubsub_sub("shardchannels", -2, since="7.0.0")
def pubsub_shardchannels(server: ServerContext, session: Session, args: list[bytes]) -> Reply:
    return server.pubsub.names("shard", args[2] if len(args) > 2 else None)


@_pubsub_sub("shardnumsub", -2, since="7.0.0")
def pubsub_shardnumsub(server: ServerContext, session: Session, args: list[bytes]) -> Reply:
    return server.pubsub.numsub("shard", args[2:])


@_pubsub_sub("help", 2, since="6.2.0", flags=("loading", "stale"))
def pubsub_help(server: ServerContext, session: Session, args: list[bytes]) -> Reply:
    return [Simple(line) for line in (
        "PUBSUB <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
        "CHANNELS [<pattern>]", "NUMPAT", "NUMSUB [<channel> ...]",
        "SHARDCHANNELS [<pattern>]", "SHARDNUMSUB [<shardchannel> ...]", "HELP")]
