"""Small disks for the tests of a full disk: a tmpfs of a given size, filled on demand."""

from __future__ import annotations

import contextlib
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest


@contextlib.contextmanager
def small_tmpfs(path: Path, size: str) -> Iterator[Path]:
    """A tmpfs of ``size`` (``16m``) mounted at ``path`` (CI runs as root; where mounting
    is not allowed at all, the test cannot run and says why)."""
    path.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
                          capture_output=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


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
