"""Files made durable: small JSON files replaced atomically, and files streamed in
chunks (snapshots) that appear under their final name only once whole and synced."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO, Self


def fsync_path(path: Path) -> None:
    """fsync a file or a directory (a directory: so a rename or a creation in it lasts)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class CorruptFileError(Exception):
    """A small durable file (JSON) that cannot be read back."""

    def __init__(self, path: Path, reason: str) -> None:
        super().__init__(f"{path} is damaged: {reason}")
        self.path = path


def read_json(path: Path) -> object:
    """A file written by write_json_atomically; raises CorruptFileError if damaged
    (FileNotFoundError if absent)."""
    text = path.read_bytes()
    try:
        return json.loads(text)
    except ValueError as error:  # bad UTF-8 too
        raise CorruptFileError(path, str(error)) from None


def write_json_atomically(path: Path, value: object) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    with open(tmp, "w") as f:
        json.dump(value, f, indent=1, sort_keys=True)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    fsync_path(path.parent)


def iter_chunks(path: Path, chunk_size: int = 1 << 20) -> Iterator[bytes]:
    """The file's bytes in chunks, never all of it in memory."""
    with open(path, "rb") as f:
        while chunk := f.read(chunk_size):
            yield chunk


class ChunkWriter:
    """Receives a streamed file into `dest_tmp_path`; finish() makes it durable at `dest`.

    `dest` defaults to `dest_tmp_path` without its last suffix (``snap.sqlite.part`` ->
    ``snap.sqlite``); both must be on one file system for the rename to be atomic.
    """

    def __init__(self, dest_tmp_path: Path, dest: Path | None = None) -> None:
        self.tmp_path = Path(dest_tmp_path)
        self.dest = Path(dest) if dest is not None else self.tmp_path.with_suffix("")
        if self.dest == self.tmp_path:
            raise ValueError(f"{self.tmp_path}: cannot tell the final name; pass dest")
        # Not a `with`: the file stays open across write() calls until finish() or abort().
        self._file: BinaryIO | None = open(self.tmp_path, "wb")  # noqa: SIM115
        self.bytes_written = 0

    def write(self, chunk: bytes) -> None:
        if self._file is None:
            raise ValueError("ChunkWriter already finished or aborted")
        self._file.write(chunk)
        self.bytes_written += len(chunk)

    def finish(self) -> Path:
        """fsync, rename into place, fsync the directory; returns the final path."""
        if self._file is None:
            raise ValueError("ChunkWriter already finished or aborted")
        f, self._file = self._file, None
        with f:
            f.flush()
            os.fsync(f.fileno())
        os.replace(self.tmp_path, self.dest)
        fsync_path(self.dest.parent)
        return self.dest

    def abort(self) -> None:
        """Close and delete what was written (also after a finish() that failed)."""
        if self._file is not None:
            self._file.close()
            self._file = None
        self.tmp_path.unlink(missing_ok=True)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, exc_type: object, *rest: object) -> None:
        if exc_type is not None:
            self.abort()
        elif self._file is not None:
            self.finish()
