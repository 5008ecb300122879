"""The open engines of this process, one per database folder, shared by every ``Database``
opened on it and closed with the last one.

This is where a folder's storage is chosen: the engine and everything above it see only the
``DocumentStore`` interface.
"""

from __future__ import annotations

import threading
from pathlib import Path

from couchlite.database._dirlock import lock_directory
from couchlite.database.engine import Engine
from couchlite.storage.blobstore import BlobStore
from couchlite.storage.sqlite_store import SQLiteStore, store_exists

_engines: dict[Path, tuple[Engine, int]] = {}
_lock = threading.Lock()


def _open(directory: Path) -> Engine:
    """Lock the folder, then open its store and blob store, then the engine over them."""
    lock_file = lock_directory(directory)
    try:
        store = SQLiteStore.open_folder(directory)
    except BaseException:
        lock_file.close()
        raise
    try:
        blobs = BlobStore(directory / "Attachments")
        blobs.remove_temporary_files()
    except BaseException:
        store.close()
        lock_file.close()
        raise
    return Engine(directory, lock_file, store, blobs)


def acquire(directory: Path) -> Engine:
    """The engine of ``directory``, opened unless it is open already; ``release`` it."""
    key = directory.resolve()
    with _lock:
        engine, count = _engines.get(key) or (_open(key), 0)
        _engines[key] = (engine, count + 1)
        return engine


def release(engine: Engine) -> None:
    """One user of ``engine`` is done with it; the last one shuts it down."""
    with _lock:
        entry = _engines.get(engine.directory)
        if entry is not None and entry[0] is engine:
            if entry[1] > 1:
                _engines[engine.directory] = (engine, entry[1] - 1)
                return
            del _engines[engine.directory]
    engine.shutdown()


def is_open(directory: Path) -> bool:
    """Whether an engine of this process has ``directory`` open."""
    with _lock:
        return directory.resolve() in _engines


def has_database(directory: Path) -> bool:
    """Whether database folder ``directory`` holds a database (open or not)."""
    return store_exists(directory)
