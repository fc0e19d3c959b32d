"""Membership changes: one server at a time.

A conf change is a log entry of kind ``EntryKind.CONF_CHANGE`` whose data is
``encode_conf_change(ConfChange(...))``::

    byte 0      op (ConfChangeType: 0 add learner, 1 add voter / promote, 2 remove)
    bytes 1..2  length N of the node id (big-endian u16)
    N bytes     node id, UTF-8
    rest        context: opaque bytes for the driver (e.g. the node's addresses)

The configuration in force on a node is the latest one in its log, committed or
not (Raft dissertation §4.1); a truncated conf entry rolls it back. Each change
adds or removes at most one voter, so any two consecutive configurations'
majorities overlap and no joint consensus is needed. A leader proposes a change
only when the previous one is committed and an entry of its own term is
committed (the dissertation's fix for the single-server change bug).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from enum import IntEnum

from respkv.raft.messages import ConfState


class ConfChangeType(IntEnum):
    ADD_LEARNER = 0
    ADD_VOTER = 1  # adds a voter, or promotes a learner
    REMOVE = 2  # removes a voter or a learner


@dataclass(slots=True, frozen=True)
class ConfChange:
    op: ConfChangeType
    node_id: str
    context: bytes = b""


_HDR = struct.Struct(">BH")


def encode_conf_change(cc: ConfChange) -> bytes:
    nid = cc.node_id.encode()
    return _HDR.pack(int(cc.op), len(nid)) + nid + cc.context


def decode_conf_change(data: bytes) -> ConfChange:
    op, n = _HDR.unpack_from(data, 0)
    nid = bytes(data[3 : 3 + n]).decode()
    return ConfChange(ConfChangeType(op), nid, bytes(data[3 + n :]))


class ConfChangeError(ValueError):
    pass


def check_conf_change(cs: ConfState, cc: ConfChange) -> None:
    """Raise ConfChangeError when ``cc`` does not make sense against ``cs``."""
    if cc.op == ConfChangeType.ADD_LEARNER:
        if cc.node_id in cs.voters:
            raise ConfChangeError(f"{cc.node_id} is a voter (demotion is not supported)")
        if cc.node_id in cs.learners:
            raise ConfChangeError(f"{cc.node_id} is already a learner")
    elif cc.op == ConfChangeType.ADD_VOTER:
        if cc.node_id in cs.voters:
            raise ConfChangeError(f"{cc.node_id} is already a voter")
    elif cc.op == ConfChangeType.REMOVE:
        if cc.node_id not in cs.voters and cc.node_id not in cs.learners:
            raise ConfChangeError(f"{cc.node_id} is not a member")
        if cs.voters == (cc.node_id,):
            raise ConfChangeError("cannot remove the last voter")


def apply_conf_change(cs: ConfState, cc: ConfChange) -> ConfState:
    """The configuration after ``cc``; a change that does not apply leaves it alone."""
    voters = set(cs.voters)
    learners = set(cs.learners)
    nid = cc.node_id
    if cc.op == ConfChangeType.ADD_LEARNER:
        if nid in voters:
            return cs
        learners.add(nid)
    elif cc.op == ConfChangeType.ADD_VOTER:
        learners.discard(nid)
        voters.add(nid)
    elif cc.op == ConfChangeType.REMOVE:
        if voters == {nid}:
            return cs
        voters.discard(nid)
        learners.discard(nid)
    return ConfState(tuple(sorted(voters)), tuple(sorted(learners)))
