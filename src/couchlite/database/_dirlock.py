"""The exclusive lock that keeps a database folder open in one process at a time."""

from __future__ import annotations

from pathlib import Path
from typing import IO

from couchlite._private_files import open_private_file
from couchlite.errors import DatabaseError, ErrorDomain, LiteCoreCode


def lock_directory(directory: Path) -> IO[bytes]:
    """Hold an exclusive lock on the database folder: one process at a time may open it."""
    try:
        handle = open_private_file(directory / "db.lock")  # held until close; 0o600
    except OSError as exc:
        raise DatabaseError(
            f"cannot open {directory}: {exc.strerror}",
            domain=ErrorDomain.POSIX,
            code=exc.errno or 5,
        ) from exc
    try:
        import fcntl
    except ImportError:  # Windows: SQLite's own locking still prevents concurrent writes
        return handle
    try:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        handle.close()
        raise DatabaseError(
            f"database {directory} is open in another process",
            domain=ErrorDomain.LITECORE,
            code=LiteCoreCode.BUSY,
        ) from exc
    return handle
