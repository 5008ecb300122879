"""The open engines of this process, one per database folder (and mode: a read-only open gets
an engine of its own), shared by every ``Database`` opened on it and closed with the last one.

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

_engines: dict[tuple[Path, bool], tuple[Engine, int]] = {}
_lock = threading.Lock()


def _open(directory: Path, read_only: bool) -> Engine:
    """Lock the folder, then open its store and blob store, then the engine over them.

    Read-only: no lock (the owning process holds it; readers run beside it), and the blob
    store's temporary files are left alone (they may be the owner's writes in progress).
    """
    lock_file = None if read_only else lock_directory(directory)
    try:
        store = SQLiteStore.open_folder(directory, read_only=read_only)
    except BaseException:
        if lock_file is not None:
            lock_file.close()
        raise
    try:
        blobs = BlobStore(directory / "Attachments", create=not read_only)
        if not read_only:
            blobs.remove_temporary_files()
    except BaseException:
        store.close()
        if lock_file is not None:
            lock_file.close()
        raise
    return Engine(directory, lock_file, store, blobs, read_only=read_only)


def acquire(directory: Path, *, read_only: bool = False) -> Engine:
    """The engine of ``directory``, opened unless it is open already; ``release`` it."""
    key = (directory.resolve(), read_only)
    with _lock:
        engine, count = _engines.get(key) or (_open(key[0], read_only), 0)
        _engines[key] = (engine, count + 1)
        return engine


def release(engine: Engine) -> None:
    """One user of ``engine`` is done with it; the last one shuts it down."""
    key = (engine.directory, engine.read_only)
    with _lock:
        entry = _engines.get(key)
        if entry is not None and entry[0] is engine:
            if entry[1] > 1:
                _engines[key] = (engine, entry[1] - 1)
                return
            del _engines[key]
    engine.shutdown()


def is_open(directory: Path) -> bool:
    """Whether an engine of this process has ``directory`` open (read-write or read-only)."""
    resolved = directory.resolve()
    with _lock:
        return (resolved, False) in _engines or (resolved, True) in _engines


def has_database(directory: Path) -> bool:
    """Whether database folder ``directory`` holds a database (open or not)."""
    return store_exists(directory)
