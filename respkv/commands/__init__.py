"""Importing this package registers every command in the table."""

from respkv.commands import (  # noqa: F401
    acl,
    bitmaps,
    blocking,
    cluster,
    connection,
    diagnostics,
    dump,
    expiry,
    hashes,
    hyperloglog,
    keyspace,
    lists,
    memory,
    pubsub,
    scripting,
    server,
    sets,
    strings,
    transactions,
    zsets,
)
