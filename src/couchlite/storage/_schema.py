"""The on-disk format of a couchlite database: its tables, their migrations, and the checks
that a file is one this version can open.

Layout (schema version 5, ``PRAGMA user_version``; applied migrations are recorded in
``migrations``):

* ``info``: key/value facts -- the format marker, the public and private UUIDs;
* ``collections``: one row per collection with its ``last_seq`` (the sequence counter: monotonic,
  never reused) and its count of live documents;
* ``kv_<id>``: the documents of collection ``<id>``, keyed by sequence (so the changes feed is a
  range scan of the table itself) with a unique index on the document ID. A row holds the current
  revision (ID, flags, body) and, once the document has more than one revision, the encoded
  revision tree (the current body is never stored twice);
* ``blob_refs``: which documents reference which blob digests, so unreferenced blobs can go;
* ``remotes`` / ``remote_revs``: for each peer (by address), the revision of each document it is
  known to have (schema v2);
* ``checkpoints`` (ours, as an active replicator) and ``peer_checkpoints`` (those peers ask us to
  keep, with their ``N-cc`` revisions);
* ``indexes``: the query indexes of each collection, by name: their kind, their configuration
  (JSON), the statements that drop the SQLite objects behind them, and the side table a query
  reads (the FTS4 table of a full-text index, the element table of an array index) (schema v4);
* ``pins``: the certificate fingerprint (SHA-256, hex) first seen for each peer a replicator
  trusts on first use, by peer ID or URL (schema v5).
"""

from __future__ import annotations

import os
import secrets
import sqlite3
import time
from pathlib import Path

from couchlite.errors import CorruptDatabaseError, DatabaseError, ErrorDomain, LiteCoreCode

SCHEMA_VERSION = 5
FORMAT_MARKER = "couchlite"
SQLITE_HEADER = b"SQLite format 3\x00"

#: the columns of ``kv_<id>`` in ``DocRecord``'s order (a record is bound as it is)
DOC_COLUMNS = "(seq, doc_id, rev, flags, body, tree, expiration)"


def table(coll_id: int) -> str:
    """The table holding the documents of collection ``coll_id``."""
    return f"kv_{int(coll_id)}"


def create_collection_table(conn: sqlite3.Connection, coll_id: int) -> None:
    """Create the (empty) document table of a new collection, with its expiration index."""
    t = table(coll_id)
    conn.execute(
        f"""CREATE TABLE {t} (
            seq INTEGER PRIMARY KEY,
            doc_id TEXT NOT NULL UNIQUE,
            rev TEXT NOT NULL,
            flags INTEGER NOT NULL,
            body BLOB,
            tree BLOB,
            expiration REAL)"""
    )
    conn.execute(f"CREATE INDEX {t}_exp ON {t} (expiration) WHERE expiration IS NOT NULL")


MIGRATIONS: dict[int, list[str]] = {
    1: [
        "CREATE TABLE info (key TEXT PRIMARY KEY, value ANY) WITHOUT ROWID",
        """CREATE TABLE collections (
            id INTEGER PRIMARY KEY,
            scope TEXT NOT NULL,
            name TEXT NOT NULL,
            last_seq INTEGER NOT NULL DEFAULT 0,
            doc_count INTEGER NOT NULL DEFAULT 0,
            UNIQUE (scope, name))""",
        "CREATE TABLE migrations (version INTEGER PRIMARY KEY, applied_at REAL NOT NULL)",
        "CREATE TABLE checkpoints (id TEXT PRIMARY KEY, body BLOB NOT NULL) WITHOUT ROWID",
        """CREATE TABLE peer_checkpoints (
            client_id TEXT PRIMARY KEY, rev TEXT NOT NULL, body BLOB NOT NULL) WITHOUT ROWID""",
        """CREATE TABLE blob_refs (
            digest TEXT NOT NULL, coll INTEGER NOT NULL, doc_id TEXT NOT NULL,
            PRIMARY KEY (digest, coll, doc_id)) WITHOUT ROWID""",
        "CREATE INDEX blob_refs_doc ON blob_refs (coll, doc_id)",
    ],
    # v2: the revision each peer is known to have of each document (LiteCore's "remote
    # ancestor"), so a new session can name it in proposeChanges instead of learning it by 409
    2: [
        "CREATE TABLE remotes (id INTEGER PRIMARY KEY, address TEXT NOT NULL UNIQUE)",
        """CREATE TABLE remote_revs (
            remote INTEGER NOT NULL, coll INTEGER NOT NULL, doc_id TEXT NOT NULL,
            rev TEXT NOT NULL, PRIMARY KEY (coll, doc_id, remote)) WITHOUT ROWID""",
    ],
    # v3: when each peer checkpoint was last saved (a counter, not a clock), so that the number
    # kept can be bounded by evicting the one updated longest ago
    3: [
        "ALTER TABLE peer_checkpoints ADD COLUMN updated INTEGER NOT NULL DEFAULT 0",
        "CREATE INDEX peer_checkpoints_updated ON peer_checkpoints (updated)",
    ],
    # v4: query indexes (value and full-text), kept with what it takes to drop them
    4: [
        """CREATE TABLE indexes (
            coll INTEGER NOT NULL, name TEXT NOT NULL, kind TEXT NOT NULL, spec TEXT NOT NULL,
            drop_sql TEXT NOT NULL, side_table TEXT, PRIMARY KEY (coll, name)) WITHOUT ROWID""",
    ],
    # v5: certificate pins of trust on first use
    5: [
        """CREATE TABLE pins (
            key TEXT PRIMARY KEY, fingerprint TEXT NOT NULL, pinned_at REAL NOT NULL)
            WITHOUT ROWID""",
    ],
}


def check_header(path: Path) -> None:
    """Refuse a file that is not SQLite before SQLite gets a chance to misread it."""
    try:
        with open(path, "rb") as fh:
            header = fh.read(len(SQLITE_HEADER))
    except OSError as exc:
        raise DatabaseError(
            f"cannot read {path}: {exc.strerror}",
            code=LiteCoreCode.CANT_OPEN_FILE,
            domain=ErrorDomain.LITECORE,
        ) from exc
    if header and header != SQLITE_HEADER:
        raise CorruptDatabaseError(
            f"{path} is not a database file (bad header)", code=LiteCoreCode.NOT_A_DATABASE_FILE
        )
    if not header and os.path.getsize(path) == 0:
        return  # SQLite treats an empty file as a new database


def check_format(conn: sqlite3.Connection, path: Path) -> int:
    """The file's schema version; raise if it is not a couchlite database we can open."""
    version: int = conn.execute("PRAGMA user_version").fetchone()[0]
    if version > SCHEMA_VERSION:
        raise CorruptDatabaseError(
            f"{path} has schema version {version}, newer than this couchlite ({SCHEMA_VERSION})",
            code=LiteCoreCode.DATABASE_TOO_NEW,
        )
    if version == 0:
        tables = conn.execute("SELECT count(*) FROM sqlite_master").fetchone()[0]
        if tables:
            raise CorruptDatabaseError(
                f"{path} is an SQLite database but not a couchlite database",
                code=LiteCoreCode.NOT_A_DATABASE_FILE,
            )
    else:
        has_info = conn.execute(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'info'"
        ).fetchone()
        marker = (
            conn.execute("SELECT value FROM info WHERE key = 'format'").fetchone()
            if has_info
            else None
        )
        if marker is None or marker[0] != FORMAT_MARKER:
            raise CorruptDatabaseError(
                f"{path} is not a couchlite database",
                code=LiteCoreCode.NOT_A_DATABASE_FILE,
            )
    return version


def migrate(conn: sqlite3.Connection, version: int) -> None:
    for target in range(version + 1, SCHEMA_VERSION + 1):
        conn.execute("BEGIN IMMEDIATE")
        try:
            for statement in MIGRATIONS[target]:
                conn.execute(statement)
            if target == 1:
                conn.executemany(
                    "INSERT INTO info (key, value) VALUES (?, ?)",
                    [
                        ("format", FORMAT_MARKER),
                        ("public_uuid", secrets.token_hex(16)),
                        ("private_uuid", secrets.token_hex(16)),
                    ],
                )
            conn.execute(
                "INSERT INTO migrations (version, applied_at) VALUES (?, ?)",
                (target, time.time()),
            )
            conn.execute(f"PRAGMA user_version = {target}")
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
