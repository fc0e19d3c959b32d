"""Redis Cluster's key -> hash slot mapping (CRC16/XMODEM of the key or its {tag}),
and the slot -> Raft group map: group i owns an even, contiguous share of the
16384 slots, fixed when the cluster is created."""

from __future__ import annotations

from binascii import crc_hqx

SLOTS = 16384


def crc16(data: bytes) -> int:
    """CRC16/XMODEM, Redis Cluster's: binascii's CRC-CCITT with a zero start."""
    return crc_hqx(data, 0)


def hash_tag(key: bytes) -> bytes:
    """The part of the key that is hashed: the first non-empty {...}, else the key."""
    start = key.find(b"{")
    if start >= 0:
        end = key.find(b"}", start + 1)
        if end > start + 1:
            return key[start + 1 : end]
    return key


def key_slot(key: bytes) -> int:
    if b"{" in key:
        key = hash_tag(key)
    return crc_hqx(key, 0) & (SLOTS - 1)


def group_name(index: int) -> str:
    return f"g{index}"


def slot_ranges(shards: int) -> list[tuple[int, int]]:
    """(first, last) slot of each group, in group order."""
    bounds = [i * SLOTS // shards for i in range(shards + 1)]
    return [(bounds[i], bounds[i + 1] - 1) for i in range(shards)]


def slot_owners(shards: int) -> list[int]:
    """The index of the group owning each slot."""
    owners = []
    for index, (first, last) in enumerate(slot_ranges(shards)):
        owners += [index] * (last - first + 1)
    return owners
