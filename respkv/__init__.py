"""respkv: a Redis-protocol key-value server replicated with Raft."""

__version__ = "0.1.0"
