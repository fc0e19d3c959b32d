"""Small disks for the tests of a full disk: a tmpfs of a given size, filled on demand."""

from __future__ import annotations

import contextlib
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path


class MountRefused(OSError):
    """mount(8) said no (not root, or no mount namespace of one's own)."""


def mount_tmpfs(path: Path, size: str) -> None:
    """Mount a tmpfs of ``size`` (``16m``) at ``path`` (made if missing)."""
    path.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
                          capture_output=True)
    if done.returncode != 0:
        raise MountRefused(f"cannot mount a tmpfs at {path}: "
                           f"{done.stderr.decode(errors='replace').strip()}")


def unmount(path: Path) -> None:
    """Unmount what mount_tmpfs mounted at ``path`` (lazily: a process that still
    has a file open there does not keep the mount point busy)."""
    subprocess.run(["umount", "-l", str(path)], check=False, capture_output=True)


@contextlib.contextmanager
def small_tmpfs(path: Path, size: str) -> Iterator[Path]:
    """A tmpfs of ``size`` (``16m``) mounted at ``path`` (CI runs as root; where mounting
    is not allowed at all, the test cannot run and says why)."""
    import pytest  # here, not at the top: the fault suite uses this module too

    try:
        mount_tmpfs(path, size)
    except MountRefused as error:
        pytest.skip(str(error))
    try:
        yield path
    finally:
        unmount(path)


def fill(path: Path, leave: int = 0) -> None:
    """Take every free block with the file at ``path`` (big writes, then page-sized ones
    for what is left), then give ``leave`` bytes back."""
    with open(path, "wb", buffering=0) as out:
        for chunk in (b"\0" * (1 << 16), b"\0" * 4096):
            with contextlib.suppress(OSError):
                while True:
                    out.write(chunk)
    if leave:
        os.truncate(path, max(0, path.stat().st_size - leave))
