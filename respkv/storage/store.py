"""The state machine's durable store: one SQLite file written through sqlitedict.

The caller keeps the data in a dict (the hot read path) and writes each applied batch here
with ``write_batch``; this module is only the durable copy, read once at start-up.

Layout: one table ``kv (key TEXT PRIMARY KEY, value BLOB)``, as sqlitedict creates it.
Data keys are ``"k" + key.hex()`` (lossless for any bytes, NUL/CR/LF included); the applied
(index, term) lives in the same table under ``"@applied"``, which no data key can equal.
Values are pickled, as sqlitedict does, so the file also reads as a plain ``SqliteDict``.

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

import os
import pickle
import sqlite3
import threading
from collections.abc import Iterable, Iterator
from functools import cache
from pathlib import Path
from typing import Self

from sqlitedict import SqliteDict

from respkv.storage.files import fsync_path

TABLE = "kv"
APPLIED_KEY = "@applied"  # data keys all start with "k": no collision possible
_MAX_CHUNK = 1024  # rows per staging statement: 3072 parameters, well under SQLite's 32766
_OP_DELETE, _OP_UPSERT = 0, 1

# Per-connection (TEMP) objects, created on each open; the trigger body is one statement
# from the outside, so it is applied or rolled back as a whole.
_SCHEMA = (
    "CREATE TEMP TABLE IF NOT EXISTS stage (op INTEGER NOT NULL, key TEXT NOT NULL, value BLOB)",
    "CREATE TEMP VIEW IF NOT EXISTS apply_stage AS SELECT 0 AS expected",
    f"""CREATE TEMP TRIGGER IF NOT EXISTS apply_stage_trigger INSTEAD OF INSERT ON apply_stage
    BEGIN
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


def encode_key(key: bytes) -> str:
    return "k" + key.hex()


def decode_key(skey: str) -> bytes:
    return bytes.fromhex(skey[1:])


def _encode_value(value: object) -> bytes:
    return pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)


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
    return sqlite3.connect(path.resolve().as_uri() + "?mode=ro", uri=True)


def _read_applied(conn: sqlite3.Connection) -> tuple[int, int]:
    row = conn.execute(f'SELECT value FROM "{TABLE}" WHERE key = ?', (APPLIED_KEY,)).fetchone()
    return pickle.loads(row[0]) if row else (0, 0)


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
        self._db = self._open()

    def _open(self) -> SqliteDict:
        db = SqliteDict(
            str(self.path),
            tablename=TABLE,
            autocommit=False,
            journal_mode="WAL",
            outer_stack=False,  # True captures a stack per statement: slow
        )
        db.conn.execute("PRAGMA synchronous=NORMAL")
        for sql in _SCHEMA:
            db.conn.execute(sql)
        return db

    # ---- reading -----------------------------------------------------------------

    def load(self) -> tuple[int, int, dict[bytes, object]]:
        """(applied_index, applied_term, data) as committed; one read transaction."""
        self.flush()
        conn = _connect_ro(self.path)
        try:
            return _read_all(conn)
        finally:
            conn.close()

    # ---- writing -----------------------------------------------------------------

    def write_batch(
        self,
        upserts: dict[bytes, object],
        deletes: Iterable[bytes],
        applied_index: int,
        applied_term: int,
    ) -> None:
        """Queue one transaction; returns without waiting for it. A key in both `upserts`
        and `deletes` ends up deleted."""
        params: list[object] = []
        for key, value in upserts.items():
            params += (_OP_UPSERT, "k" + key.hex(), _encode_value(value))
        for key in deletes:
            params += (_OP_DELETE, "k" + key.hex(), None)
        params += (_OP_UPSERT, APPLIED_KEY, _encode_value((applied_index, applied_term)))
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
            self._execute_all([(f'DELETE FROM "{TABLE}"', ()), ("COMMIT", ())])
        self.flush()

    # ---- snapshots -----------------------------------------------------------------

    def snapshot_to(self, dest: Path) -> tuple[int, int]:
        """Write a consistent, fsynced copy of the committed DB to dest; return the
        (index, term) it covers. Runs beside writers (own connection): for a worker thread.

        It also checkpoints the store (fsyncing its WAL file), so the store itself is durable
        up to at least the returned index: compacting the Raft log to it can never leave the
        store behind a log that no longer holds the entries in between."""
        with self._lock:  # between two batches, never inside one
            self._execute_all([("PRAGMA wal_checkpoint(FULL)", ())])
        self.flush()
        dest = Path(dest)
        tmp = dest.with_name(dest.name + ".tmp")
        tmp.unlink(missing_ok=True)
        conn = sqlite3.connect(self.path, isolation_level=None)
        try:
            conn.execute("VACUUM INTO ?", (str(tmp),))
        finally:
            conn.close()
        # VACUUM INTO does not fsync its output; the Raft log may be compacted on its word.
        fsync_path(tmp)
        covered = self._applied_of(tmp)
        os.replace(tmp, dest)
        fsync_path(dest.parent)
        return covered

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


def _read_all(conn: sqlite3.Connection) -> tuple[int, int, dict[bytes, object]]:
    data: dict[bytes, object] = {}
    applied = (0, 0)
    fromhex, loads = bytes.fromhex, pickle.loads
    for skey, value in conn.execute(f'SELECT key, value FROM "{TABLE}"'):
        if skey[0] == "k":
            data[fromhex(skey[1:])] = loads(value)
        elif skey == APPLIED_KEY:
            applied = loads(value)
    return applied[0], applied[1], data
