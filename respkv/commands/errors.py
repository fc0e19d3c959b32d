"""Redis 7's error texts, written once."""

from __future__ import annotations

from respkv.protocol.reply import RespError

SYNTAX = RespError("ERR syntax error")
NOT_INTEGER = RespError("ERR value is not an integer or out of range")
NOT_FLOAT = RespError("ERR value is not a valid float")
OVERFLOW = RespError("ERR increment or decrement would overflow")
WRONGTYPE = RespError("WRONGTYPE Operation against a key holding the wrong kind of value")
NO_SUCH_KEY = RespError("ERR no such key")
OUT_OF_RANGE = RespError("ERR offset is out of range")
CLUSTERDOWN = RespError("CLUSTERDOWN The cluster is down: no leader elected")
SHUTTING_DOWN = RespError("ERR server is shutting down")
CROSSSLOT = RespError("CROSSSLOT Keys in request don't hash to the same slot")
# Redis' words for a denyoom write over maxmemory, and for an EXEC holding one.
OOM = RespError("OOM command not allowed when used memory > 'maxmemory'.")
EXECABORT_OOM = RespError("EXECABORT Transaction discarded because of: OOM command not "
                          "allowed when used memory > 'maxmemory'.")
DISK_FULL = RespError("MISCONF No space left on device: writes are refused until disk space "
                      "is freed (reads go on)")
STRING_TOO_LONG = RespError("ERR string exceeds maximum allowed size (proto-max-bulk-len)")
DECREMENT_OVERFLOW = RespError("ERR decrement would overflow")
NAN_OR_INFINITY = RespError("ERR increment would produce NaN or Infinity")
INVALID_CURSOR = RespError("ERR invalid cursor")
SAME_OBJECT = RespError("ERR source and destination objects are the same")
DB_OUT_OF_RANGE = RespError("ERR DB index is out of range")
COPY_OTHER_DB = RespError("ERR Copying to another database is not allowed in cluster mode")
EXPIRE_NX_CONFLICT = RespError(
    "ERR NX and XX, GT or LT options at the same time are not compatible"
)
EXPIRE_GT_LT_CONFLICT = RespError("ERR GT and LT options at the same time are not compatible")


def wrong_arity(name: str) -> RespError:
    return RespError(f"ERR wrong number of arguments for '{name}' command")


def unknown_command(name: bytes, args: list[bytes]) -> RespError:
    shown = " ".join(f"'{_printable(a)}'" for a in args[:20])
    return RespError(
        f"ERR unknown command '{_printable(name)}', with args beginning with: {shown}"
        + (" " if shown else "")
    )


def unknown_subcommand(name: str, sub: bytes) -> RespError:
    return RespError(
        f"ERR unknown subcommand '{_printable(sub)}'. Try {name.upper()} HELP."
    )


def unsupported_option(option: bytes) -> RespError:
    return RespError(f"ERR Unsupported option {option.decode('utf-8', 'replace')}")


def invalid_expire(name: str) -> RespError:
    return RespError(f"ERR invalid expire time in '{name}' command")


def _printable(raw: bytes) -> str:
    return raw[:128].decode("utf-8", "replace")
