"""The state machine's durable store: one SQLite file written through sqlitedict.

The caller keeps the data in a dict (the hot read path) and writes each applied batch here
with ``write_batch``; this module is only the durable copy, read once at start-up.

Layout: one table ``kv (key TEXT PRIMARY KEY, value BLOB)``, as sqlitedict creates it.
Data keys are ``"k" + key.hex()`` (lossless for any bytes, NUL/CR/LF included); values are
the caller's bytes, stored as given (the state layer's value codec writes them). A key may
also have item records (a collection's members, one row each, so that changing one member
writes one row), under ``"m" + key.hex() + "." + item.hex()``: a key's items sort together
and can be dropped as one range. Beside the data, under names no data key can equal:
``"s" + name`` for the caller's system records (named byte strings beside the keys, as
the ACL users), ``"@format"`` (this layout's version, so a file of another layout, or
not written by respkv, is refused) and ``"@applied"`` (index and term, two
little-endian u64). sqlitedict is used for its writer thread only, with its own
value encoding switched off: no Python object is ever rebuilt from the file.

Atomicity: a batch is staged into a TEMP table, then applied by ONE statement (an INSERT
into a view whose INSTEAD OF trigger upserts, deletes and clears the stage), guarded by the
stage's row count, then committed. So if any statement fails (disk full, I/O error), the
guarded statement either does nothing or is rolled back as a whole: data and applied index
never part ways. The error surfaces at the next call and the store refuses further writes.

Durability: sqlitedict runs ``synchronous=OFF``; we set ``NORMAL``, which in WAL mode keeps
the file consistent across a power cut but may lose the last commits. That is fine: the
Raft WAL has the entries, and the applied index says where to resume. Compact the Raft WAL
only up to an index returned by ``snapshot_to`` (which checkpoints the store and fsyncs the
copy) or installed by ``restore_from``, never up to an applied index merely written here.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import sqlite3
import struct
import threading
from collections.abc import Callable, Generator, Iterable, Iterator
from functools import cache
from pathlib import Path
from typing import Self

from sqlitedict import SqliteDict

from respkv.storage.files import fsync_path

TABLE = "kv"
APPLIED_KEY = "@applied"  # data keys all start with "k": no collision possible
FORMAT_KEY = "@format"
FORMAT = b"respkv-store 2"
SYSTEM_TAG = "s"
_APPLIED = struct.Struct("<QQ")
_MAX_CHUNK = 1024  # rows per staging statement: 3072 parameters, well under SQLite's 32766
_OP_DELETE, _OP_UPSERT, _OP_CLEAR = 0, 1, 2

# Per-connection (TEMP) objects, created on each open; the trigger body is one statement
# from the outside, so it is applied or rolled back as a whole.
_SCHEMA = (
    "CREATE TEMP TABLE IF NOT EXISTS stage (op INTEGER NOT NULL, key TEXT NOT NULL, value BLOB)",
    "CREATE TEMP VIEW IF NOT EXISTS apply_stage AS SELECT 0 AS expected",
    f"""CREATE TEMP TRIGGER IF NOT EXISTS apply_stage_trigger INSTEAD OF INSERT ON apply_stage
    BEGIN
        DELETE FROM "{TABLE}" WHERE rowid IN (
            SELECT "{TABLE}".rowid FROM stage CROSS JOIN "{TABLE}"  -- a range seek per key
            WHERE stage.op = 2 AND "{TABLE}".key >= stage.key AND "{TABLE}".key < stage.value);
        REPLACE INTO "{TABLE}" (key, value) SELECT key, value FROM stage WHERE op = 1;
        DELETE FROM "{TABLE}" WHERE key IN (SELECT key FROM stage WHERE op = 0);
        DELETE FROM stage;
    END""",
)
_CLEAR_STAGE = "DELETE FROM stage"
_APPLY = "INSERT INTO apply_stage SELECT ? WHERE (SELECT count(*) FROM stage) = ?"
_STAGE_ROW = "(?,?,?)"


class StoreError(Exception):
    """The store failed earlier; its file is consistent but behind what the caller applied."""


class NoRoom(OSError):
    """Not started: the copy would leave less free space than the store was told to keep
    (``keep_free``), the room the Raft log needs. Nothing was written."""


class StoreFormatError(Exception):
    """The file is not a state store of this layout (an older respkv's, or not ours), or
    is damaged (``damaged``). ``path``: the file, once known."""

    def __init__(self, message: str, path: Path | None = None, *, damaged: bool = True) -> None:
        super().__init__(message)
        self.path = path
        self.damaged = damaged


def _as_is(value: object) -> object:
    """sqlitedict's value encoding, switched off: we store our own bytes."""
    return value


def encode_key(key: bytes) -> str:
    return "k" + key.hex()


def decode_key(skey: str) -> bytes:
    return bytes.fromhex(skey[1:])


def item_range(key: bytes) -> tuple[str, str]:
    """The [low, high) range of a key's item records ("." + 1 is "/")."""
    prefix = "m" + key.hex()
    return prefix + ".", prefix + "/"


@cache
def _stage_sql(rows: int) -> str:
    return "INSERT INTO stage (op, key, value) VALUES " + ",".join([_STAGE_ROW] * rows)


def _chunk_sizes(rows: int) -> Iterator[int]:
    """Powers of two (at most _MAX_CHUNK): few distinct SQL texts, so SQLite's statement
    cache keeps them compiled."""
    while rows:
        size = min(_MAX_CHUNK, 1 << (rows.bit_length() - 1))
        yield size
        rows -= size


def _connect_ro(path: Path) -> sqlite3.Connection:
    """A connection that only reads (never creates the file). Opened read-write all the
    same: a read-only connection cannot recover a WAL-mode file whose -wal a killed
    writer left behind ("attempt to write a readonly database"), which is just what a
    node restarted after a crash may find."""
    return sqlite3.connect(path.resolve().as_uri() + "?mode=rw", uri=True)


def _read_applied(conn: sqlite3.Connection) -> tuple[int, int]:
    row = conn.execute(f'SELECT value FROM "{TABLE}" WHERE key = ?', (APPLIED_KEY,)).fetchone()
    return _decode_applied(row[0]) if row else (0, 0)


def _decode_applied(value: object) -> tuple[int, int]:
    if not isinstance(value, bytes) or len(value) != _APPLIED.size:
        raise StoreFormatError("the applied index record is damaged")
    index, term = _APPLIED.unpack(value)
    return index, term


class StateStore:
    """Durable copy of the state machine. See the module docstring.

    Threads: write_batch/flush/clear are safe from any thread (a lock keeps each batch's
    statements together in sqlitedict's queue); snapshot_to is meant for a worker thread;
    restore_from and close must not race with writes (the caller stops applying first).
    """

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._failed: BaseException | None = None
        # bytes a copy of the store (a snapshot) must leave free: the caller's reserve
        # for the Raft log, read at each copy
        self.keep_free: Callable[[], int] = lambda: 0
        try:
            self._db = self._open()
        except sqlite3.DatabaseError as error:  # damage that check_format did not reach
            raise StoreFormatError(f"{self.path} cannot be opened: {error}", self.path) from None

    def _open(self) -> SqliteDict:
        fresh = not self.path.exists() or is_empty(self.path)
        if not fresh:
            check_format(self.path)
        db = SqliteDict(
            str(self.path),
            tablename=TABLE,
            autocommit=False,
            journal_mode="WAL",
            outer_stack=False,  # True captures a stack per statement: slow
            encode=_as_is,
            decode=_as_is,
        )
        db.conn.execute("PRAGMA synchronous=NORMAL")
        for sql in _SCHEMA:
            db.conn.execute(sql)
        if fresh:
            db.conn.execute(f'REPLACE INTO "{TABLE}" (key, value) VALUES (?, ?)',
                            (FORMAT_KEY, FORMAT))
            db.conn.execute("COMMIT")
        return db

    # ---- reading -----------------------------------------------------------------

    def load(self) -> tuple[int, int, dict[bytes, bytes]]:
        """(applied_index, applied_term, data) as committed."""
        self.flush()
        return read_file(self.path)

    def scan(self) -> tuple[int, int, Iterator[Record]]:
        """``load`` with the records streamed (see ``scan_file``)."""
        self.flush()
        index, term, records = scan_file(self.path)
        return index, term, _naming(self.path, records)

    def system(self) -> dict[str, bytes]:
        """The system records as committed, read through the store's own connection
        (after everything queued before)."""
        self._check_usable()
        try:
            rows = list(self._db.conn.select(_SYSTEM_ROWS, _SYSTEM_RANGE))
        except Exception as err:  # raised by sqlitedict's thread
            self._failed = err
            raise StoreError(f"state store {self.path} failed: {err!r}") from err
        return _system_records(rows)

    # ---- writing -----------------------------------------------------------------

    def write_batch(
        self,
        upserts: dict[bytes, bytes],
        deletes: Iterable[bytes],
        applied_index: int,
        applied_term: int,
        items: dict[tuple[bytes, bytes], bytes | None] | None = None,
        cleared: Iterable[bytes] = (),
        system: dict[str, bytes] | None = None,
    ) -> None:
        """Queue one transaction; returns without waiting for it. A key in both `upserts`
        and `deletes` ends up deleted. ``cleared`` keys lose all their item records first;
        then ``items`` ((key, item) -> record, None to delete it) are written; ``system``
        records (name -> bytes) are written as given."""
        params: list[object] = []
        for name, record in (system or {}).items():
            params += (_OP_UPSERT, SYSTEM_TAG + name, record)
        for key in cleared:
            params += (_OP_CLEAR, *item_range(key))
        for key, value in upserts.items():
            params += (_OP_UPSERT, "k" + key.hex(), value)
        for key in deletes:
            params += (_OP_DELETE, "k" + key.hex(), None)
        for (key, item), record in (items or {}).items():
            skey = "m" + key.hex() + "." + item.hex()
            params += (_OP_DELETE, skey, None) if record is None else (_OP_UPSERT, skey, record)
        params += (_OP_UPSERT, APPLIED_KEY, _APPLIED.pack(applied_index, applied_term))
        with self._lock:
            self._enqueue_batch(params)

    def _enqueue_batch(self, params: list[object]) -> None:
        rows = len(params) // 3
        statements: list[tuple[str, object]] = [(_CLEAR_STAGE, ())]
        start = 0
        for size in _chunk_sizes(rows):
            statements.append((_stage_sql(size), params[start : start + size * 3]))
            start += size * 3
        # Applies only if every staged row made it: a failed stage insert leaves no trace.
        statements += [(_APPLY, (rows, rows)), ("COMMIT", ())]
        self._execute_all(statements)

    def _execute_all(self, statements: list[tuple[str, object]]) -> None:
        self._check_usable()
        try:
            for sql, args in statements:
                self._db.conn.execute(sql, args)
        except Exception as err:  # raised by sqlitedict for an earlier statement
            self._failed = err
            raise StoreError(f"state store {self.path} failed: {err!r}") from err

    def flush(self) -> None:
        """Block until everything queued so far is committed; raise if any of it failed.

        A round trip through sqlitedict's queue rather than its commit(): the batches carry
        their own COMMIT, and sqlitedict's commit request kills its thread if it fails.
        """
        self._check_usable()
        try:
            self._db.conn.select_one("SELECT 1")
        except Exception as err:
            self._failed = err
            raise StoreError(f"state store {self.path} failed: {err!r}") from err

    def backlog(self) -> int:
        """Statements queued in sqlitedict's thread: for the caller to apply backpressure
        (e.g. await asyncio.to_thread(store.flush) when it grows past a bound)."""
        return self._db.conn.reqs.qsize()

    def clear(self) -> None:
        """Delete all data and reset the applied index to (0, 0)."""
        with self._lock:
            self._execute_all([(f'DELETE FROM "{TABLE}" WHERE key != ?', (FORMAT_KEY,)),
                               ("COMMIT", ())])
        self.flush()

    # ---- snapshots -----------------------------------------------------------------

    def snapshot_to(self, dest: Path) -> tuple[int, int]:
        """Write a consistent, fsynced copy of the committed DB to dest; return the
        (index, term) it covers. Runs beside writers (own connection): for a worker thread.

        It also checkpoints the store (fsyncing its WAL file), so the store itself is durable
        up to at least the returned index: compacting the Raft log to it can never leave the
        store behind a log that no longer holds the entries in between."""
        dest = Path(dest)
        self.check_room(dest.parent, self.disk_bytes())
        with self._lock:  # between two batches, never inside one
            self._execute_all([("PRAGMA wal_checkpoint(FULL)", ())])
        self.flush()
        tmp = dest.with_name(dest.name + ".tmp")
        tmp.unlink(missing_ok=True)
        conn = sqlite3.connect(self.path, isolation_level=None)
        try:
            try:
                conn.execute("VACUUM INTO ?", (str(tmp),))
            finally:
                conn.close()
            # VACUUM INTO does not fsync its output; the Raft log may be compacted on its
            # word.
            fsync_path(tmp)
            covered = self._applied_of(tmp)
            os.replace(tmp, dest)
        except BaseException:
            tmp.unlink(missing_ok=True)  # a partial copy must not hold the space
            raise
        fsync_path(dest.parent)
        return covered

    def disk_bytes(self) -> int:
        """What the store takes on disk now (its file and its SQLite WAL): about what
        a copy of it takes."""
        total = 0
        for path in (self.path, Path(f"{self.path}-wal")):
            with contextlib.suppress(FileNotFoundError):
                total += path.stat().st_size
        return total

    def check_room(self, directory: Path, need: int) -> None:
        """Raise NoRoom unless writing ``need`` bytes in ``directory`` leaves
        ``keep_free()`` bytes free."""
        free = shutil.disk_usage(directory).free
        keep = self.keep_free()
        if free - need < keep:
            raise NoRoom(errno.ENOSPC, f"{need} bytes needed in {directory}, {free} free, "
                         f"{keep} kept for the log")

    @staticmethod
    def _applied_of(path: Path) -> tuple[int, int]:
        conn = _connect_ro(path)
        try:
            return _read_applied(conn)
        finally:
            conn.close()

    def restore_from(self, src: Path) -> None:
        """Atomically replace the DB with a snapshot file (same file system); then load()."""
        src = Path(src)
        check_format(src)  # before anything is replaced
        fsync_path(src)
        with self._lock:
            self._db.close(force=self._failed is not None)
            try:
                # A clean close checkpoints and removes the -wal; if one were left, SQLite
                # would replay the OLD database's pages onto the new file.
                for suffix in ("-wal", "-shm"):
                    Path(f"{self.path}{suffix}").unlink(missing_ok=True)
                os.replace(src, self.path)
                fsync_path(self.path.parent)
                self._failed = None
            finally:
                self._db = self._open()  # the new file, or the old one if the rename failed

    # ---- lifecycle -----------------------------------------------------------------

    def close(self) -> None:
        if self._db is None:
            return
        try:
            if self._failed is None:
                self.flush()
        finally:
            self._db.close(force=self._failed is not None)
            self._db = None  # type: ignore[assignment]

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _check_usable(self) -> None:
        if self._db is None:
            raise StoreError(f"state store {self.path} is closed")
        if self._failed is not None:
            raise StoreError(f"state store {self.path} failed earlier: {self._failed!r}")


def is_empty(path: Path) -> bool:
    """A file with no data at all (a store created but never written, a crash before its
    first commit): what a new store starts from."""
    try:
        conn = _connect_ro(path)
    except sqlite3.Error:
        return False
    try:
        return conn.execute(f'SELECT 1 FROM "{TABLE}" LIMIT 1').fetchone() is None
    except sqlite3.Error:  # no table yet, or not a database: check_format tells which
        return path.stat().st_size == 0
    finally:
        conn.close()


def check_format(path: Path) -> None:
    """Refuse a file that is not a state store of this layout."""
    try:
        conn = _connect_ro(path)
    except sqlite3.Error as error:
        raise StoreFormatError(f"{path} is not an SQLite database: {error}", path) from None
    try:
        row = conn.execute(f'SELECT value FROM "{TABLE}" WHERE key = ?',
                           (FORMAT_KEY,)).fetchone()
    except sqlite3.Error as error:
        raise StoreFormatError(f"{path} is not a respkv state store: {error}", path) from None
    finally:
        conn.close()
    if row is None:
        raise StoreFormatError(
            damaged=False, path=path, message=
            f"{path} is a state store of an older respkv (Python-serialized values), which this "
            "version does not read: start this node on an empty --dir and let it join the "
            "cluster (it receives a snapshot), or read the data out with the older version")
    if row[0] != FORMAT:
        raise StoreFormatError(f"{path} has store format {row[0]!r}, not {FORMAT!r}", path,
                               damaged=False)


def read_file(path: Path) -> tuple[int, int, dict[bytes, bytes]]:
    """(applied_index, applied_term, data) of a store file (the store's own, or a
    snapshot of it), checking its format; raises StoreFormatError. Key records only:
    ``scan_file`` has the item records too."""
    index, term, records = scan_file(path)
    return index, term, {key: value for key, item, value in records if item is None}


# One record: (key, None, value) for a key's own record, (key, item, value) for an item.
Record = tuple[bytes, bytes | None, bytes]


def scan_file(path: Path) -> tuple[int, int, Generator[Record, None, None]]:
    """The applied index and term, and every record, read one by one as the iterator is
    consumed, so that a big store is never held twice (in no particular order: a key's
    items may come before its own record); errors surface while iterating. The applied
    index and the records come from one read transaction."""
    check_format(path)
    conn = _connect_ro(path)
    conn.isolation_level = None  # transactions by hand: BEGIN below
    try:
        conn.execute("BEGIN")
        index, term = _read_applied(conn)
    except sqlite3.Error as error:
        conn.close()
        raise StoreFormatError(f"{path} cannot be read: {error}", path) from None
    return index, term, _records(path, conn)


_SYSTEM_ROWS = f'SELECT key, value FROM "{TABLE}" WHERE key >= ? AND key < ?'
_SYSTEM_RANGE = (SYSTEM_TAG, chr(ord(SYSTEM_TAG) + 1))


def read_system(path: Path) -> dict[str, bytes]:
    """A store file's system records, name -> bytes; raises StoreFormatError."""
    check_format(path)
    conn = _connect_ro(path)
    try:
        rows = conn.execute(_SYSTEM_ROWS, _SYSTEM_RANGE).fetchall()
    except sqlite3.Error as error:
        raise StoreFormatError(f"{path} cannot be read: {error}", path) from None
    finally:
        conn.close()
    return _system_records(rows)


def _system_records(rows: Iterable[tuple[str, object]]) -> dict[str, bytes]:
    records = {}
    for skey, value in rows:
        if not isinstance(value, bytes):
            raise StoreFormatError(f"the system record {skey[:40]!r} is not bytes")
        records[skey[1:]] = value
    return records


def _naming(path: Path, records: Iterator[Record]) -> Iterator[Record]:
    """``records``, with the file named in a StoreFormatError raised while reading."""
    try:
        yield from records
    except StoreFormatError as error:
        if error.path is None:
            error.path = path
        raise


def _records(path: Path, conn: sqlite3.Connection) -> Generator[Record, None, None]:
    fromhex = bytes.fromhex
    try:
        for skey, value in conn.execute(f'SELECT key, value FROM "{TABLE}"'):
            tag = skey[:1]
            if tag == "k" or tag == "m":
                if not isinstance(value, bytes):
                    raise StoreFormatError(f"the value of {skey[:40]} is not bytes")
                try:
                    if tag == "k":
                        yield fromhex(skey[1:]), None, value
                    else:
                        key, dot, item = skey[1:].partition(".")
                        if not dot:
                            raise ValueError(skey)
                        yield fromhex(key), fromhex(item), value
                except ValueError:
                    raise StoreFormatError(f"bad key {skey[:40]!r}") from None
            elif tag != SYSTEM_TAG and skey not in (APPLIED_KEY, FORMAT_KEY):
                raise StoreFormatError(f"unexpected record {skey[:40]!r}")
    except sqlite3.Error as error:
        raise StoreFormatError(f"{path} cannot be read: {error}", path) from None
    finally:
        conn.close()
