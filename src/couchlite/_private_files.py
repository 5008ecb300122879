"""Files and folders only their owner can read: databases, WALs, blobs, keys.

Theory of operation
-------------------
Documents, blobs and private keys are nobody else's business, whatever the process's umask
(``022`` by default makes new files world-readable). So everything couchlite creates at rest is
created private from the first byte:

* folders (a database's ``.cblite2``, its ``Attachments``, a key store): ``0o700``;
* files (``db.sqlite3``, ``db.lock``, blobs and their temporary files, key files): ``0o600``.

The mode is given to ``open``/``mkdir`` *and* set again with ``chmod``: the first means the file
is never more open than that, not even for an instant (a umask only removes bits), the second
that it is exactly that even under an unusual umask (say ``0o277``, which would leave a file its
owner cannot write). Only what we create gets a mode: a folder or file that exists already keeps
the one its owner gave it.

SQLite creates a database's ``-wal`` and ``-shm`` files itself, with the main file's permission
bits (``robust_open`` in ``os_unix.c`` copies them, and ``fchmod``s past the umask): creating the
main file ``0o600`` before SQLite opens it makes all three private.

Replacing a file whole goes through :func:`write_atomically` (a temporary file in the same
folder, ``fsync``, ``os.replace``): a crash leaves the old file or the new one, never half.

Windows has no POSIX modes (``chmod`` only knows "read-only"); there the per-user folders
(``%LOCALAPPDATA%``) and the ACLs a folder inherits are what keeps files private, and the chmod
calls are skipped.
"""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
from pathlib import Path
from typing import IO

#: Mode of folders couchlite creates.
FOLDER_MODE = 0o700
#: Mode of files couchlite creates.
FILE_MODE = 0o600

_POSIX = sys.platform != "win32"


def make_private_folder(folder: Path) -> bool:
    """Create ``folder`` (parents as usual) if needed, the folder itself 0o700.

    Returns whether it was created. Raises ``OSError`` (``FileExistsError`` if it is a file).
    """
    if folder.is_dir():
        return False
    folder.parent.mkdir(parents=True, exist_ok=True)
    try:
        folder.mkdir(mode=FOLDER_MODE)
    except FileExistsError:
        if folder.is_dir():
            return False  # made by someone else in the meantime: theirs to set
        raise
    if _POSIX:
        os.chmod(folder, FOLDER_MODE)
    return True


def create_private_file(path: Path) -> bool:
    """Create ``path`` empty and 0o600 if it does not exist; returns whether it was created."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE)
    except FileExistsError:
        return False
    try:
        if _POSIX:
            os.fchmod(fd, FILE_MODE)
    finally:
        os.close(fd)
    return True


def open_private_file(path: Path) -> IO[bytes]:
    """``open(path, "a+b")``, creating the file 0o600 if it does not exist."""
    flags = os.O_RDWR | os.O_APPEND
    try:
        fd = os.open(path, flags | os.O_CREAT | os.O_EXCL, FILE_MODE)
    except FileExistsError:
        fd = os.open(path, flags)  # an existing file keeps its owner's mode
    else:
        try:
            if _POSIX:
                os.fchmod(fd, FILE_MODE)
        except BaseException:
            os.close(fd)
            raise
    return os.fdopen(fd, "a+b")


def private_temporary_file(folder: Path, *, prefix: str, suffix: str = "") -> tuple[int, str]:
    """``tempfile.mkstemp`` in ``folder``: a new file 0o600 (mkstemp's mode, made explicit)."""
    fd, name = tempfile.mkstemp(prefix=prefix, suffix=suffix, dir=folder)
    if _POSIX:
        try:
            os.fchmod(fd, FILE_MODE)
        except BaseException:
            os.close(fd)
            with contextlib.suppress(OSError):
                os.unlink(name)
            raise
    return fd, name


def write_atomically(path: Path, data: bytes) -> None:
    """Replace ``path`` with ``data`` atomically, mode 0o600 (see the module docstring)."""
    fd, temp = private_temporary_file(path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as file:
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temp)
        raise
    # Make the rename itself durable (best effort: not every platform can fsync a folder).
    with contextlib.suppress(OSError, AttributeError):
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)


__all__ = [
    "FILE_MODE",
    "FOLDER_MODE",
    "create_private_file",
    "make_private_folder",
    "open_private_file",
    "private_temporary_file",
    "write_atomically",
]
