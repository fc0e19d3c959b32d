from hypothesis import given
from hypothesis import strategies as st

from respkv.raft.codec import CodecError, decode_message, encode_message
from respkv.raft.confchange import (
    ConfChange,
    ConfChangeType,
    decode_conf_change,
    encode_conf_change,
)
from respkv.raft.messages import ConfState, Message, MessageType, SnapshotMeta
from respkv.raft.types import Entry, EntryKind

ids = st.text(min_size=0, max_size=12)
u64 = st.integers(min_value=0, max_value=(1 << 64) - 1)


@st.composite
def messages(draw):
    first = draw(st.integers(min_value=1, max_value=1 << 40))
    kinds = draw(st.lists(st.sampled_from(list(EntryKind)), max_size=6))
    ents = [
        Entry(draw(u64), first + k, kind, draw(st.binary(max_size=40)))
        for k, kind in enumerate(kinds)
    ]
    snap = None
    if draw(st.booleans()):
        snap = SnapshotMeta(
            draw(u64),
            draw(u64),
            ConfState(
                tuple(draw(st.lists(ids, max_size=4))), tuple(draw(st.lists(ids, max_size=3)))
            ),
        )
    return Message(
        draw(st.sampled_from(list(MessageType))),
        group=draw(ids),
        to=draw(ids),
        from_=draw(ids),
        term=draw(u64),
        log_term=draw(u64),
        index=draw(u64),
        entries=ents or (),
        commit=draw(u64),
        reject=draw(st.booleans()),
        reject_hint=draw(u64),
        context=draw(st.binary(max_size=30)),
        snapshot=snap,
    )


@given(messages())
def test_message_round_trip(m):
    assert decode_message(encode_message(m)) == m


@given(messages(), st.data())
def test_truncated_message_is_refused(m, data):
    b = encode_message(m)
    cut = data.draw(st.integers(min_value=0, max_value=len(b) - 1))
    try:
        decode_message(b[:cut])
    except CodecError:
        return
    raise AssertionError("a truncated message decoded")


def test_empty_message_is_small():
    m = Message(MessageType.HEARTBEAT, group="g0", to="n2", from_="n1", term=7, commit=3)
    assert len(encode_message(m)) <= 60
    assert decode_message(encode_message(m)) == m


@given(st.sampled_from(list(ConfChangeType)), ids, st.binary(max_size=20))
def test_conf_change_round_trip(op, nid, ctx):
    cc = ConfChange(op, nid, ctx)
    assert decode_conf_change(encode_conf_change(cc)) == cc
