"""The SQLite store behind a ``Database``: one file, one writer thread, a reader per thread.

Layout (schema version 1, ``PRAGMA user_version``; applied migrations are recorded in
``migrations``):

* ``info``: key/value facts -- the format marker, the public and private UUIDs;
* ``collections``: one row per collection with its ``last_seq`` (the sequence counter: monotonic,
  never reused) and its count of live documents;
* ``kv_<id>``: the documents of collection ``<id>``, keyed by sequence (so the changes feed is a
  range scan of the table itself) with a unique index on the document ID. A row holds the current
  revision (ID, flags, body) and, once the document has more than one revision, the encoded
  revision tree (the current body is never stored twice);
* ``blob_refs``: which documents reference which blob digests, so unreferenced blobs can go;
* ``remotes`` / ``remote_revs``: for each peer (by address), the revision of each document it is
  known to have (schema v2);
* ``checkpoints`` (ours, as an active replicator) and ``peer_checkpoints`` (those peers ask us to
  keep, with their ``N-cc`` revisions).

Concurrency: WAL mode. Exactly one thread -- the writer, started here -- owns the connection that
writes; every write is a function shipped to it and run inside ``BEGIN IMMEDIATE ... COMMIT``
(rolled back whole on any exception). Reads use one autocommit connection per calling thread,
which WAL lets run beside the writer and see only committed data. A third thread checkpoints the
log into the database file in the background (``PASSIVE``: it never blocks the writer or the
readers), so that no commit pays for a checkpoint; SQLite's own checkpoint-on-commit stays
only as a safety net (``_tuning.WAL_AUTOCHECKPOINT_PAGES``).
"""

from __future__ import annotations

import logging
import os
import queue
import secrets
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple, TypeVar

from couchlite import _tuning
from couchlite._private_files import create_private_file
from couchlite.errors import (
    ConflictError,
    CorruptDatabaseError,
    CouchliteError,
    DatabaseClosedError,
    DatabaseError,
    ErrorDomain,
    LiteCoreCode,
)

log = logging.getLogger(__name__)

T = TypeVar("T")

SCHEMA_VERSION = 3
FORMAT_MARKER = "couchlite"
SQLITE_HEADER = b"SQLite format 3\x00"

# document flags stored in kv_<id>.flags
DOC_DELETED = 0x01
DOC_CONFLICTED = 0x02
DOC_HAS_BLOBS = 0x04

_MIGRATIONS: dict[int, list[str]] = {
    1: [
        "CREATE TABLE info (key TEXT PRIMARY KEY, value ANY) WITHOUT ROWID",
        """CREATE TABLE collections (
            id INTEGER PRIMARY KEY,
            scope TEXT NOT NULL,
            name TEXT NOT NULL,
            last_seq INTEGER NOT NULL DEFAULT 0,
            doc_count INTEGER NOT NULL DEFAULT 0,
            UNIQUE (scope, name))""",
        "CREATE TABLE migrations (version INTEGER PRIMARY KEY, applied_at REAL NOT NULL)",
        "CREATE TABLE checkpoints (id TEXT PRIMARY KEY, body BLOB NOT NULL) WITHOUT ROWID",
        """CREATE TABLE peer_checkpoints (
            client_id TEXT PRIMARY KEY, rev TEXT NOT NULL, body BLOB NOT NULL) WITHOUT ROWID""",
        """CREATE TABLE blob_refs (
            digest TEXT NOT NULL, coll INTEGER NOT NULL, doc_id TEXT NOT NULL,
            PRIMARY KEY (digest, coll, doc_id)) WITHOUT ROWID""",
        "CREATE INDEX blob_refs_doc ON blob_refs (coll, doc_id)",
    ],
    # v2: the revision each peer is known to have of each document (LiteCore's "remote
    # ancestor"), so a new session can name it in proposeChanges instead of learning it by 409
    2: [
        "CREATE TABLE remotes (id INTEGER PRIMARY KEY, address TEXT NOT NULL UNIQUE)",
        """CREATE TABLE remote_revs (
            remote INTEGER NOT NULL, coll INTEGER NOT NULL, doc_id TEXT NOT NULL,
            rev TEXT NOT NULL, PRIMARY KEY (coll, doc_id, remote)) WITHOUT ROWID""",
    ],
    # v3: when each peer checkpoint was last saved (a counter, not a clock), so that the number
    # kept can be bounded by evicting the one updated longest ago
    3: [
        "ALTER TABLE peer_checkpoints ADD COLUMN updated INTEGER NOT NULL DEFAULT 0",
        "CREATE INDEX peer_checkpoints_updated ON peer_checkpoints (updated)",
    ],
}


@dataclass(slots=True)
class CollectionRow:
    id: int
    scope: str
    name: str
    last_seq: int
    doc_count: int


class DocRecord(NamedTuple):
    """One row of ``kv_<id>``: a document's current state.

    A tuple in the column order of ``kv_<id>``, so a batch of records is bound to an ``INSERT``
    as it is, without building a row for each.
    """

    seq: int
    doc_id: str
    rev: str
    flags: int
    body: bytes | None
    tree: bytes | None
    expiration: float | None

    @property
    def deleted(self) -> bool:
        return bool(self.flags & DOC_DELETED)


#: ``new_tuple(DocRecord, values)`` builds a record without the Python-level
#: ``NamedTuple.__new__`` (hot paths: every row read, every new document)
new_tuple = tuple.__new__


@dataclass(frozen=True, slots=True)
class ChangeRow:
    """One entry of a collection's changes feed (``Collection.changes()``): a document as of
    its latest change, which is the change numbered ``sequence``.

    ``flags`` holds the document's state bits (:attr:`deleted`, :attr:`conflicted`,
    :attr:`has_blobs` read them); ``body_size`` is the size in bytes of the current
    revision's stored JSON body (0 for a tombstone).
    """

    sequence: int
    doc_id: str
    rev_id: str
    flags: int
    body_size: int

    @property
    def deleted(self) -> bool:
        """Whether the current revision is a deletion (a tombstone)."""
        return bool(self.flags & DOC_DELETED)

    @property
    def conflicted(self) -> bool:
        """Whether the document has unresolved conflicting revisions."""
        return bool(self.flags & DOC_CONFLICTED)

    @property
    def has_blobs(self) -> bool:
        """Whether a kept revision of the document may reference blobs."""
        return bool(self.flags & DOC_HAS_BLOBS)


_GET_SQL: dict[int, str] = {}


def table(coll_id: int) -> str:
    return f"kv_{int(coll_id)}"


#: rows per multi-row ``INSERT`` (x 7 columns stays under SQLite's oldest limit of 999
#: parameters per statement)
INSERT_CHUNK_ROWS = 128


def insert_rows(
    conn: sqlite3.Connection, head: str, rows: list[Any], width: int, tail: str = ""
) -> int:
    """Insert ``rows`` (each ``width`` values) with ``head VALUES (...), ... tail``; count them.

    Full chunks of ``INSERT_CHUNK_ROWS`` go as one multi-row statement each: the values are
    bound in one C loop and SQLite inserts the whole chunk in one step, which costs about a
    third less per row than ``executemany``'s bind-step-reset per row. The rest go through
    ``executemany``. Returns the number of rows actually inserted (``sqlite3_changes``), which
    ``tail`` (an ``ON CONFLICT`` clause) may make smaller than ``len(rows)``.
    """
    marks = "(" + ", ".join("?" * width) + ")"
    inserted = 0
    full = len(rows) - len(rows) % INSERT_CHUNK_ROWS
    if full:
        chunk_sql = f"{head} VALUES {', '.join([marks] * INSERT_CHUNK_ROWS)} {tail}"
        for start in range(0, full, INSERT_CHUNK_ROWS):
            params = [value for row in rows[start : start + INSERT_CHUNK_ROWS] for value in row]
            inserted += conn.execute(chunk_sql, params).rowcount
    if full < len(rows):
        inserted += conn.executemany(f"{head} VALUES {marks} {tail}", rows[full:]).rowcount
    return inserted


def translate(exc: sqlite3.Error, what: str) -> CouchliteError:
    """Map a sqlite3 exception onto the couchlite tree (the one place this happens)."""
    text = str(exc)
    code = getattr(exc, "sqlite_errorcode", None)
    if isinstance(exc, sqlite3.DatabaseError) and (
        "not a database" in text or "malformed" in text or code in (11, 26)
    ):
        return CorruptDatabaseError(f"{what}: the database file is corrupt ({text})")
    if isinstance(exc, sqlite3.ProgrammingError) and "closed" in text:
        return DatabaseClosedError(f"{what}: the database is closed")
    return DatabaseError(f"{what}: {text}", code=code if isinstance(code, int) else 1)


class _Stop:
    pass


_Job = tuple[Callable[[sqlite3.Connection], Any], Future[Any]]


_STOP = _Stop()


class SQLiteStore:
    """A database file with its writer thread and per-thread readers."""

    def __init__(self, path: Path, *, create: bool = True) -> None:
        self.path = path
        self._closed_flag = threading.Event()
        # held while a job is queued and while close() queues the stop: no job can land
        # behind the stop (where nobody would ever run it or fail its future)
        self._submit_lock = threading.Lock()
        self._local = threading.local()
        self._readers: list[sqlite3.Connection] = []
        self._readers_lock = threading.Lock()
        #: set by the writer when a background checkpoint is due (see _checkpointer_main)
        self._checkpoint_due = threading.Event()
        #: the writer wrote something since the last background checkpoint
        self._unchecked_writes = False
        self._rows_at_checkpoint = 0
        exists = path.exists()
        if exists:
            _check_header(path)
        elif not create:
            raise DatabaseError(
                f"no database at {path}", code=LiteCoreCode.NOT_FOUND, domain=ErrorDomain.LITECORE
            )
        else:
            # 0o600 before SQLite opens it: SQLite gives -wal and -shm the main file's mode
            try:
                create_private_file(path)
            except OSError as exc:
                raise DatabaseError(
                    f"cannot create {path}: {exc.strerror}",
                    code=LiteCoreCode.CANT_OPEN_FILE,
                    domain=ErrorDomain.LITECORE,
                ) from exc
        self._jobs: queue.SimpleQueue[
            tuple[Callable[[sqlite3.Connection], Any], Future[Any]] | _Stop
        ]
        self._jobs = queue.SimpleQueue()
        ready: Future[None] = Future()
        self._writer = threading.Thread(
            target=self._writer_main,
            args=(ready,),
            name=f"couchlite-writer:{path.parent.name}",
            daemon=True,
        )
        self._writer.start()
        try:
            ready.result()
        except BaseException:
            self._writer.join(timeout=10)
            raise
        self._checkpointer = threading.Thread(
            target=self._checkpointer_main,
            name=f"couchlite-checkpoint:{path.parent.name}",
            daemon=True,
        )
        self._checkpointer.start()
        info = dict(self.read(lambda c: c.execute("SELECT key, value FROM info").fetchall()))
        self.public_uuid: str = str(info["public_uuid"])
        self.private_uuid: str = str(info["private_uuid"])

    # --- the writer thread ---------------------------------------------------------------

    def _open_connection(self) -> sqlite3.Connection:
        try:
            conn = sqlite3.connect(
                self.path,
                isolation_level=None,
                check_same_thread=False,
                timeout=_tuning.SQLITE_BUSY_TIMEOUT_S,
                cached_statements=256,
            )
        except sqlite3.Error as exc:
            raise DatabaseError(
                f"cannot open {self.path}: {exc}",
                code=LiteCoreCode.CANT_OPEN_FILE,
                domain=ErrorDomain.LITECORE,
            ) from exc
        try:
            conn.execute(f"PRAGMA cache_size = -{_tuning.SQLITE_CACHE_KIB}")
            conn.execute("PRAGMA foreign_keys = OFF")
        except sqlite3.Error as exc:
            conn.close()
            raise translate(exc, f"opening {self.path}") from exc
        return conn

    def _writer_main(self, ready: Future[None]) -> None:
        try:
            conn = self._open_connection()
            try:
                # check the format before anything writes: switching the journal mode rewrites
                # the file header, and a foreign or newer file must be left untouched
                version = self._check_format(conn)
                conn.execute("PRAGMA journal_mode = WAL")
                conn.execute("PRAGMA synchronous = NORMAL")
                conn.execute(f"PRAGMA wal_autocheckpoint = {_tuning.WAL_AUTOCHECKPOINT_PAGES}")
                self._migrate(conn, version)
            except BaseException:
                conn.close()
                raise
        except sqlite3.Error as exc:
            ready.set_exception(translate(exc, f"opening {self.path}"))
            return
        except BaseException as exc:
            ready.set_exception(exc)
            return
        ready.set_result(None)
        try:
            # one job per call: nothing of a finished job (a commit's refers to its whole
            # batch) stays referenced while the thread waits for the next one
            while self._run_next_job(conn):
                pass
        finally:
            conn.close()

    def _run_next_job(self, conn: sqlite3.Connection) -> bool:
        """Wait for a job and run it in one transaction; ``False`` once told to stop."""
        job = self._jobs.get()
        if isinstance(job, _Stop):
            return False
        fn, future = job
        if not future.set_running_or_notify_cancel():
            return True
        try:
            conn.execute("BEGIN IMMEDIATE")
            try:
                result = fn(conn)
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")
            self._note_commit(conn)
        except sqlite3.Error as exc:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            future.set_exception(translate(exc, "write"))
        except BaseException as exc:
            future.set_exception(exc)
        else:
            future.set_result(result)
        return True

    def _check_format(self, conn: sqlite3.Connection) -> int:
        """The file's schema version; raise if it is not a couchlite database we can open."""
        version: int = conn.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            raise CorruptDatabaseError(
                f"{self.path} has schema version {version}, newer than this couchlite "
                f"({SCHEMA_VERSION})",
                code=LiteCoreCode.DATABASE_TOO_NEW,
            )
        if version == 0:
            tables = conn.execute("SELECT count(*) FROM sqlite_master").fetchone()[0]
            if tables:
                raise CorruptDatabaseError(
                    f"{self.path} is an SQLite database but not a couchlite database",
                    code=LiteCoreCode.NOT_A_DATABASE_FILE,
                )
        else:
            has_info = conn.execute(
                "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'info'"
            ).fetchone()
            marker = (
                conn.execute("SELECT value FROM info WHERE key = 'format'").fetchone()
                if has_info
                else None
            )
            if marker is None or marker[0] != FORMAT_MARKER:
                raise CorruptDatabaseError(
                    f"{self.path} is not a couchlite database",
                    code=LiteCoreCode.NOT_A_DATABASE_FILE,
                )
        return version

    def _migrate(self, conn: sqlite3.Connection, version: int) -> None:
        for target in range(version + 1, SCHEMA_VERSION + 1):
            conn.execute("BEGIN IMMEDIATE")
            try:
                for statement in _MIGRATIONS[target]:
                    conn.execute(statement)
                if target == 1:
                    conn.executemany(
                        "INSERT INTO info (key, value) VALUES (?, ?)",
                        [
                            ("format", FORMAT_MARKER),
                            ("public_uuid", secrets.token_hex(16)),
                            ("private_uuid", secrets.token_hex(16)),
                        ],
                    )
                conn.execute(
                    "INSERT INTO migrations (version, applied_at) VALUES (?, ?)",
                    (target, time.time()),
                )
                conn.execute(f"PRAGMA user_version = {target}")
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise

    def _note_commit(self, conn: sqlite3.Connection) -> None:
        """After each commit (writer thread): ask for a background checkpoint when one is due."""
        self._unchecked_writes = True
        rows = conn.total_changes
        if rows - self._rows_at_checkpoint >= _tuning.WAL_CHECKPOINT_ROWS:
            self._rows_at_checkpoint = rows
            self._checkpoint_due.set()

    def _checkpointer_main(self) -> None:
        """Copy the log into the database file in the background, at most once per interval."""
        conn: sqlite3.Connection | None = None
        closed = self._closed_flag
        try:
            while not closed.is_set():
                due = self._checkpoint_due.wait(_tuning.WAL_CHECKPOINT_IDLE_S)
                if closed.is_set():
                    return
                if not due and not self._unchecked_writes:
                    continue
                self._checkpoint_due.clear()
                self._unchecked_writes = False
                try:
                    if conn is None:
                        conn = self._open_connection()
                    conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
                except (sqlite3.Error, DatabaseError):
                    # nothing is lost: the next one (or SQLite's own) copies these pages
                    log.debug("background checkpoint of %s failed", self.path, exc_info=True)
                closed.wait(_tuning.WAL_CHECKPOINT_INTERVAL_S)
        finally:
            if conn is not None:
                conn.close()

    def write(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``fn(connection)`` on the writer thread in one transaction; return its result."""
        future: Future[T] = Future()
        with self._submit_lock:
            if self._closed_flag.is_set():
                raise DatabaseClosedError("the database is closed")
            self._jobs.put((fn, future))
        return future.result()

    # --- readers -------------------------------------------------------------------------

    def reader(self) -> sqlite3.Connection:
        """This thread's read connection (autocommit: each statement sees the latest commit)."""
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            if self._closed_flag.is_set():
                raise DatabaseClosedError("the database is closed")
            conn = self._open_connection()
            conn.execute("PRAGMA query_only = 1")
            with self._readers_lock:
                closed = self._closed_flag.is_set()
                if not closed:
                    self._readers.append(conn)
            if closed:
                conn.close()
                raise DatabaseClosedError("the database is closed")
            self._local.conn = conn
        return conn

    def read(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        if self._closed_flag.is_set():
            raise DatabaseClosedError("the database is closed")
        try:
            return fn(self.reader())
        except sqlite3.Error as exc:
            if self._closed_flag.is_set():
                raise DatabaseClosedError("the database is closed") from exc
            raise translate(exc, "read") from exc

    def fetchall(self, sql: str, params: tuple[Any, ...] | list[Any] = ()) -> list[Any]:
        return self.read(lambda c: c.execute(sql, params).fetchall())

    def fetchone(self, sql: str, params: tuple[Any, ...] | list[Any] = ()) -> Any:
        # the hot path of every document read: no closure, no extra frames
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = self.reader()
        try:
            return conn.execute(sql, params).fetchone()
        except sqlite3.Error as exc:
            if self._closed_flag.is_set():
                raise DatabaseClosedError("the database is closed") from exc
            raise translate(exc, "read") from exc

    @property
    def closed(self) -> bool:
        return self._closed_flag.is_set()

    def close(self) -> None:
        with self._submit_lock:
            if self._closed_flag.is_set():
                return
            self._closed_flag.set()
            self._jobs.put(_STOP)
        self._checkpoint_due.set()
        checkpointer = getattr(self, "_checkpointer", None)
        if checkpointer is not None:
            checkpointer.join(timeout=30)
        self._writer.join(timeout=30)
        # a write that raced with close() must not wait forever
        while True:
            try:
                job = self._jobs.get_nowait()
            except queue.Empty:
                break
            if not isinstance(job, _Stop) and job[1].set_running_or_notify_cancel():
                job[1].set_exception(DatabaseClosedError("the database is closed"))
        with self._readers_lock:
            for conn in self._readers:
                try:
                    conn.close()
                except sqlite3.Error:
                    log.debug("closing a reader failed", exc_info=True)
            self._readers.clear()

    # --- collections ---------------------------------------------------------------------

    def collections(self) -> list[CollectionRow]:
        rows = self.read(
            lambda c: c.execute(
                "SELECT id, scope, name, last_seq, doc_count FROM collections ORDER BY id"
            ).fetchall()
        )
        return [CollectionRow(*row) for row in rows]

    def create_collection(self, scope: str, name: str) -> CollectionRow:
        def create(conn: sqlite3.Connection) -> CollectionRow:
            row = conn.execute(
                "SELECT id, scope, name, last_seq, doc_count FROM collections "
                "WHERE scope = ? AND name = ?",
                (scope, name),
            ).fetchone()
            if row is not None:
                return CollectionRow(*row)
            cur = conn.execute("INSERT INTO collections (scope, name) VALUES (?, ?)", (scope, name))
            coll_id = int(cur.lastrowid or 0)
            t = table(coll_id)
            conn.execute(
                f"""CREATE TABLE {t} (
                    seq INTEGER PRIMARY KEY,
                    doc_id TEXT NOT NULL UNIQUE,
                    rev TEXT NOT NULL,
                    flags INTEGER NOT NULL,
                    body BLOB,
                    tree BLOB,
                    expiration REAL)"""
            )
            conn.execute(f"CREATE INDEX {t}_exp ON {t} (expiration) WHERE expiration IS NOT NULL")
            return CollectionRow(coll_id, scope, name, 0, 0)

        return self.write(create)

    def drop_collection(self, coll_id: int) -> list[str]:
        """Drop a collection with its documents; returns the blob digests it referenced."""

        def drop(conn: sqlite3.Connection) -> list[str]:
            digests = [
                row[0]
                for row in conn.execute(
                    "SELECT DISTINCT digest FROM blob_refs WHERE coll = ?", (coll_id,)
                )
            ]
            conn.execute("DELETE FROM blob_refs WHERE coll = ?", (coll_id,))
            conn.execute("DELETE FROM remote_revs WHERE coll = ?", (coll_id,))
            conn.execute(f"DROP TABLE IF EXISTS {table(coll_id)}")
            conn.execute("DELETE FROM collections WHERE id = ?", (coll_id,))
            return digests

        return self.write(drop)

    # --- documents (reads) ---------------------------------------------------------------

    def get_record(self, coll_id: int, doc_id: str) -> DocRecord | None:
        sql = _GET_SQL.get(coll_id)
        if sql is None:
            sql = _GET_SQL[coll_id] = (
                f"SELECT seq, doc_id, rev, flags, body, tree, expiration FROM {table(coll_id)} "
                "WHERE doc_id = ?"
            )
        row = self.fetchone(sql, (doc_id,))
        return None if row is None else new_tuple(DocRecord, row)

    def get_records(self, coll_id: int, doc_ids: list[str]) -> dict[str, DocRecord]:
        """Several documents in one query per 500 IDs (the replicator's bulk look-up)."""
        out: dict[str, DocRecord] = {}
        for start in range(0, len(doc_ids), 500):
            chunk = doc_ids[start : start + 500]
            marks = ",".join("?" * len(chunk))
            sql = (
                f"SELECT seq, doc_id, rev, flags, body, tree, expiration FROM {table(coll_id)} "
                f"WHERE doc_id IN ({marks})"
            )
            for row in self.fetchall(sql, chunk):
                out[row[1]] = new_tuple(DocRecord, row)
        return out

    def changes(
        self, coll_id: int, since: int = 0, limit: int | None = None
    ) -> Iterator[ChangeRow]:
        """Every document changed after sequence ``since``, in sequence order."""
        sql = (
            f"SELECT seq, doc_id, rev, flags, coalesce(length(body), 0) FROM {table(coll_id)} "
            "WHERE seq > ? ORDER BY seq LIMIT ?"
        )
        remaining = -1 if limit is None else limit
        last = since
        while remaining != 0:
            size = _tuning.CHANGES_FETCH_SIZE
            if remaining > 0:
                size = min(size, remaining)
            rows = self.fetchall(sql, (last, size))
            for row in rows:
                yield ChangeRow(*row)
            if len(rows) < size:
                return
            last = rows[-1][0]
            if remaining > 0:
                remaining -= len(rows)

    def live_doc_ids(self, coll_id: int) -> Iterator[str]:
        """The IDs of the live documents, in sequence order, read in batches."""
        sql = (
            f"SELECT seq, doc_id FROM {table(coll_id)} "
            f"WHERE seq > ? AND (flags & {DOC_DELETED}) = 0 ORDER BY seq LIMIT ?"
        )
        last = 0
        size = _tuning.CHANGES_FETCH_SIZE
        while True:
            rows = self.fetchall(sql, (last, size))
            for _, doc_id in rows:
                yield doc_id
            if len(rows) < size:
                return
            last = rows[-1][0]

    def doc_ids(self, coll_id: int, *, include_deleted: bool = False) -> Iterator[str]:
        where = "" if include_deleted else f"WHERE (flags & {DOC_DELETED}) = 0 AND doc_id > ?"
        if include_deleted:
            where = "WHERE doc_id > ?"
        sql = f"SELECT doc_id FROM {table(coll_id)} {where} ORDER BY doc_id LIMIT ?"
        last = ""
        size = _tuning.CHANGES_FETCH_SIZE
        while True:
            rows = self.fetchall(sql, (last, size))
            for (doc_id,) in rows:
                yield doc_id
            if len(rows) < size:
                return
            last = rows[-1][0]

    def next_expiration(self) -> float | None:
        """The earliest expiration time set in any collection."""

        def query(conn: sqlite3.Connection) -> float | None:
            ids = [r[0] for r in conn.execute("SELECT id FROM collections")]
            best: float | None = None
            for coll_id in ids:
                row = conn.execute(
                    f"SELECT min(expiration) FROM {table(coll_id)} WHERE expiration IS NOT NULL"
                ).fetchone()
                if row[0] is not None and (best is None or row[0] < best):
                    best = float(row[0])
            return best

        return self.read(query)

    def referenced_digests(self, digests: list[str]) -> set[str]:
        found: set[str] = set()
        for digest in digests:
            if self.fetchone("SELECT 1 FROM blob_refs WHERE digest = ? LIMIT 1", (digest,)):
                found.add(digest)
        return found

    def all_referenced_digests(self) -> set[str]:
        rows = self.read(lambda c: c.execute("SELECT DISTINCT digest FROM blob_refs").fetchall())
        return {row[0] for row in rows}

    def blob_refs_version(self) -> int:
        """Which scan of the bodies ``blob_refs`` was computed by (``info``; 1 when unset)."""
        row = self.fetchone("SELECT value FROM info WHERE key = 'blob_refs_version'")
        return 1 if row is None else int(row[0])

    def records_containing(self, coll_id: int, needle: bytes) -> list[DocRecord]:
        """Every record whose current body or revision tree contains ``needle`` (the bodies
        kept in a tree are stored verbatim, so this finds every revision that might)."""
        rows = self.fetchall(
            f"SELECT seq, doc_id, rev, flags, body, tree, expiration FROM {table(coll_id)} "
            "WHERE instr(body, ?) > 0 OR instr(tree, ?) > 0",
            (needle, needle),
        )
        return [new_tuple(DocRecord, row) for row in rows]

    def rebuild_blob_refs(
        self, refs: list[tuple[int, str, set[str]]], flag: int, version: int
    ) -> None:
        """Replace the blob references of the given documents (``(collection, doc ID,
        digests)``), set ``flag`` on those that have any, and record ``version``: one
        transaction."""

        def rebuild(conn: sqlite3.Connection) -> None:
            for coll_id, doc_id, digests in refs:
                conn.execute(
                    "DELETE FROM blob_refs WHERE coll = ? AND doc_id = ?", (coll_id, doc_id)
                )
                conn.executemany(
                    "INSERT OR IGNORE INTO blob_refs (digest, coll, doc_id) VALUES (?, ?, ?)",
                    [(digest, coll_id, doc_id) for digest in digests],
                )
                if digests:
                    conn.execute(
                        f"UPDATE {table(coll_id)} SET flags = flags | ? WHERE doc_id = ?",
                        (flag, doc_id),
                    )
            conn.execute(
                "INSERT OR REPLACE INTO info (key, value) VALUES ('blob_refs_version', ?)",
                (version,),
            )

        self.write(rebuild)

    # --- what peers have ------------------------------------------------------------------

    def remote_id(self, address: str) -> int:
        """The small integer naming a peer (created on first use)."""
        row = self.fetchone("SELECT id FROM remotes WHERE address = ?", (address,))
        if row is not None:
            return int(row[0])

        def create(conn: sqlite3.Connection) -> int:
            conn.execute("INSERT OR IGNORE INTO remotes (address) VALUES (?)", (address,))
            found = conn.execute("SELECT id FROM remotes WHERE address = ?", (address,))
            return int(found.fetchone()[0])

        return self.write(create)

    def remote_revisions(self, remote: int, coll_id: int, doc_ids: list[str]) -> dict[str, str]:
        out: dict[str, str] = {}
        for start in range(0, len(doc_ids), 500):
            chunk = doc_ids[start : start + 500]
            marks = ",".join("?" * len(chunk))
            rows = self.fetchall(
                f"SELECT doc_id, rev FROM remote_revs WHERE coll = ? AND remote = ? "
                f"AND doc_id IN ({marks})",
                [coll_id, remote, *chunk],
            )
            out.update(rows)
        return out

    def set_remote_revisions(
        self, remote: int, coll_id: int, revisions: list[tuple[str, str]]
    ) -> None:
        if not revisions:
            return
        rows = [(remote, coll_id, doc_id, rev) for doc_id, rev in revisions]
        head = "INSERT OR REPLACE INTO remote_revs (remote, coll, doc_id, rev)"
        self.write(lambda c: insert_rows(c, head, rows, 4))

    # --- checkpoints ---------------------------------------------------------------------

    def get_checkpoint(self, checkpoint_id: str) -> bytes | None:
        row = self.read(
            lambda c: c.execute(
                "SELECT body FROM checkpoints WHERE id = ?", (checkpoint_id,)
            ).fetchone()
        )
        return None if row is None else bytes(row[0])

    def set_checkpoint(self, checkpoint_id: str, body: bytes) -> None:
        self.write(
            lambda c: c.execute(
                "INSERT OR REPLACE INTO checkpoints (id, body) VALUES (?, ?)",
                (checkpoint_id, body),
            )
        )

    def delete_checkpoint(self, checkpoint_id: str) -> None:
        self.write(lambda c: c.execute("DELETE FROM checkpoints WHERE id = ?", (checkpoint_id,)))

    def get_peer_checkpoint(self, client_id: str) -> tuple[str, bytes] | None:
        row = self.read(
            lambda c: c.execute(
                "SELECT rev, body FROM peer_checkpoints WHERE client_id = ?", (client_id,)
            ).fetchone()
        )
        return None if row is None else (str(row[0]), bytes(row[1]))

    def set_peer_checkpoint(
        self, client_id: str, body: bytes, rev: str | None, *, keep: int | None = None
    ) -> str:
        """Store a peer's checkpoint if ``rev`` matches the stored one; return the new rev.

        Revisions are ``<n>-cc`` as LiteCore's passive side writes them (notes §4.4); a stale
        ``rev`` raises ``ConflictError`` (the peer answers 409). With ``keep``, at most that
        many checkpoints remain afterwards: those updated longest ago are deleted.
        """

        def store(conn: sqlite3.Connection) -> str:
            row = conn.execute(
                "SELECT rev FROM peer_checkpoints WHERE client_id = ?", (client_id,)
            ).fetchone()
            current = None if row is None else str(row[0])
            if (rev or None) != current:
                raise ConflictError(
                    f"checkpoint {client_id!r}: revision {rev!r} does not match {current!r}"
                )
            generation = 1 if current is None else int(current.split("-", 1)[0]) + 1
            new_rev = f"{generation}-cc"
            conn.execute(
                """INSERT OR REPLACE INTO peer_checkpoints (client_id, rev, body, updated)
                VALUES (?, ?, ?, (SELECT coalesce(max(updated), 0) + 1 FROM peer_checkpoints))""",
                (client_id, new_rev, body),
            )
            if keep is not None and row is None:
                # only a new checkpoint can take the count over the bound
                conn.execute(
                    """DELETE FROM peer_checkpoints WHERE client_id IN (
                        SELECT client_id FROM peer_checkpoints ORDER BY updated DESC
                        LIMIT -1 OFFSET ?)""",
                    (keep,),
                )
            return new_rev

        return self.write(store)


def _check_header(path: Path) -> None:
    """Refuse a file that is not SQLite before SQLite gets a chance to misread it."""
    try:
        with open(path, "rb") as fh:
            header = fh.read(len(SQLITE_HEADER))
    except OSError as exc:
        raise DatabaseError(
            f"cannot read {path}: {exc.strerror}",
            code=LiteCoreCode.CANT_OPEN_FILE,
            domain=ErrorDomain.LITECORE,
        ) from exc
    if header and header != SQLITE_HEADER:
        raise CorruptDatabaseError(
            f"{path} is not a database file (bad header)", code=LiteCoreCode.NOT_A_DATABASE_FILE
        )
    if not header and os.path.getsize(path) == 0:
        return  # SQLite treats an empty file as a new database
