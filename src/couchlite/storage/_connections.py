"""The connections of an SQLite store: one writer thread, a reader per thread, a checkpointer.

Concurrency: WAL mode. Exactly one thread -- the writer, started here -- owns the connection that
writes; every write is a function shipped to it and run inside ``BEGIN IMMEDIATE ... COMMIT``
(rolled back whole on any exception). Reads use one autocommit connection per calling thread,
which WAL lets run beside the writer and see only committed data. A third thread checkpoints the
log into the database file in the background (``PASSIVE``: it never blocks the writer or the
readers), so that no commit pays for a checkpoint; SQLite's own checkpoint-on-commit stays
only as a safety net (``_tuning.WAL_AUTOCHECKPOINT_PAGES``).

Read-only (``read_only=True``): no writer and no checkpointer are started; the readers open the
file with SQLite's ``mode=ro``, so they can run in a second process beside the one that owns
the database (WAL lets readers and one writer share the file), and every write is refused with
``read_only_error`` before it reaches SQLite.
"""

from __future__ import annotations

import logging
import queue
import sqlite3
import threading
from collections.abc import Callable
from concurrent.futures import Future
from pathlib import Path
from typing import Any, TypeVar

from couchlite import _tuning
from couchlite._private_files import create_private_file
from couchlite.errors import (
    CorruptDatabaseError,
    CouchliteError,
    DatabaseClosedError,
    DatabaseError,
    ErrorDomain,
    LiteCoreCode,
    NotFoundError,
)
from couchlite.storage._query_functions import register_query_functions
from couchlite.storage._schema import SCHEMA_VERSION, check_format, check_header, migrate

# the logger of the store as a whole: one name to configure for everything it reports
log = logging.getLogger("couchlite.storage.sqlite_store")

T = TypeVar("T")


def read_only_error(what: str = "write") -> DatabaseError:
    """The error of a write attempted on a database opened read-only (LiteCore's code for it)."""
    return DatabaseError(
        f"{what}: the database is open read-only",
        code=LiteCoreCode.NOT_WRITEABLE,
        domain=ErrorDomain.LITECORE,
    )


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


class StoreConnections:
    """A database file with its writer thread, its checkpointer and per-thread readers.

    The base of ``SQLiteStore``, which adds the queries.
    """

    def __init__(self, path: Path, *, create: bool = True, read_only: bool = False) -> None:
        self.path = path
        self.read_only = read_only
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
            check_header(path)
        elif not create or read_only:
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
        if read_only:
            try:
                self._check_readable()
            except BaseException:
                self.close()
                raise
            return
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

    # --- the writer thread ---------------------------------------------------------------

    def _check_readable(self) -> None:
        """Read-only open: the checks the writer makes at open, without migrating anything."""
        version = self._read(lambda c: check_format(c, self.path))
        if version == 0:
            # an empty file: its owner has only just created it (the schema comes in the same
            # transaction), so there is nothing to read yet -- not an old database
            raise NotFoundError(f"no database at {self.path} yet (it is being created)")
        if version != SCHEMA_VERSION:
            # an older file needs a migration, which only a read-write open may run
            raise DatabaseError(
                f"{self.path} has schema version {version}: open it read-write once to upgrade "
                "it before opening it read-only",
                code=LiteCoreCode.DATABASE_TOO_OLD,
                domain=ErrorDomain.LITECORE,
            )

    def _open_connection(self) -> sqlite3.Connection:
        try:
            conn = sqlite3.connect(
                # mode=ro: SQLite itself refuses writes, and no write lock is ever asked for
                f"{self.path.absolute().as_uri()}?mode=ro" if self.read_only else self.path,
                isolation_level=None,
                check_same_thread=False,
                timeout=_tuning.SQLITE_BUSY_TIMEOUT_S,
                cached_statements=256,
                uri=self.read_only,
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
            # INSERT OR REPLACE must fire the delete triggers of full-text indexes
            conn.execute("PRAGMA recursive_triggers = ON")
            register_query_functions(conn)
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
                version = check_format(conn, self.path)
                conn.execute("PRAGMA journal_mode = WAL")
                conn.execute("PRAGMA synchronous = NORMAL")
                conn.execute(f"PRAGMA wal_autocheckpoint = {_tuning.WAL_AUTOCHECKPOINT_PAGES}")
                migrate(conn, version)
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

    def _write(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``fn(connection)`` on the writer thread in one transaction; return its result."""
        if self.read_only:
            raise read_only_error()
        future: Future[T] = Future()
        with self._submit_lock:
            if self._closed_flag.is_set():
                raise DatabaseClosedError("the database is closed")
            self._jobs.put((fn, future))
        return future.result()

    # --- readers -------------------------------------------------------------------------

    def _reader(self) -> sqlite3.Connection:
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
            # one cursor for the single-row reads of _fetchone: a lookup by key steps to its
            # end within fetchone, so the statement is reset and holds no snapshot afterwards
            self._local.cursor = conn.cursor()
        return conn

    def _read(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        if self._closed_flag.is_set():
            raise DatabaseClosedError("the database is closed")
        try:
            return fn(self._reader())
        except sqlite3.Error as exc:
            if self._closed_flag.is_set():
                raise DatabaseClosedError("the database is closed") from exc
            raise translate(exc, "read") from exc

    def _fetchall(self, sql: str, params: tuple[Any, ...] | list[Any] = ()) -> list[Any]:
        return self._read(lambda c: c.execute(sql, params).fetchall())

    def _fetchone(self, sql: str, params: tuple[Any, ...] | list[Any] = ()) -> Any:
        """The row of a query that has at most one (a primary or unique key, or ``LIMIT 1``).
        Only such a query may use the thread's shared cursor: ``fetchone`` then steps it to
        its end, which resets the statement, so no read snapshot stays open after the call
        (a second row would keep one open and hold back the WAL checkpoints)."""
        # the hot path of every document read: no closure, no extra frames, no new cursor
        cursor = getattr(self._local, "cursor", None)
        if cursor is None:
            self._reader()
            cursor = self._local.cursor
        try:
            return cursor.execute(sql, params).fetchone()
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
        writer = getattr(self, "_writer", None)  # none when read-only
        if writer is not None:
            writer.join(timeout=30)
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
