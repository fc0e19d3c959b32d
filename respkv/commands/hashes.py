"""Hash commands, with Redis 7.0's semantics."""

from __future__ import annotations
