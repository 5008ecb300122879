"""Private files of the key stores: atomic, owner-only writes.

A key-store file is always replaced whole (a temporary file in the same folder, ``fsync``,
``os.replace``), so a crash leaves the old file or the new one, never half of either, and it is
created readable by its owner alone. On Windows ``chmod`` only knows "read-only": the per-user
data folder (``%LOCALAPPDATA%``) is already private to the user there, which is why the key store
lives in it.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path


def make_private_folder(folder: Path) -> None:
    """Create ``folder`` (and its parents) if needed; a new leaf folder is 0o700."""
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)


def write_atomically(path: Path, data: bytes) -> None:
    """Replace ``path`` with ``data`` atomically, mode 0o600 (see the module docstring)."""
    fd, temp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        # mkstemp already creates the file 0o600; say so explicitly, it is the point.
        if hasattr(os, "fchmod"):
            os.fchmod(fd, 0o600)
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


__all__ = ["make_private_folder", "write_atomically"]
