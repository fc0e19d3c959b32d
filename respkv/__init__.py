"""respkv: a Redis-protocol key-value server replicated with Raft."""

__version__ = "0.1.0"
REDIS_VERSION = "7.0.15"  # the Redis whose behaviour respkv follows; clients look at it
