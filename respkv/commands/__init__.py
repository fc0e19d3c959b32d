"""Importing this package registers every command in the table."""

from respkv.commands import (  # noqa: F401
    connection,
    expiry,
    generic,
    server,
    strings,
)
