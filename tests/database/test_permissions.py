"""At rest, a database is its owner's alone: folders 0o700 and files 0o600 whatever the umask
(the database file, its WAL and shared-memory files, the lock file, blobs, temporary blob files,
the anonymous listener key)."""

from __future__ import annotations

import os
import stat
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from couchlite import Blob, Database, DatabaseConfiguration, MutableDocument
from couchlite.tls import keyprotection as store_module
from couchlite.tls.anonymous import IDENTITY_FILE_NAME, load_or_create_anonymous_identity

pytestmark = [
    pytest.mark.timeout(60),
    pytest.mark.skipif(sys.platform == "win32", reason="POSIX permission bits"),
]


def _mode(path: Path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


@pytest.fixture(params=[0o022, 0o000], ids=["umask022", "umask000"])
def permissive_umask(request: pytest.FixtureRequest) -> Iterator[int]:
    previous = os.umask(request.param)
    try:
        yield request.param
    finally:
        os.umask(previous)


def test_database_files_are_private(tmp_path: Path, permissive_umask: int) -> None:
    db = Database("private", DatabaseConfiguration(directory=tmp_path / "data"))
    try:
        collection = db.default_collection()
        doc = MutableDocument("d1")
        doc["blob"] = Blob("text/plain", b"secret attachment")
        doc["secret"] = "value"
        collection.save(doc)
        folder = db.path
        # while the database is open, SQLite's WAL and shared-memory files exist
        wal = folder / "db.sqlite3-wal"
        shm = folder / "db.sqlite3-shm"
        assert wal.exists() and shm.exists()
        assert _mode(folder) == 0o700
        for path in (folder / "db.sqlite3", wal, shm, folder / "db.lock"):
            assert _mode(path) == 0o600, path.name
        attachments = folder / "Attachments"
        assert _mode(attachments) == 0o700
        blobs = list(attachments.glob("*.blob"))
        assert len(blobs) == 1
        assert _mode(blobs[0]) == 0o600
        # a blob being written is private too, before it is complete
        engine = db._engine_or_raise()
        writer = engine.blobs.writer()
        try:
            writer.write(b"partial")
            temporary = [p for p in attachments.iterdir() if p.name.startswith("tmp-")]
            assert len(temporary) == 1
            assert _mode(temporary[0]) == 0o600
        finally:
            writer.abort()
    finally:
        db.close()
    # the parent folder is the user's: created with their umask, as any folder
    assert _mode(tmp_path / "data") == 0o777 & ~permissive_umask


def test_anonymous_key_file_is_private_and_readable_without_a_password(
    tmp_path: Path, permissive_umask: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(store_module.PASSPHRASE_ENV, raising=False)
    monkeypatch.setattr(store_module, "_working_keyring", lambda: None)
    db = Database("listener", DatabaseConfiguration(directory=tmp_path))
    try:
        identity = load_or_create_anonymous_identity(db.path, db.private_uuid)
        path = db.path / IDENTITY_FILE_NAME
        assert _mode(path) == 0o600
        assert _mode(db.path) == 0o700
        # as an SSH host key: no password, the file's mode is the protection
        reread = load_or_create_anonymous_identity(db.path)
        assert reread.certificates == identity.certificates
    finally:
        db.close()


def test_existing_files_keep_their_owners_mode(tmp_path: Path) -> None:
    # A folder the user made (and chose the mode of) is not changed behind their back.
    folder = tmp_path / "shared.cblite2"
    folder.mkdir(mode=0o750)
    os.chmod(folder, 0o750)
    db = Database("shared", DatabaseConfiguration(directory=tmp_path))
    try:
        assert _mode(folder) == 0o750
        assert _mode(folder / "db.sqlite3") == 0o600  # but what we create is private
    finally:
        db.close()
