"""``SQLiteStore``: the ``DocumentStore`` of a database folder, kept in one SQLite file.

Split by job: ``_connections`` (the writer thread, a reader per thread, the background
checkpointer), ``_schema`` (the tables, their migrations, the checks that a file can be opened),
``_commit`` (the SQL of one commit); this module holds the queries and the small writes.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

from couchlite import _tuning
from couchlite.errors import ConflictError, DatabaseError
from couchlite.storage._commit import apply_commit, insert_rows, replace_blob_refs
from couchlite.storage._query_store import QueryStore, drop_indexes
from couchlite.storage._schema import create_collection_table, table
from couchlite.storage.records import (
    DOC_CONFLICTED,
    DOC_DELETED,
    DOC_HAS_BLOBS,
    ChangeRecord,
    CollectionRow,
    CommitBatch,
    CurrentRow,
    DocRecord,
    new_tuple,
)

__all__ = ["STORE_FILENAME", "SQLiteStore", "store_exists"]

#: the SQLite file inside a database folder
STORE_FILENAME = "db.sqlite3"

_GET_SQL: dict[int, str] = {}
_CURRENT_SQL: dict[int, str] = {}
_SELECT_RECORD = "SELECT seq, doc_id, rev, flags, body, tree, expiration FROM"


def store_exists(directory: Path) -> bool:
    """Whether database folder ``directory`` holds a store."""
    return (directory / STORE_FILENAME).exists()


class SQLiteStore(QueryStore):
    """A ``DocumentStore`` in one SQLite file, with its writer thread and per-thread readers."""

    def __init__(self, path: Path, *, create: bool = True, read_only: bool = False) -> None:
        super().__init__(path, create=create, read_only=read_only)
        info = dict(self._read(lambda c: c.execute("SELECT key, value FROM info").fetchall()))
        self._public_uuid = str(info["public_uuid"])
        self._private_uuid = str(info["private_uuid"])

    @classmethod
    def open_folder(cls, directory: Path, *, read_only: bool = False) -> SQLiteStore:
        """The store of database folder ``directory`` (created if missing, unless
        ``read_only``: then it must exist, and every write raises)."""
        return cls(directory / STORE_FILENAME, read_only=read_only)

    @property
    def public_uuid(self) -> str:
        return self._public_uuid

    @property
    def private_uuid(self) -> str:
        return self._private_uuid

    # --- collections ---------------------------------------------------------------------

    def collections(self) -> list[CollectionRow]:
        rows = self._read(
            lambda c: c.execute(
                "SELECT id, scope, name, last_seq, doc_count FROM collections ORDER BY id"
            ).fetchall()
        )
        return [CollectionRow(*row) for row in rows]

    def create_collection(self, scope: str, name: str) -> CollectionRow:
        def create(conn: sqlite3.Connection) -> CollectionRow:
            row = conn.execute(
                "SELECT id, scope, name, last_seq, doc_count FROM collections "
                "WHERE scope = ? AND name = ?",
                (scope, name),
            ).fetchone()
            if row is not None:
                return CollectionRow(*row)
            cur = conn.execute("INSERT INTO collections (scope, name) VALUES (?, ?)", (scope, name))
            coll_id = int(cur.lastrowid or 0)
            create_collection_table(conn, coll_id)
            return CollectionRow(coll_id, scope, name, 0, 0)

        return self._write(create)

    def drop_collection(self, coll_id: int) -> list[str]:
        """Drop a collection with its documents; returns the blob digests it referenced."""

        def drop(conn: sqlite3.Connection) -> list[str]:
            digests = [
                row[0]
                for row in conn.execute(
                    "SELECT DISTINCT digest FROM blob_refs WHERE coll = ?", (coll_id,)
                )
            ]
            conn.execute("DELETE FROM blob_refs WHERE coll = ?", (coll_id,))
            conn.execute("DELETE FROM remote_revs WHERE coll = ?", (coll_id,))
            drop_indexes(conn, coll_id)
            conn.execute(f"DROP TABLE IF EXISTS {table(coll_id)}")
            conn.execute("DELETE FROM collections WHERE id = ?", (coll_id,))
            return digests

        return self._write(drop)

    # --- documents (reads) ---------------------------------------------------------------

    def get_record(self, coll_id: int, doc_id: str) -> DocRecord | None:
        sql = _GET_SQL.get(coll_id)
        if sql is None:
            sql = _GET_SQL[coll_id] = f"{_SELECT_RECORD} {table(coll_id)} WHERE doc_id = ?"
        row = self._fetchone(sql, (doc_id,))
        return None if row is None else new_tuple(DocRecord, row)

    def get_current(self, coll_id: int, doc_id: str) -> CurrentRow | None:
        sql = _CURRENT_SQL.get(coll_id)
        if sql is None:
            sql = _CURRENT_SQL[coll_id] = (
                f"SELECT rev, seq, flags, body FROM {table(coll_id)} WHERE doc_id = ?"
            )
        row: CurrentRow | None = self._fetchone(sql, (doc_id,))
        return row

    def get_records(self, coll_id: int, doc_ids: list[str]) -> dict[str, DocRecord]:
        """Several documents in one query per ``_tuning.SQLITE_IN_LIST_IDS`` IDs."""
        out: dict[str, DocRecord] = {}
        step = _tuning.SQLITE_IN_LIST_IDS
        for start in range(0, len(doc_ids), step):
            chunk = doc_ids[start : start + step]
            marks = ",".join("?" * len(chunk))
            sql = f"{_SELECT_RECORD} {table(coll_id)} WHERE doc_id IN ({marks})"
            for row in self._fetchall(sql, chunk):
                out[row[1]] = new_tuple(DocRecord, row)
        return out

    def change_batches(
        self, coll_id: int, since: int = 0, limit: int | None = None
    ) -> Iterator[list[ChangeRecord]]:
        """Every document changed after sequence ``since``, in sequence order, a batch of at
        most ``_tuning.CHANGES_FETCH_SIZE`` per query."""
        sql = (
            f"SELECT seq, doc_id, rev, flags, coalesce(length(body), 0) FROM {table(coll_id)} "
            "WHERE seq > ? ORDER BY seq LIMIT ?"
        )
        remaining = -1 if limit is None else limit
        last = since
        while remaining != 0:
            size = _tuning.CHANGES_FETCH_SIZE
            if remaining > 0:
                size = min(size, remaining)
            rows = self._fetchall(sql, (last, size))
            if rows:
                yield rows
            if len(rows) < size:
                return
            last = rows[-1][0]
            if remaining > 0:
                remaining -= len(rows)

    def live_doc_ids(self, coll_id: int) -> Iterator[str]:
        """The IDs of the live documents, in sequence order, read in batches."""
        sql = (
            f"SELECT seq, doc_id FROM {table(coll_id)} "
            f"WHERE seq > ? AND (flags & {DOC_DELETED}) = 0 ORDER BY seq LIMIT ?"
        )
        last = 0
        size = _tuning.CHANGES_FETCH_SIZE
        while True:
            rows = self._fetchall(sql, (last, size))
            for _, doc_id in rows:
                yield doc_id
            if len(rows) < size:
                return
            last = rows[-1][0]

    def doc_ids(self, coll_id: int, *, include_deleted: bool = False) -> Iterator[str]:
        where = "" if include_deleted else f"WHERE (flags & {DOC_DELETED}) = 0 AND doc_id > ?"
        if include_deleted:
            where = "WHERE doc_id > ?"
        sql = f"SELECT doc_id FROM {table(coll_id)} {where} ORDER BY doc_id LIMIT ?"
        last = ""
        size = _tuning.CHANGES_FETCH_SIZE
        while True:
            rows = self._fetchall(sql, (last, size))
            for (doc_id,) in rows:
                yield doc_id
            if len(rows) < size:
                return
            last = rows[-1][0]

    def conflicted_doc_ids(self, coll_id: int) -> list[str]:
        rows = self._fetchall(
            f"SELECT doc_id FROM {table(coll_id)} WHERE (flags & {DOC_CONFLICTED}) != 0"
        )
        return [row[0] for row in rows]

    def commit(self, batch: CommitBatch) -> None:
        self._write(lambda conn: apply_commit(conn, batch))

    def expired_doc_ids(self, coll_id: int, now: float) -> list[str]:
        rows = self._fetchall(f"SELECT doc_id FROM {table(coll_id)} WHERE expiration <= ?", (now,))
        return [row[0] for row in rows]

    def next_expiration(self) -> float | None:
        """The earliest expiration time set in any collection."""

        def query(conn: sqlite3.Connection) -> float | None:
            ids = [r[0] for r in conn.execute("SELECT id FROM collections")]
            best: float | None = None
            for coll_id in ids:
                row = conn.execute(
                    f"SELECT min(expiration) FROM {table(coll_id)} WHERE expiration IS NOT NULL"
                ).fetchone()
                if row[0] is not None and (best is None or row[0] < best):
                    best = float(row[0])
            return best

        return self._read(query)

    def referenced_digests(self, digests: Sequence[str]) -> set[str]:
        found: set[str] = set()
        for digest in digests:
            if self._fetchone("SELECT 1 FROM blob_refs WHERE digest = ? LIMIT 1", (digest,)):
                found.add(digest)
        return found

    def all_referenced_digests(self) -> set[str]:
        rows = self._read(lambda c: c.execute("SELECT DISTINCT digest FROM blob_refs").fetchall())
        return {row[0] for row in rows}

    def blob_refs_version(self) -> int:
        """Which scan of the bodies ``blob_refs`` was computed by (``info``; 1 when unset)."""
        row = self._fetchone("SELECT value FROM info WHERE key = 'blob_refs_version'")
        return 1 if row is None else int(row[0])

    def records_containing(self, coll_id: int, needle: bytes) -> list[DocRecord]:
        """Every record whose current body or revision tree contains ``needle`` (the bodies
        kept in a tree are stored verbatim, so this finds every revision that might)."""
        rows = self._fetchall(
            f"{_SELECT_RECORD} {table(coll_id)} WHERE instr(body, ?) > 0 OR instr(tree, ?) > 0",
            (needle, needle),
        )
        return [new_tuple(DocRecord, row) for row in rows]

    def rebuild_blob_refs(self, refs: list[tuple[int, str, set[str]]], version: int) -> None:
        """Replace the blob references of the given documents (``(collection, doc ID,
        digests)``), flag ``DOC_HAS_BLOBS`` on those that have any, and record ``version``: one
        transaction."""

        def rebuild(conn: sqlite3.Connection) -> None:
            for coll_id, doc_id, digests in refs:
                replace_blob_refs(conn, coll_id, doc_id, digests)
                if digests:
                    conn.execute(
                        f"UPDATE {table(coll_id)} SET flags = flags | ? WHERE doc_id = ?",
                        (DOC_HAS_BLOBS, doc_id),
                    )
            conn.execute(
                "INSERT OR REPLACE INTO info (key, value) VALUES ('blob_refs_version', ?)",
                (version,),
            )

        self._write(rebuild)

    # --- what peers have ------------------------------------------------------------------

    def remote_id(self, address: str) -> int:
        """The small integer naming a peer (created on first use)."""
        row = self._fetchone("SELECT id FROM remotes WHERE address = ?", (address,))
        if row is not None:
            return int(row[0])

        def create(conn: sqlite3.Connection) -> int:
            conn.execute("INSERT OR IGNORE INTO remotes (address) VALUES (?)", (address,))
            found = conn.execute("SELECT id FROM remotes WHERE address = ?", (address,))
            return int(found.fetchone()[0])

        return self._write(create)

    def remote_revisions(self, remote: str, coll_id: int, doc_ids: list[str]) -> dict[str, str]:
        remote_id = self.remote_id(remote)
        out: dict[str, str] = {}
        step = _tuning.SQLITE_IN_LIST_IDS
        for start in range(0, len(doc_ids), step):
            chunk = doc_ids[start : start + step]
            marks = ",".join("?" * len(chunk))
            rows = self._fetchall(
                f"SELECT doc_id, rev FROM remote_revs WHERE coll = ? AND remote = ? "
                f"AND doc_id IN ({marks})",
                [coll_id, remote_id, *chunk],
            )
            out.update(rows)
        return out

    def set_remote_revisions(
        self, remote: str, coll_id: int, revisions: list[tuple[str, str]]
    ) -> None:
        remote_id = self.remote_id(remote)
        if not revisions:
            return
        rows = [(remote_id, coll_id, doc_id, rev) for doc_id, rev in revisions]
        head = "INSERT OR REPLACE INTO remote_revs (remote, coll, doc_id, rev)"
        self._write(lambda c: insert_rows(c, head, rows, 4))

    # --- checkpoints ---------------------------------------------------------------------

    def get_checkpoint(self, checkpoint_id: str) -> bytes | None:
        row = self._read(
            lambda c: c.execute(
                "SELECT body FROM checkpoints WHERE id = ?", (checkpoint_id,)
            ).fetchone()
        )
        return None if row is None else bytes(row[0])

    def set_checkpoint(self, checkpoint_id: str, body: bytes) -> None:
        self._write(
            lambda c: c.execute(
                "INSERT OR REPLACE INTO checkpoints (id, body) VALUES (?, ?)",
                (checkpoint_id, body),
            )
        )

    def delete_checkpoint(self, checkpoint_id: str) -> None:
        self._write(lambda c: c.execute("DELETE FROM checkpoints WHERE id = ?", (checkpoint_id,)))

    def get_peer_checkpoint(self, client_id: str) -> tuple[str, bytes] | None:
        row = self._read(
            lambda c: c.execute(
                "SELECT rev, body FROM peer_checkpoints WHERE client_id = ?", (client_id,)
            ).fetchone()
        )
        return None if row is None else (str(row[0]), bytes(row[1]))

    def set_peer_checkpoint(
        self, client_id: str, body: bytes, rev: str | None, *, keep: int | None = None
    ) -> str:
        """Store a peer's checkpoint if ``rev`` matches the stored one; return the new rev.

        Revisions are ``<n>-cc`` as LiteCore's passive side writes them (notes §4.4); a stale
        ``rev`` raises ``ConflictError`` (the peer answers 409). With ``keep``, at most that
        many checkpoints remain afterwards: those updated longest ago are deleted.
        """

        def store(conn: sqlite3.Connection) -> str:
            row = conn.execute(
                "SELECT rev FROM peer_checkpoints WHERE client_id = ?", (client_id,)
            ).fetchone()
            current = None if row is None else str(row[0])
            if (rev or None) != current:
                raise ConflictError(
                    f"checkpoint {client_id!r}: revision {rev!r} does not match {current!r}"
                )
            generation = 1 if current is None else int(current.split("-", 1)[0]) + 1
            new_rev = f"{generation}-cc"
            conn.execute(
                """INSERT OR REPLACE INTO peer_checkpoints (client_id, rev, body, updated)
                VALUES (?, ?, ?, (SELECT coalesce(max(updated), 0) + 1 FROM peer_checkpoints))""",
                (client_id, new_rev, body),
            )
            if keep is not None and row is None:
                # only a new checkpoint can take the count over the bound
                conn.execute(
                    """DELETE FROM peer_checkpoints WHERE client_id IN (
                        SELECT client_id FROM peer_checkpoints ORDER BY updated DESC
                        LIMIT -1 OFFSET ?)""",
                    (keep,),
                )
            return new_rev

        return self._write(store)

    # --- certificate pins --------------------------------------------------------------------

    def get_pin(self, key: str) -> str | None:
        row = self._fetchone("SELECT fingerprint FROM pins WHERE key = ?", (key,))
        return None if row is None else str(row[0])

    def pins(self) -> dict[str, str]:
        rows = self._read(
            lambda c: c.execute("SELECT key, fingerprint FROM pins ORDER BY key").fetchall()
        )
        return {str(key): str(fingerprint) for key, fingerprint in rows}

    def add_pin(self, key: str, fingerprint: str) -> str:
        """Pin ``fingerprint`` for ``key`` unless a pin exists; return the pin in force."""

        def add(conn: sqlite3.Connection) -> str:
            row = conn.execute("SELECT fingerprint FROM pins WHERE key = ?", (key,)).fetchone()
            if row is not None:
                return str(row[0])
            (count,) = conn.execute("SELECT count(*) FROM pins").fetchone()
            if count >= _tuning.MAX_CERTIFICATE_PINS:
                raise DatabaseError(
                    f"cannot pin the certificate of {key!r}: the database holds "
                    f"{_tuning.MAX_CERTIFICATE_PINS} pins already (forget_pin() some)"
                )
            conn.execute(
                "INSERT INTO pins (key, fingerprint, pinned_at) VALUES (?, ?, ?)",
                (key, fingerprint, time.time()),
            )
            return fingerprint

        return self._write(add)

    def delete_pin(self, key: str) -> bool:
        return bool(
            self._write(lambda c: c.execute("DELETE FROM pins WHERE key = ?", (key,)).rowcount)
        )
