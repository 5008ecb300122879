"""``Database`` and ``DatabaseConfiguration``: the public entry point of the data API."""

from __future__ import annotations

import contextlib
import copy
import logging
import shutil
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Protocol

from couchlite import _tuning
from couchlite._private_files import make_private_folder
from couchlite._strict import StrictAttributes
from couchlite.database import _registry
from couchlite.database._transaction import CollectionState
from couchlite.database.collection import Collection, Scope
from couchlite.database.engine import Engine
from couchlite.database.names import DEFAULT_NAME, check_collection_name, check_database_name
from couchlite.errors import (
    ConfigurationError,
    DatabaseClosedError,
    DatabaseError,
    ErrorDomain,
    InvalidArgumentError,
    LiteCoreCode,
    NotFoundError,
)
from couchlite.query.query import Query
from couchlite.storage._connections import read_only_error

EXTENSION = ".cblite2"

logger = logging.getLogger(__name__)


class DatabaseDependent(Protocol):
    """Something that runs on a database and must stop before the database closes.

    Replicators and listeners register with :meth:`Database._add_dependent` while they run.
    Couchbase Lite's ``close`` stops a database's replicators and listeners before it closes
    the file; :meth:`Database.close` does the same by calling :meth:`_stop_for_database_close`
    on each registered dependent.
    """

    def _stop_for_database_close(self) -> None:
        """Stop because the database is closing. Called from any thread.

        From a foreign thread: stop and wait, bounded. From the dependent's own event-loop
        thread, where waiting would deadlock: start the stop and return at once.
        """
        ...


def _writes_to_database(dependent: DatabaseDependent) -> bool:
    """Whether a dependent may write to its database. A replicator always may (it keeps its
    checkpoints there, even when it only pushes); a listener declares ``_reads_only`` when it
    refuses pushes."""
    return not getattr(dependent, "_reads_only", False)


@dataclass
class DatabaseConfiguration(StrictAttributes):
    """Where a database lives and how it keeps history.

    ``directory``: the folder holding ``<name>.cblite2/`` (default: the current directory).
    ``max_rev_tree_depth``: revisions kept per branch before older ones are pruned.
    ``read_only``: open an existing database for reading only, beside the process that owns
    it: no folder lock is taken and SQLite opens the file read-only, so a second process can
    read a live database (WAL lets readers run beside the writer). Every write -- saves,
    deletes, purges, expirations, new collections, indexes, ``compact``, replicators, listeners
    that accept pushes -- raises ``DatabaseError`` (code ``LiteCoreCode.NOT_WRITEABLE``) and
    changes nothing; opening a database that does not exist raises ``NotFoundError``.
    Assigning any other attribute raises ``AttributeError`` (a misspelt setting would
    otherwise be ignored silently).
    """

    directory: str | Path | None = None
    max_rev_tree_depth: int = _tuning.DEFAULT_MAX_REV_TREE_DEPTH
    read_only: bool = False

    def _validated(self) -> DatabaseConfiguration:
        config = copy.copy(self)
        if not isinstance(config.max_rev_tree_depth, int) or config.max_rev_tree_depth < 1:
            raise ConfigurationError("max_rev_tree_depth must be a positive integer")
        if config.directory is not None and not isinstance(config.directory, (str, Path)):
            raise ConfigurationError("directory must be a path")
        if not isinstance(config.read_only, bool):
            raise ConfigurationError("read_only must be a bool")
        return config


def _database_path(name: str, directory: str | Path | None) -> Path:
    check_database_name(name)
    return Path(directory if directory is not None else Path.cwd()) / f"{name}{EXTENSION}"


class Database:
    """An embedded document database: ``Database(name, DatabaseConfiguration(directory=...))``.

    Opens ``<directory>/<name>.cblite2/``, creating it if needed (unless the configuration is
    ``read_only``). Safe to use from any thread; several ``Database`` objects may be open on
    the same files at once.

    A read-only ``Database`` reads what the owning process has committed (collections,
    counts and sequences are re-read when asked for); its change listeners hear nothing of
    another process's writes.
    """

    def __init__(self, name: str, config: DatabaseConfiguration | None = None) -> None:
        self._config = (config or DatabaseConfiguration())._validated()
        self._name = name
        self._path = _database_path(name, self._config.directory)
        if self._path.exists() and not self._path.is_dir():
            raise DatabaseError(
                f"{self._path} exists and is not a database directory",
                domain=ErrorDomain.LITECORE,
                code=LiteCoreCode.CANT_OPEN_FILE,
            )
        if self._config.read_only and not _registry.has_database(self._path):
            raise NotFoundError(f"no database at {self._path}")
        try:
            if not self._config.read_only:  # a reader creates nothing, even if the folder went
                make_private_folder(self._path)  # 0o700: nobody else reads the documents
        except OSError as exc:
            raise DatabaseError(
                f"cannot create {self._path}: {exc.strerror}",
                domain=ErrorDomain.POSIX,
                code=exc.errno or 5,
            ) from exc
        #: running replicators and listeners, by ``id`` (dependents need not be hashable)
        self._dependents: dict[int, DatabaseDependent] = {}
        self._dependents_lock = threading.Lock()
        #: set once ``close`` starts: no new dependent may register after that
        self._closing = False
        #: one ``close`` at a time; never held by anything a dependent's stop may wait for
        self._close_lock = threading.Lock()
        self._engine: Engine | None = _registry.acquire(
            self._path, read_only=self._config.read_only
        )
        self._engine.max_rev_tree_depth = self._config.max_rev_tree_depth
        self._collections: dict[int, Collection] = {}
        try:
            self.default_collection()
        except BaseException:
            self.close()
            raise

    # --- identity and lifecycle ---------------------------------------------------------------

    @property
    def name(self) -> str:
        """The database's name, as given to the constructor (its folder is ``<name>.cblite2``)."""
        return self._name

    @property
    def path(self) -> Path:
        """The database's folder (``<directory>/<name>.cblite2``)."""
        return self._path

    @property
    def config(self) -> DatabaseConfiguration:
        """A copy of the configuration the database was opened with (editing it changes
        nothing here)."""
        return copy.copy(self._config)

    @property
    def uuid(self) -> str:
        """The public UUID (hex): how peers know this database."""
        return self._engine_or_raise().store.public_uuid

    @property
    def private_uuid(self) -> str:
        """The private UUID (hex): never shared; keys local replication checkpoints."""
        return self._engine_or_raise().store.private_uuid

    @property
    def is_read_only(self) -> bool:
        """Whether the database was opened ``read_only`` (every write raises)."""
        return self._config.read_only

    @property
    def is_closed(self) -> bool:
        """Whether :meth:`close` (or :meth:`delete`) was called on this ``Database`` object."""
        return self._engine is None

    def _engine_or_raise(self) -> Engine:
        engine = self._engine
        if engine is None or engine.closed:
            raise DatabaseClosedError(f"database {self._name!r} is closed")
        return engine

    def _add_dependent(self, dependent: DatabaseDependent) -> None:
        """Register a running replicator or listener, to be stopped by :meth:`close`.

        Idempotent; holds a strong reference until :meth:`_remove_dependent`. Raises
        ``DatabaseClosedError`` once the database is closing or closed: nothing new may start
        on it (as Couchbase Lite refuses to register a replicator on a closing database).
        A read-only database refuses a dependent that may write (``DatabaseError``,
        ``NOT_WRITEABLE``).
        """
        if self._config.read_only and _writes_to_database(dependent):
            raise read_only_error(
                f"{type(dependent).__name__} on database {self._name!r}: a replicator or a "
                "listener that accepts pushes needs a writable database"
            )
        with self._dependents_lock:
            if self._closing or self._engine is None:
                raise DatabaseClosedError(f"database {self._name!r} is closed")
            self._dependents[id(dependent)] = dependent

    def _remove_dependent(self, dependent: DatabaseDependent) -> None:
        """Unregister a dependent (it stopped). Idempotent; safe from any thread."""
        with self._dependents_lock:
            if self._dependents.get(id(dependent)) is dependent:
                del self._dependents[id(dependent)]

    def _stop_dependents(self) -> None:
        # Called without any database lock held: a dependent's stop may need the engine (a
        # replicator saves its checkpoint) or call ``_remove_dependent``.
        with self._dependents_lock:
            self._closing = True
            dependents = list(self._dependents.values())
        for dependent in dependents:
            try:
                dependent._stop_for_database_close()
            except Exception:
                # A dependent that fails to stop must not keep the database open.
                logger.warning(
                    "database %r: %r did not stop cleanly before close",
                    self._name,
                    dependent,
                    exc_info=True,
                )
        with self._dependents_lock:
            self._dependents.clear()

    def close(self) -> None:
        """Close the database; further use raises ``DatabaseClosedError``. Idempotent.

        As in Couchbase Lite, the replicators and listeners running on this ``Database`` are
        stopped first (each stop is bounded), then the database closes. Other ``Database``
        objects open on the same files are not affected. Raises ``DatabaseError`` (``BUSY``)
        inside a batch on this thread, before stopping anything.
        """
        with self._close_lock:
            engine = self._engine
            if engine is None:
                return
            if engine.in_transaction_here():
                raise DatabaseError(
                    "cannot close a database inside a batch",
                    domain=ErrorDomain.LITECORE,
                    code=LiteCoreCode.BUSY,
                )
            self._stop_dependents()
            engine.remove_listeners_of(self)
            self._engine = None
            _registry.release(engine)

    def delete(self) -> None:
        """Close the database and delete its files (refused when it is open read-only)."""
        path = self._path
        if self._config.read_only:
            raise read_only_error(f"deleting database {self._name!r}")
        self.close()
        if _registry.is_open(path):
            raise DatabaseError(
                f"database {self._name!r} is still open elsewhere in this process",
                domain=ErrorDomain.LITECORE,
                code=LiteCoreCode.BUSY,
            )
        shutil.rmtree(path, ignore_errors=False)

    @staticmethod
    def exists(name: str, directory: str | Path | None = None) -> bool:
        """Whether a database ``name`` exists in ``directory`` (default: the current directory).

        Couchbase Lite's ``Database.exists``; raises ``InvalidArgumentError`` for an invalid
        name."""
        return _registry.has_database(_database_path(name, directory))

    @staticmethod
    def delete_database(name: str, directory: str | Path | None = None) -> None:
        """Delete the files of database ``name`` in ``directory`` (default: the current
        directory); nothing happens if there is no such database.

        Raises ``DatabaseError`` (``BUSY``) while a ``Database`` object of this process has it
        open: close it first (or call :meth:`delete` on it)."""
        path = _database_path(name, directory)
        if _registry.is_open(path):
            raise DatabaseError(
                f"database {name!r} is open",
                domain=ErrorDomain.LITECORE,
                code=LiteCoreCode.BUSY,
            )
        if path.exists():
            shutil.rmtree(path)

    def __enter__(self) -> Database:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self.is_closed else "open"
        return f"Database({self._name!r}, {state})"

    # --- transactions -------------------------------------------------------------------------

    @contextlib.contextmanager
    def in_batch(self) -> Iterator[None]:
        """One transaction for everything in the block: all of it is saved, or none of it.

        Batches nest (an inner batch that raises rolls back only its own writes if the outer
        block catches the exception). Other threads see the changes only after the outermost
        batch commits; their writes wait until then. Listeners are called after the commit.
        """
        with self._engine_or_raise().transaction():
            yield

    # --- scopes and collections ---------------------------------------------------------------

    def _wrap(self, state: CollectionState) -> Collection:
        coll = self._collections.get(state.id)
        if coll is None:
            coll = self._collections[state.id] = Collection(self, state)
        return coll

    def default_collection(self) -> Collection:
        """The default collection, ``_default._default``: always there, never deleted."""
        return self.create_collection(DEFAULT_NAME, DEFAULT_NAME)

    def default_scope(self) -> Scope:
        """The default scope, ``_default``: always there (it holds the default collection)."""
        return Scope(self, DEFAULT_NAME)

    def create_collection(self, name: str, scope: str | None = None) -> Collection:
        """The collection ``scope.name``, created if needed."""
        scope = DEFAULT_NAME if scope is None else scope
        check_collection_name(name)
        check_collection_name(scope, "scope")
        engine = self._engine_or_raise()
        state = engine.find_collection(scope, name)
        if state is None:
            state = engine.create_collection(scope, name)
        return self._wrap(state)

    def create_query(self, sql: str) -> Query:
        """A SQL++ query of this database (``InvalidQueryError`` if it does not parse or names
        a collection, function or index that does not exist)."""
        return Query(self, sql)

    def collection(self, name: str, scope: str | None = None) -> Collection | None:
        """The collection ``scope.name`` (``scope=None``: ``_default``), or ``None`` if there is
        none; never creates it (:meth:`create_collection` does).

        Raises ``InvalidArgumentError`` for an invalid name."""
        scope = DEFAULT_NAME if scope is None else scope
        check_collection_name(name)
        check_collection_name(scope, "scope")
        state = self._engine_or_raise().find_collection(scope, name)
        return None if state is None else self._wrap(state)

    def collections(self, scope: str | None = None) -> list[Collection]:
        """The collections of ``scope`` (``None``: ``_default``), sorted by name; empty for a
        scope that does not exist."""
        scope = DEFAULT_NAME if scope is None else scope
        check_collection_name(scope, "scope")
        engine = self._engine_or_raise()
        if engine.read_only:  # the owning process may have created some since
            engine.refresh()
        states = [s for s in engine.collections.values() if s.scope == scope and not s.dropped]
        return [self._wrap(s) for s in sorted(states, key=lambda s: s.name)]

    def scopes(self) -> list[Scope]:
        """The scopes holding at least one collection, and always ``_default``; sorted by
        name."""
        engine = self._engine_or_raise()
        if engine.read_only:
            engine.refresh()
        names = {s.scope for s in engine.collections.values() if not s.dropped}
        names.add(DEFAULT_NAME)
        return [Scope(self, n) for n in sorted(names)]

    def scope(self, name: str) -> Scope | None:
        """The scope ``name``, or ``None`` unless it holds a collection (``_default`` always
        exists). Raises ``InvalidArgumentError`` for an invalid name."""
        check_collection_name(name, "scope")
        return next((s for s in self.scopes() if s.name == name), None)

    def delete_collection(self, name: str, scope: str | None = None) -> None:
        """Delete a collection and all its documents (the default collection stays)."""
        scope = DEFAULT_NAME if scope is None else scope
        check_collection_name(name)
        check_collection_name(scope, "scope")
        if name == DEFAULT_NAME and scope == DEFAULT_NAME:
            raise InvalidArgumentError("the default collection cannot be deleted")
        engine = self._engine_or_raise()
        state = engine.find_collection(scope, name)
        if state is not None:
            engine.drop_collection(state)
            self._collections.pop(state.id, None)

    # --- maintenance --------------------------------------------------------------------------

    def compact(self) -> None:
        """Delete unreferenced blobs and purge expired documents now."""
        engine = self._engine_or_raise()
        engine.purge_expired()
        engine.collect_all_garbage()

    # --- certificate pins (trust on first use) -------------------------------------------------

    def pins(self) -> dict[str, str]:
        """The server certificates pinned by replicators with ``trust_on_first_use``: key (the
        peer ID, or the endpoint URL when the peer has none) -> hex SHA-256 fingerprint."""
        return self._engine_or_raise().store.pins()

    def forget_pin(self, key: str) -> bool:
        """Forget the certificate pinned for ``key`` (as in :meth:`pins`), e.g. after the peer
        got a new identity: the next connection pins whatever it is shown. Returns whether a
        pin was there."""
        if not isinstance(key, str):
            raise InvalidArgumentError(f"a pin key is a string, not {type(key).__name__}")
        return self._engine_or_raise().store.delete_pin(key)

    def _pin(self, key: str) -> str | None:
        return self._engine_or_raise().store.get_pin(key)

    def _add_pin(self, key: str, fingerprint: str) -> str:
        return self._engine_or_raise().store.add_pin(key, fingerprint)
