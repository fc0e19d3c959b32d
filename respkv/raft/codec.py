"""Compact binary form of a Message (little-endian).

header  <BBBQQQQQ  version, type, flags, term, log_term, index, commit, reject_hint
str8    group, from, to        (u16 length + UTF-8)
bytes32 context                (u32 length + bytes)
if flags & HAS_SNAP:  <QQ index, term; u16 n voters, str16 each; u16 n learners, str16 each
if flags & HAS_ENTS:  <I count; then per entry <QBI term, kind, data length + data;
                      entry indexes are consecutive from Message.index + 1 ... carried
                      as one <Q first index before the entries
"""

from __future__ import annotations

import struct

from respkv.raft.confchange import decode_conf_change
from respkv.raft.messages import ConfState, Message, MessageType, SnapshotMeta
from respkv.raft.types import Entry, EntryKind

VERSION = 1
F_REJECT = 1
F_SNAP = 2
F_ENTS = 4

_HDR = struct.Struct("<BBBQQQQQ")
_U16 = struct.Struct("<H")
_U32 = struct.Struct("<I")
_SNAP = struct.Struct("<QQ")
_ENTS = struct.Struct("<IQ")
_ENT = struct.Struct("<QBI")
_ENT_SIZE = _ENT.size
_MT = {int(t): t for t in MessageType}
_EK = {int(k): k for k in EntryKind}


class CodecError(ValueError):
    pass


def _s(parts: list, s: str) -> None:
    b = s.encode()
    parts.append(_U16.pack(len(b)))
    parts.append(b)


def encode_message(m: Message) -> bytes:
    flags = 0
    if m.reject:
        flags |= F_REJECT
    if m.snapshot is not None:
        flags |= F_SNAP
    ents = m.entries
    if ents:
        flags |= F_ENTS
    parts = [
        _HDR.pack(VERSION, int(m.type), flags, m.term, m.log_term, m.index, m.commit, m.reject_hint)
    ]
    _s(parts, m.group)
    _s(parts, m.from_)
    _s(parts, m.to)
    parts.append(_U32.pack(len(m.context)))
    parts.append(m.context)
    if m.snapshot is not None:
        sn = m.snapshot
        parts.append(_SNAP.pack(sn.index, sn.term))
        cs = sn.conf_state
        for group in (cs.voters, cs.learners):
            parts.append(_U16.pack(len(group)))
            for nid in group:
                _s(parts, nid)
    if ents:
        first = ents[0].index
        parts.append(_ENTS.pack(len(ents), first))
        pack = _ENT.pack
        append = parts.append
        i = first
        for e in ents:
            if e.index != i:
                raise CodecError("entries are not consecutive")
            i += 1
            d = e.data
            append(pack(e.term, e.kind, len(d)))
            append(d)
    return b"".join(parts)


def decode_message(buf: bytes) -> Message:
    try:
        return _decode(memoryview(buf))
    except (struct.error, KeyError, UnicodeDecodeError, IndexError) as exc:
        raise CodecError(f"bad message: {exc}") from exc


def _decode(mv: memoryview) -> Message:
    ver, typ, flags, term, log_term, index, commit, hint = _HDR.unpack_from(mv, 0)
    if ver != VERSION:
        raise CodecError(f"unknown message version {ver}")
    pos = _HDR.size
    strs = []
    for _ in range(3):
        (n,) = _U16.unpack_from(mv, pos)
        pos += 2
        strs.append(str(mv[pos : pos + n], "utf-8"))
        pos += n
    (n,) = _U32.unpack_from(mv, pos)
    pos += 4
    ctx = bytes(mv[pos : pos + n])
    if len(ctx) != n:
        raise CodecError("truncated context")
    pos += n
    snap = None
    if flags & F_SNAP:
        si, st = _SNAP.unpack_from(mv, pos)
        pos += _SNAP.size
        groups = []
        for _ in range(2):
            (k,) = _U16.unpack_from(mv, pos)
            pos += 2
            g = []
            for _ in range(k):
                (ln,) = _U16.unpack_from(mv, pos)
                pos += 2
                g.append(str(mv[pos : pos + ln], "utf-8"))
                pos += ln
            groups.append(tuple(g))
        snap = SnapshotMeta(si, st, ConfState(groups[0], groups[1]))
    ents: list[Entry] = []
    if flags & F_ENTS:  # always at least one entry when set
        count, i = _ENTS.unpack_from(mv, pos)
        pos += _ENTS.size
        unpack = _ENT.unpack_from
        ek = _EK
        append = ents.append
        for _ in range(count):
            t, k, ln = unpack(mv, pos)
            pos += _ENT_SIZE
            d = bytes(mv[pos : pos + ln])
            if len(d) != ln:
                raise CodecError("truncated entry")
            pos += ln
            append(Entry(t, i, ek[k], d))
            i += 1
    if pos != len(mv):
        raise CodecError(f"{len(mv) - pos} trailing bytes")
    return Message(
        _MT[typ],
        group=strs[0],
        to=strs[2],
        from_=strs[1],
        term=term,
        log_term=log_term,
        index=index,
        entries=ents if ents else (),
        commit=commit,
        reject=bool(flags & F_REJECT),
        reject_hint=hint,
        context=ctx,
        snapshot=snap,
    )


def check_message(m: Message) -> None:
    """Raise CodecError for a message the Raft core would fail on: entries anywhere but
    in an AppendEntries, not right after its ``index``, or a conf change that does not
    decode. The codec carries such a message faithfully; a peer must never send one."""
    ents = m.entries
    if not ents:
        return
    if m.type is not MessageType.APP or ents[0].index != m.index + 1:
        raise CodecError(f"entries from {ents[0].index} in {m!r}")
    for e in ents:
        if e.kind is EntryKind.CONF_CHANGE:
            try:
                decode_conf_change(e.data)
            except (struct.error, ValueError) as exc:  # UnicodeDecodeError is one
                raise CodecError(f"bad conf change at {e.index}: {exc}") from exc
