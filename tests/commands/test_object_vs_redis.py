"""OBJECT and TYPE against a real redis-server: the encoding names by Redis 7.0's
thresholds, and what FREQ, IDLETIME, REFCOUNT and HELP answer."""

from __future__ import annotations

import pytest
from commands_support import call

from respkv.commands import encoding
from respkv.commands.encoding import THRESHOLDS, encoding_of
from respkv.config import Config
from respkv.state.keyspace import Keyspace
from respkv.state.values import HashValue, ListValue, SetValue, ZSetValue


@pytest.mark.parametrize("value", [b"0", b"123", b"-9223372036854775808", b"9223372036854775808",
                                   b"01", b"1.5", b"", b"x" * 44, b"x" * 45, b"-0"])
def test_string_encodings(differ, value: bytes) -> None:
    differ("SET", "s", value)
    differ("OBJECT", "ENCODING", "s")
    differ("OBJECT", "REFCOUNT", "s")
    differ("TYPE", "s")


def test_list_and_set_encodings(differ) -> None:
    differ("RPUSH", "l", "a", "b")
    differ("SADD", "ints", *range(512))
    differ("SADD", "more", *range(513))
    differ("SADD", "words", "a", "1")
    for key in ("l", "ints", "more", "words", "missing"):
        differ("OBJECT", "ENCODING", key)
        differ("TYPE", key)


def test_the_other_subcommands(differ) -> None:
    differ("SET", "k", "v")
    for sub in ("FREQ", "IDLETIME"):
        differ("OBJECT", sub, "k")
        differ("OBJECT", sub, "missing")
    differ("OBJECT", "HELP")
    differ("OBJECT", "NOPE", "k")
    differ("OBJECT", "ENCODING")
    differ("OBJECT", "ENCODING", "k", "extra")


def test_collection_thresholds() -> None:
    assert encoding_of(HashValue({b"f": b"v"})) == "listpack"
    assert encoding_of(HashValue({b"f": b"v" * 65})) == "hashtable"
    assert encoding_of(HashValue({b"f%d" % i: b"v" for i in range(129)})) == "hashtable"
    assert encoding_of(ZSetValue({b"m": 1.0})) == "listpack"
    assert encoding_of(ZSetValue({b"m" * 65: 1.0})) == "skiplist"
    assert encoding_of(ZSetValue({b"m%d" % i: 1.0 for i in range(129)})) == "skiplist"
    assert encoding_of(ListValue([b"x"])) == "quicklist"
    assert encoding_of(SetValue([b"1", b"-2"])) == "intset"


def test_config_moves_the_thresholds() -> None:
    config = Config()
    config.set("set-max-intset-entries", "2")
    config.set("hash-max-listpack-entries", "1")
    try:
        encoding.configure(config)
        db = Keyspace()
        db.set(b"s", SetValue([b"1", b"2", b"3"]))
        db.set(b"h", HashValue({b"a": b"1", b"b": b"2"}))
        assert call(db, "OBJECT", "ENCODING", "s") == "hashtable"
        assert call(db, "OBJECT", "ENCODING", "h") == "hashtable"
    finally:
        encoding.configure(Config())
    assert THRESHOLDS.set_max_intset_entries == 512
