"""Opening files that are not (or no longer) couchlite databases.

Every case must fail with a clear ``CorruptDatabaseError`` (``DatabaseError`` when the file cannot
be read at all) and leave the file byte-for-byte as it was: a database is never silently replaced
or "repaired" -- in particular not switched to WAL mode, which rewrites the file header.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from couchlite import CorruptDatabaseError, Database, DatabaseConfiguration, DatabaseError
from couchlite.errors import LiteCoreCode
from couchlite.storage._schema import SCHEMA_VERSION
from couchlite.storage.sqlite_store import SQLiteStore

pytestmark = pytest.mark.timeout(60)

DB_NAME = "app"


def snapshot(directory: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(directory.iterdir()) if p.is_file()}


def couchlite_file(path: Path) -> bytes:
    """A valid couchlite database file with one collection and a checkpoint."""
    store = SQLiteStore(path)
    store.create_collection("_default", "_default")
    store.set_checkpoint("cp", b"x" * 5000)
    store.close()
    assert not path.with_name(path.name + "-wal").exists()
    return path.read_bytes()


def foreign_sqlite(path: Path, user_version: int, journal: str = "delete") -> None:
    conn = sqlite3.connect(path)
    conn.execute(f"PRAGMA journal_mode = {journal}")
    conn.execute("CREATE TABLE contacts (name TEXT, phone TEXT)")
    conn.executemany("INSERT INTO contacts VALUES (?, ?)", [("a", "1"), ("b", "2")])
    conn.execute(f"PRAGMA user_version = {user_version}")
    conn.commit()
    conn.close()


def set_user_version(path: Path, version: int) -> None:
    conn = sqlite3.connect(path)
    conn.execute(f"PRAGMA user_version = {version}")
    conn.commit()
    conn.close()


# --- the bad files: each writes one at the given path -------------------------------------


def make_garbage(path: Path) -> None:
    path.write_bytes(bytes((i * 37 + 11) % 256 for i in range(8192)))


def make_short_garbage(path: Path) -> None:
    path.write_bytes(b"not a db")


def make_text_file(path: Path) -> None:
    path.write_text("SQLite format 2 -- but really a text file\n" * 100)


def make_header_only(path: Path) -> None:
    path.write_bytes(b"SQLite format 3\x00" + b"\xff" * 200)


def make_truncated_first_page(path: Path) -> None:
    data = couchlite_file(path)
    path.write_bytes(data[:100])


def make_truncated_half(path: Path) -> None:
    data = couchlite_file(path)
    assert len(data) >= 4 * 4096
    path.write_bytes(data[: len(data) // 2])


def make_foreign_v0(path: Path) -> None:
    foreign_sqlite(path, 0)


def make_foreign_v0_wal(path: Path) -> None:
    foreign_sqlite(path, 0, journal="wal")


def make_foreign_v1(path: Path) -> None:
    foreign_sqlite(path, 1)  # claims our version, but has no ``info`` table


def make_wrong_marker(path: Path) -> None:
    couchlite_file(path)
    conn = sqlite3.connect(path)
    conn.execute("UPDATE info SET value = 'somethingelse' WHERE key = 'format'")
    conn.commit()
    conn.close()


def make_newer_wal(path: Path) -> None:
    couchlite_file(path)
    set_user_version(path, SCHEMA_VERSION + 1)


def make_newer_rollback_journal(path: Path) -> None:
    couchlite_file(path)
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA journal_mode = delete")
    conn.execute("PRAGMA user_version = 42")
    conn.commit()
    conn.close()


BAD_FILES: dict[str, tuple[Callable[[Path], None], str]] = {
    "garbage": (make_garbage, "not a database"),
    "short-garbage": (make_short_garbage, "not a database"),
    "text": (make_text_file, "not a database"),
    "header-only": (make_header_only, "corrupt"),
    "truncated-first-page": (make_truncated_first_page, "corrupt"),
    "truncated-half": (make_truncated_half, "corrupt"),
    "foreign-v0": (make_foreign_v0, "not a couchlite database"),
    "foreign-v0-wal": (make_foreign_v0_wal, "not a couchlite database"),
    "foreign-v1": (make_foreign_v1, "not a couchlite database"),
    "wrong-marker": (make_wrong_marker, "not a couchlite database"),
    "newer-wal": (make_newer_wal, "newer than this couchlite"),
    "newer-rollback-journal": (make_newer_rollback_journal, "newer than this couchlite"),
}


@pytest.mark.parametrize("kind", sorted(BAD_FILES))
def test_sqlite_store_refuses_and_leaves_the_file_alone(tmp_path: Path, kind: str) -> None:
    make, message = BAD_FILES[kind]
    path = tmp_path / "db.sqlite3"
    make(path)
    before = snapshot(tmp_path)
    for _ in range(2):  # a second attempt fails the same way: nothing was "fixed" meanwhile
        with pytest.raises(CorruptDatabaseError, match=message) as info:
            SQLiteStore(path)
        assert str(path) in str(info.value)
        assert snapshot(tmp_path) == before


@pytest.mark.parametrize("kind", sorted(BAD_FILES))
def test_database_refuses_and_leaves_the_file_alone(tmp_path: Path, kind: str) -> None:
    make, message = BAD_FILES[kind]
    folder = tmp_path / f"{DB_NAME}.cblite2"
    folder.mkdir()
    make(folder / "db.sqlite3")
    (folder / "db.lock").touch()
    before = snapshot(folder)
    config = DatabaseConfiguration(directory=tmp_path)
    for _ in range(2):  # the folder lock was released: the retry fails the same way
        with pytest.raises(CorruptDatabaseError, match=message):
            Database(DB_NAME, config)
        assert snapshot(folder) == before
    assert sorted(p.name for p in folder.iterdir()) == ["db.lock", "db.sqlite3"]
    assert Database.exists(DB_NAME, directory=tmp_path)


def test_newer_database_error_code(tmp_path: Path) -> None:
    path = tmp_path / "db.sqlite3"
    make_newer_wal(path)
    with pytest.raises(CorruptDatabaseError) as info:
        SQLiteStore(path)
    assert info.value.code == LiteCoreCode.DATABASE_TOO_NEW
    assert f"schema version {SCHEMA_VERSION + 1}" in str(info.value)


def test_foreign_file_error_code(tmp_path: Path) -> None:
    path = tmp_path / "db.sqlite3"
    make_foreign_v0(path)
    with pytest.raises(CorruptDatabaseError) as info:
        SQLiteStore(path)
    assert info.value.code == LiteCoreCode.NOT_A_DATABASE_FILE
    # the other application's data is intact
    conn = sqlite3.connect(path)
    try:
        assert conn.execute("SELECT count(*) FROM contacts").fetchone() == (2,)
        assert conn.execute("PRAGMA journal_mode").fetchone() == ("delete",)
    finally:
        conn.close()


def test_a_good_database_still_opens_after_the_checks(tmp_path: Path) -> None:
    path = tmp_path / "db.sqlite3"
    couchlite_file(path)
    store = SQLiteStore(path)
    try:
        assert store.get_checkpoint("cp") == b"x" * 5000
        assert [c.name for c in store.collections()] == ["_default"]
    finally:
        store.close()


def test_database_path_that_is_a_file(tmp_path: Path) -> None:
    (tmp_path / f"{DB_NAME}.cblite2").write_bytes(b"hello")
    with pytest.raises(DatabaseError, match="not a database directory"):
        Database(DB_NAME, DatabaseConfiguration(directory=tmp_path))
    assert (tmp_path / f"{DB_NAME}.cblite2").read_bytes() == b"hello"


# --- unreadable files ---------------------------------------------------------------------


@pytest.mark.skipif(os.name != "posix", reason="POSIX permissions")
def test_unreadable_file_raises_clear_error(tmp_path: Path) -> None:
    if os.geteuid() == 0:
        # root ignores file permissions: check the same thing as 'nobody' in a child process
        _check_unreadable_as_nobody()
        return
    folder = tmp_path / f"{DB_NAME}.cblite2"
    folder.mkdir()
    path = folder / "db.sqlite3"
    couchlite_file(path)
    before = path.read_bytes()
    path.chmod(0)
    try:
        with pytest.raises(DatabaseError, match="cannot read") as info:
            SQLiteStore(path)
        assert not isinstance(info.value, CorruptDatabaseError)
        with pytest.raises(DatabaseError, match="cannot read"):
            Database(DB_NAME, DatabaseConfiguration(directory=tmp_path))
    finally:
        path.chmod(0o644)
    assert path.read_bytes() == before


CHILD = """
import sys
from pathlib import Path
from couchlite import CorruptDatabaseError, Database, DatabaseConfiguration, DatabaseError
from couchlite.storage.sqlite_store import SQLiteStore
base = Path(sys.argv[1])
for attempt in ("store", "database"):
    try:
        if attempt == "store":
            SQLiteStore(base / "app.cblite2" / "db.sqlite3")
        else:
            Database("app", DatabaseConfiguration(directory=base))
    except CorruptDatabaseError as exc:
        print(attempt, "CORRUPT", exc)
    except DatabaseError as exc:
        print(attempt, "DatabaseError", exc)
    else:
        print(attempt, "OPENED")
"""


@contextlib.contextmanager
def world_readable_dir() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="couchlite-perm-", dir="/tmp"))
    try:
        path.chmod(0o755)
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def _check_unreadable_as_nobody() -> None:
    """As root, drop to 'nobody' in a real child process to check the unreadable case."""
    import pwd

    try:
        nobody = pwd.getpwnam("nobody")
    except KeyError:
        pytest.skip("no 'nobody' user")
    with world_readable_dir() as base:
        folder = base / f"{DB_NAME}.cblite2"
        folder.mkdir()
        folder.chmod(0o777)
        path = folder / "db.sqlite3"
        couchlite_file(path)
        (folder / "db.lock").touch()
        (folder / "db.lock").chmod(0o666)
        path.chmod(0)
        before = path.read_bytes()
        try:
            result = subprocess.run(
                [sys.executable, "-c", CHILD, str(base)],
                capture_output=True,
                text=True,
                timeout=60,
                user=nobody.pw_uid,
                group=nobody.pw_gid,
                extra_groups=[],
                env={**os.environ, "PYTHONPATH": str(Path(__file__).parents[2] / "src")},
                cwd=base,
            )
        except (PermissionError, OSError) as exc:
            pytest.skip(f"cannot run a child as nobody: {exc}")
        if "ModuleNotFoundError" in result.stderr or "Permission denied" in result.stderr:
            pytest.skip(f"the child cannot import couchlite as nobody: {result.stderr[-300:]}")
        assert result.returncode == 0, result.stderr
        lines = result.stdout.splitlines()
        assert len(lines) == 2, result.stdout
        for line, attempt in zip(lines, ("store", "database"), strict=True):
            assert line.startswith(f"{attempt} DatabaseError "), line
            assert "cannot read" in line and "Permission denied" in line, line
        assert path.read_bytes() == before
