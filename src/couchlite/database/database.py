"""``Database`` and ``DatabaseConfiguration``: the public entry point of the data API."""

from __future__ import annotations

import contextlib
import copy
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from couchlite import _tuning
from couchlite._private_files import make_private_folder
from couchlite.database.collection import Collection, Scope
from couchlite.database.engine import CollectionState, Engine
from couchlite.database.names import DEFAULT_NAME, check_collection_name, check_database_name
from couchlite.errors import (
    ConfigurationError,
    DatabaseClosedError,
    DatabaseError,
    ErrorDomain,
    InvalidArgumentError,
    LiteCoreCode,
)

EXTENSION = ".cblite2"


@dataclass
class DatabaseConfiguration:
    """Where a database lives and how it keeps history.

    ``directory``: the folder holding ``<name>.cblite2/`` (default: the current directory).
    ``max_rev_tree_depth``: revisions kept per branch before older ones are pruned.
    """

    directory: str | Path | None = None
    max_rev_tree_depth: int = _tuning.DEFAULT_MAX_REV_TREE_DEPTH

    def _validated(self) -> DatabaseConfiguration:
        config = copy.copy(self)
        if not isinstance(config.max_rev_tree_depth, int) or config.max_rev_tree_depth < 1:
            raise ConfigurationError("max_rev_tree_depth must be a positive integer")
        if config.directory is not None and not isinstance(config.directory, (str, Path)):
            raise ConfigurationError("directory must be a path")
        return config


def _database_path(name: str, directory: str | Path | None) -> Path:
    check_database_name(name)
    return Path(directory if directory is not None else Path.cwd()) / f"{name}{EXTENSION}"


class Database:
    """An embedded document database: ``Database(name, DatabaseConfiguration(directory=...))``.

    Opens ``<directory>/<name>.cblite2/``, creating it if needed. Safe to use from any thread;
    several ``Database`` objects may be open on the same files at once.
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
        try:
            make_private_folder(self._path)  # 0o700: nobody else reads the documents
        except OSError as exc:
            raise DatabaseError(
                f"cannot create {self._path}: {exc.strerror}",
                domain=ErrorDomain.POSIX,
                code=exc.errno or 5,
            ) from exc
        self._engine: Engine | None = Engine.acquire(self._path)
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
        return self._name

    @property
    def path(self) -> Path:
        """The database's folder (``<directory>/<name>.cblite2``)."""
        return self._path

    @property
    def config(self) -> DatabaseConfiguration:
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
    def is_closed(self) -> bool:
        return self._engine is None

    def _engine_or_raise(self) -> Engine:
        engine = self._engine
        if engine is None or engine.closed:
            raise DatabaseClosedError(f"database {self._name!r} is closed")
        return engine

    def close(self) -> None:
        """Close the database; further use raises ``DatabaseClosedError``. Idempotent."""
        engine = self._engine
        if engine is None:
            return
        if engine.in_transaction_here():
            raise DatabaseError(
                "cannot close a database inside a batch",
                domain=ErrorDomain.LITECORE,
                code=LiteCoreCode.BUSY,
            )
        engine.remove_listeners_of(self)
        self._engine = None
        engine.release()

    def delete(self) -> None:
        """Close the database and delete its files."""
        path = self._path
        self.close()
        if Engine.is_open(path):
            raise DatabaseError(
                f"database {self._name!r} is still open elsewhere in this process",
                domain=ErrorDomain.LITECORE,
                code=LiteCoreCode.BUSY,
            )
        shutil.rmtree(path, ignore_errors=False)

    @staticmethod
    def exists(name: str, directory: str | Path | None = None) -> bool:
        return (_database_path(name, directory) / "db.sqlite3").exists()

    @staticmethod
    def delete_database(name: str, directory: str | Path | None = None) -> None:
        """Delete a closed database's files (``NotFoundError``-free if absent)."""
        path = _database_path(name, directory)
        if Engine.is_open(path):
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
        return self.create_collection(DEFAULT_NAME, DEFAULT_NAME)

    def default_scope(self) -> Scope:
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

    def collection(self, name: str, scope: str | None = None) -> Collection | None:
        scope = DEFAULT_NAME if scope is None else scope
        check_collection_name(name)
        check_collection_name(scope, "scope")
        state = self._engine_or_raise().find_collection(scope, name)
        return None if state is None else self._wrap(state)

    def collections(self, scope: str | None = None) -> list[Collection]:
        scope = DEFAULT_NAME if scope is None else scope
        check_collection_name(scope, "scope")
        engine = self._engine_or_raise()
        states = [s for s in engine.collections.values() if s.scope == scope and not s.dropped]
        return [self._wrap(s) for s in sorted(states, key=lambda s: s.name)]

    def scopes(self) -> list[Scope]:
        engine = self._engine_or_raise()
        names = {s.scope for s in engine.collections.values() if not s.dropped}
        names.add(DEFAULT_NAME)
        return [Scope(self, n) for n in sorted(names)]

    def scope(self, name: str) -> Scope | None:
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
