"""The keyring of cluster secrets: add, use, drop and what each refuses; on disk, mode
0600, replaced whole, in its format or the one-secret format before it."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

from respkv.replication.keyring import (
    Keyring,
    KeyringError,
    create_keyring,
    key_id,
    load_keyring,
    parse_secret,
)
from respkv.replication.peerauth import SECRET_FILE, TokenError, join_proof, new_secret

OLD, NEW = b"\x01" * 32, b"\x02" * 32


def test_add_use_drop() -> None:
    keyring = Keyring(OLD)
    assert keyring.status() == [(key_id(OLD), True)]
    assert keyring.add(NEW) == key_id(NEW)
    assert keyring.add(NEW) == key_id(NEW)  # again: no change
    assert keyring.current == OLD and keyring.accepted == (OLD, NEW)
    keyring.use(key_id(NEW).upper())  # ids are case-insensitive
    assert keyring.current == NEW
    assert keyring.status() == [(key_id(NEW), True), (key_id(OLD), False)]
    keyring.use(key_id(NEW))  # already current: no change
    keyring.drop(key_id(OLD))
    assert keyring.accepted == (NEW,)


def test_refusals_change_nothing() -> None:
    keyring = Keyring(OLD, [NEW])
    with pytest.raises(KeyringError, match="is the current secret"):
        keyring.drop(key_id(OLD))
    with pytest.raises(KeyringError, match="no accepted secret has id abc"):
        keyring.drop("abc")
    with pytest.raises(KeyringError, match="ADD it first"):
        keyring.use(key_id(b"\x03" * 32))
    with pytest.raises(KeyringError, match="64 hex digits"):
        keyring.add(b"short")
    assert keyring.current == OLD and keyring.accepted == (OLD, NEW)


@pytest.mark.parametrize("text", ["", "zz" * 32, "ab" * 31, "ab" * 33, " ab "])
def test_parse_secret_refuses(text: str) -> None:
    with pytest.raises(KeyringError):
        parse_secret(text)


def test_ids_are_fingerprints_not_parts_of_the_secret() -> None:
    secret = new_secret()
    assert len(key_id(secret)) == 12
    assert key_id(secret) not in secret.hex()
    assert key_id(secret) != key_id(new_secret())


def test_proves_with_any_accepted_secret() -> None:
    keyring = Keyring(NEW, [OLD])

    def proof(secret: bytes) -> str:
        return join_proof(secret, "c", "n2", "h:1", "h:2")

    assert keyring.proves(proof, proof(OLD)) and keyring.proves(proof, proof(NEW))
    assert not keyring.proves(proof, proof(b"\x03" * 32))
    keyring.drop(key_id(OLD))
    assert not keyring.proves(proof, proof(OLD))


def test_on_disk(tmp_path: Path) -> None:
    keyring = create_keyring(tmp_path / "node", OLD)
    path = tmp_path / "node" / SECRET_FILE
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    keyring.add(NEW)
    keyring.use(key_id(NEW))
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert [p.name for p in path.parent.iterdir()] == [SECRET_FILE]  # no temp file left
    loaded = load_keyring(tmp_path / "node")
    assert loaded is not None
    assert loaded.current == NEW and loaded.accepted == (NEW, OLD)
    assert OLD.hex() in path.read_text()  # it is the secret store: the secrets are in it
    loaded.drop(key_id(OLD))
    again = load_keyring(tmp_path / "node")
    assert again is not None and again.accepted == (NEW,)
    assert load_keyring(tmp_path / "empty") is None


def test_a_failed_write_changes_nothing(tmp_path: Path) -> None:
    keyring = create_keyring(tmp_path, OLD)
    (tmp_path / (SECRET_FILE + ".tmp")).mkdir()  # where the new file would be written
    with pytest.raises(OSError):
        keyring.add(NEW)
    assert keyring.accepted == (OLD,)
    loaded = load_keyring(tmp_path)
    assert loaded is not None and loaded.accepted == (OLD,)


def test_the_one_secret_format_still_loads(tmp_path: Path) -> None:
    (tmp_path / SECRET_FILE).write_text(OLD.hex() + "\n")
    keyring = load_keyring(tmp_path)
    assert keyring is not None
    assert keyring.current == OLD and keyring.accepted == (OLD,)
    keyring.add(NEW)  # written in the keyring format from then on
    assert json.loads((tmp_path / SECRET_FILE).read_text())["accepted"] == [OLD.hex(),
                                                                          NEW.hex()]


@pytest.mark.parametrize("text", ["nothex", '{"current": "ab"}', '{"current": 1}',
                                  '{"current": "' + OLD.hex() + '", "accepted": ["zz"]}',
                                  "[1, 2]"])
def test_a_bad_file_is_refused(tmp_path: Path, text: str) -> None:
    (tmp_path / SECRET_FILE).write_text(text)
    with pytest.raises(TokenError, match="does not hold a cluster secret"):
        load_keyring(tmp_path)
