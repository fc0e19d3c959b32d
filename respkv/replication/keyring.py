"""A node's cluster secrets: one current secret, which it dials and proves with, and
the secrets it accepts when a peer proves with them (the current one among them).

Rotating the cluster's secret is three rounds over the nodes (respkv.replication.
rotation): every node accepts the new secret (add), then proves with it (use), then
stops accepting the old one (drop). At every moment of that, any two nodes share a
secret one proves with and the other accepts, so no connection is refused.

On disk it is ``cluster.secret`` in the node's dir, mode 0600, replaced whole (a
temporary file, fsync, rename) on every change: JSON, ``{"current": hex, "accepted":
[hex, ...]}``. A file of one hex line (one secret, as written before there was a
keyring) still loads: that secret is current and the only one accepted.

A secret is shown only by its id, a short fingerprint (a hash of it, never a part
of it); the join token is the one place the current secret itself is given out.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Iterable
from pathlib import Path

from respkv.replication.peerauth import SECRET_BYTES, SECRET_FILE, TokenError, same

ID_CHARS = 12  # hex digits of an id: 48 bits, no two secrets of a keyring share one


class KeyringError(ValueError):
    """A change the keyring refuses (unknown id, dropping the current secret...)."""


def key_id(secret: bytes) -> str:
    """The secret's fingerprint: names it in commands and logs without giving it away."""
    return hashlib.sha256(b"respkv key id\0" + secret).hexdigest()[:ID_CHARS]


def parse_secret(text: str) -> bytes:
    """A secret given as hex (CLUSTER SECRET ADD), checked."""
    try:
        secret = bytes.fromhex(text.strip())
    except ValueError:
        raise KeyringError(f"a secret is {SECRET_BYTES * 2} hex digits") from None
    if len(secret) != SECRET_BYTES:
        raise KeyringError(f"a secret is {SECRET_BYTES * 2} hex digits")
    return secret


class Keyring:
    """The node's one copy of its secrets; the transport and the admin read it, the
    CLUSTER SECRET commands change it. With a ``path`` each change is on disk before
    it is used (a restart comes back with what the last change said)."""

    def __init__(self, current: bytes, accepted: Iterable[bytes] = (),
                 path: Path | None = None) -> None:
        others = [s for s in dict.fromkeys(accepted) if s != current]
        self.current = current
        self.accepted: tuple[bytes, ...] = (current, *others)  # current first
        self.path = path

    # -- reading -----------------------------------------------------------------

    @property
    def current_id(self) -> str:
        return key_id(self.current)

    def find(self, wanted: str) -> bytes | None:
        """The accepted secret with this id (case-insensitive), if any."""
        wanted = wanted.strip().lower()
        return next((s for s in self.accepted if key_id(s) == wanted), None)

    def status(self) -> list[tuple[str, bool]]:
        """(id, is current) of every accepted secret, the current one first."""
        return [(key_id(s), s == self.current) for s in self.accepted]

    def proves(self, expected: Callable[[bytes], bytes | str], given: bytes | str) -> bool:
        """``given`` was made with one of the accepted secrets (``expected(secret)``
        is what it would be). Every secret is tried, so the time taken does not say
        which one matched."""
        matched = False
        for secret in self.accepted:
            matched |= same(expected(secret), given)
        return matched

    # -- changing ----------------------------------------------------------------

    def add(self, secret: bytes) -> str:
        """Accept ``secret`` too (again: no change); its id."""
        if len(secret) != SECRET_BYTES:
            raise KeyringError(f"a secret is {SECRET_BYTES * 2} hex digits")
        if secret not in self.accepted:
            self._replace(self.current, (*self.accepted, secret))
        return key_id(secret)

    def use(self, wanted: str) -> None:
        """Prove with the accepted secret of this id from now on."""
        secret = self.find(wanted)
        if secret is None:
            raise KeyringError(f"no accepted secret has id {wanted}: "
                               "CLUSTER SECRET ADD it first")
        if secret != self.current:
            self._replace(secret, self.accepted)

    def drop(self, wanted: str) -> None:
        """Stop accepting the secret of this id; never the current one."""
        secret = self.find(wanted)
        if secret is None:
            raise KeyringError(f"no accepted secret has id {wanted}")
        if secret == self.current:
            raise KeyringError(f"{key_id(secret)} is the current secret: "
                               "CLUSTER SECRET USE another one first")
        self._replace(self.current, [s for s in self.accepted if s != secret])

    def _replace(self, current: bytes, accepted: Iterable[bytes]) -> None:
        new = Keyring(current, accepted, self.path)
        if self.path is not None:
            _write(self.path, new)  # on disk first: a failed write changes nothing
        self.current, self.accepted = new.current, new.accepted

    def to_json(self) -> bytes:
        return json.dumps({"current": self.current.hex(),
                           "accepted": [s.hex() for s in self.accepted]}).encode() + b"\n"


def create_keyring(directory: Path, secret: bytes) -> Keyring:
    """A new member's keyring, its one secret current; on disk before anything uses it."""
    directory.mkdir(parents=True, exist_ok=True)
    keyring = Keyring(secret, path=directory / SECRET_FILE)
    _write(keyring.path, keyring)  # type: ignore[arg-type]
    return keyring


def load_keyring(directory: Path) -> Keyring | None:
    """The keyring in ``directory``, None without one; either format (see above)."""
    path = directory / SECRET_FILE
    if not path.exists():
        return None
    text = path.read_text().strip()
    bad = TokenError(f"{path} does not hold a cluster secret")
    if not text.startswith("{"):  # one secret, the format before keyrings
        try:
            return Keyring(parse_secret(text), path=path)
        except KeyringError:
            raise bad from None
    try:
        fields = json.loads(text)
        current = parse_secret(fields["current"])
        accepted = [parse_secret(s) for s in fields["accepted"]]
    except (ValueError, KeyError, TypeError, AttributeError):  # KeyringError included
        raise bad from None
    return Keyring(current, accepted, path)


def _write(path: Path, keyring: Keyring) -> None:
    """Replace the file whole, readable by this user only: a crash leaves the old
    file or the new one, never a mix; the rename is durable once this returns."""
    temp = path.with_name(path.name + ".tmp")
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.fchmod(fd, 0o600)  # a temp file left by a crash may have been made otherwise
        os.write(fd, keyring.to_json())
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(temp, path)
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
