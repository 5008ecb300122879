"""The SQLite store behind a ``Database``: one file, one writer thread, a reader per thread.

The file's tables and their migrations are in ``_schema``; the writer thread, the readers and
the background checkpointer are in ``_connections``. This module holds the rows the store hands
out and the queries over them.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

from couchlite import _tuning
from couchlite.errors import ConflictError
from couchlite.storage._connections import StoreConnections, translate
from couchlite.storage._schema import FORMAT_MARKER, SCHEMA_VERSION, SQLITE_HEADER

__all__ = [
    "DOC_CONFLICTED",
    "DOC_DELETED",
    "DOC_HAS_BLOBS",
    "FORMAT_MARKER",
    "INSERT_CHUNK_ROWS",
    "SCHEMA_VERSION",
    "SQLITE_HEADER",
    "ChangeRow",
    "CollectionRow",
    "DocRecord",
    "SQLiteStore",
    "insert_rows",
    "new_tuple",
    "table",
    "translate",
]

# document flags stored in kv_<id>.flags
DOC_DELETED = 0x01
DOC_CONFLICTED = 0x02
DOC_HAS_BLOBS = 0x04


@dataclass(slots=True)
class CollectionRow:
    id: int
    scope: str
    name: str
    last_seq: int
    doc_count: int


class DocRecord(NamedTuple):
    """One row of ``kv_<id>``: a document's current state.

    A tuple in the column order of ``kv_<id>``, so a batch of records is bound to an ``INSERT``
    as it is, without building a row for each.
    """

    seq: int
    doc_id: str
    rev: str
    flags: int
    body: bytes | None
    tree: bytes | None
    expiration: float | None

    @property
    def deleted(self) -> bool:
        return bool(self.flags & DOC_DELETED)


#: ``new_tuple(DocRecord, values)`` builds a record without the Python-level
#: ``NamedTuple.__new__`` (hot paths: every row read, every new document)
new_tuple = tuple.__new__


@dataclass(frozen=True, slots=True)
class ChangeRow:
    """One entry of a collection's changes feed (``Collection.changes()``): a document as of
    its latest change, which is the change numbered ``sequence``.

    ``flags`` holds the document's state bits (:attr:`deleted`, :attr:`conflicted`,
    :attr:`has_blobs` read them); ``body_size`` is the size in bytes of the current
    revision's stored JSON body (0 for a tombstone).
    """

    sequence: int
    doc_id: str
    rev_id: str
    flags: int
    body_size: int

    @property
    def deleted(self) -> bool:
        """Whether the current revision is a deletion (a tombstone)."""
        return bool(self.flags & DOC_DELETED)

    @property
    def conflicted(self) -> bool:
        """Whether the document has unresolved conflicting revisions."""
        return bool(self.flags & DOC_CONFLICTED)

    @property
    def has_blobs(self) -> bool:
        """Whether a kept revision of the document may reference blobs."""
        return bool(self.flags & DOC_HAS_BLOBS)


_GET_SQL: dict[int, str] = {}


def table(coll_id: int) -> str:
    return f"kv_{int(coll_id)}"


#: rows per multi-row ``INSERT`` (x 7 columns stays under SQLite's oldest limit of 999
#: parameters per statement)
INSERT_CHUNK_ROWS = 128


def insert_rows(
    conn: sqlite3.Connection, head: str, rows: list[Any], width: int, tail: str = ""
) -> int:
    """Insert ``rows`` (each ``width`` values) with ``head VALUES (...), ... tail``; count them.

    Full chunks of ``INSERT_CHUNK_ROWS`` go as one multi-row statement each: the values are
    bound in one C loop and SQLite inserts the whole chunk in one step, which costs about a
    third less per row than ``executemany``'s bind-step-reset per row. The rest go through
    ``executemany``. Returns the number of rows actually inserted (``sqlite3_changes``), which
    ``tail`` (an ``ON CONFLICT`` clause) may make smaller than ``len(rows)``.
    """
    marks = "(" + ", ".join("?" * width) + ")"
    inserted = 0
    full = len(rows) - len(rows) % INSERT_CHUNK_ROWS
    if full:
        chunk_sql = f"{head} VALUES {', '.join([marks] * INSERT_CHUNK_ROWS)} {tail}"
        for start in range(0, full, INSERT_CHUNK_ROWS):
            params = [value for row in rows[start : start + INSERT_CHUNK_ROWS] for value in row]
            inserted += conn.execute(chunk_sql, params).rowcount
    if full < len(rows):
        inserted += conn.executemany(f"{head} VALUES {marks} {tail}", rows[full:]).rowcount
    return inserted


class SQLiteStore(StoreConnections):
    """A database file with its writer thread and per-thread readers."""

    def __init__(self, path: Path, *, create: bool = True) -> None:
        super().__init__(path, create=create)
        info = dict(self.read(lambda c: c.execute("SELECT key, value FROM info").fetchall()))
        self.public_uuid: str = str(info["public_uuid"])
        self.private_uuid: str = str(info["private_uuid"])

    # --- collections ---------------------------------------------------------------------

    def collections(self) -> list[CollectionRow]:
        rows = self.read(
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
            return CollectionRow(coll_id, scope, name, 0, 0)

        return self.write(create)

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
            conn.execute(f"DROP TABLE IF EXISTS {table(coll_id)}")
            conn.execute("DELETE FROM collections WHERE id = ?", (coll_id,))
            return digests

        return self.write(drop)

    # --- documents (reads) ---------------------------------------------------------------

    def get_record(self, coll_id: int, doc_id: str) -> DocRecord | None:
        sql = _GET_SQL.get(coll_id)
        if sql is None:
            sql = _GET_SQL[coll_id] = (
                f"SELECT seq, doc_id, rev, flags, body, tree, expiration FROM {table(coll_id)} "
                "WHERE doc_id = ?"
            )
        row = self.fetchone(sql, (doc_id,))
        return None if row is None else new_tuple(DocRecord, row)

    def get_records(self, coll_id: int, doc_ids: list[str]) -> dict[str, DocRecord]:
        """Several documents in one query per 500 IDs (the replicator's bulk look-up)."""
        out: dict[str, DocRecord] = {}
        for start in range(0, len(doc_ids), 500):
            chunk = doc_ids[start : start + 500]
            marks = ",".join("?" * len(chunk))
            sql = (
                f"SELECT seq, doc_id, rev, flags, body, tree, expiration FROM {table(coll_id)} "
                f"WHERE doc_id IN ({marks})"
            )
            for row in self.fetchall(sql, chunk):
                out[row[1]] = new_tuple(DocRecord, row)
        return out

    def changes(
        self, coll_id: int, since: int = 0, limit: int | None = None
    ) -> Iterator[ChangeRow]:
        """Every document changed after sequence ``since``, in sequence order."""
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
            rows = self.fetchall(sql, (last, size))
            for row in rows:
                yield ChangeRow(*row)
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
            rows = self.fetchall(sql, (last, size))
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
            rows = self.fetchall(sql, (last, size))
            for (doc_id,) in rows:
                yield doc_id
            if len(rows) < size:
                return
            last = rows[-1][0]

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

        return self.read(query)

    def referenced_digests(self, digests: list[str]) -> set[str]:
        found: set[str] = set()
        for digest in digests:
            if self.fetchone("SELECT 1 FROM blob_refs WHERE digest = ? LIMIT 1", (digest,)):
                found.add(digest)
        return found

    def all_referenced_digests(self) -> set[str]:
        rows = self.read(lambda c: c.execute("SELECT DISTINCT digest FROM blob_refs").fetchall())
        return {row[0] for row in rows}

    def blob_refs_version(self) -> int:
        """Which scan of the bodies ``blob_refs`` was computed by (``info``; 1 when unset)."""
        row = self.fetchone("SELECT value FROM info WHERE key = 'blob_refs_version'")
        return 1 if row is None else int(row[0])

    def records_containing(self, coll_id: int, needle: bytes) -> list[DocRecord]:
        """Every record whose current body or revision tree contains ``needle`` (the bodies
        kept in a tree are stored verbatim, so this finds every revision that might)."""
        rows = self.fetchall(
            f"SELECT seq, doc_id, rev, flags, body, tree, expiration FROM {table(coll_id)} "
            "WHERE instr(body, ?) > 0 OR instr(tree, ?) > 0",
            (needle, needle),
        )
        return [new_tuple(DocRecord, row) for row in rows]

    def rebuild_blob_refs(
        self, refs: list[tuple[int, str, set[str]]], flag: int, version: int
    ) -> None:
        """Replace the blob references of the given documents (``(collection, doc ID,
        digests)``), set ``flag`` on those that have any, and record ``version``: one
        transaction."""

        def rebuild(conn: sqlite3.Connection) -> None:
            for coll_id, doc_id, digests in refs:
                conn.execute(
                    "DELETE FROM blob_refs WHERE coll = ? AND doc_id = ?", (coll_id, doc_id)
                )
                conn.executemany(
                    "INSERT OR IGNORE INTO blob_refs (digest, coll, doc_id) VALUES (?, ?, ?)",
                    [(digest, coll_id, doc_id) for digest in digests],
                )
                if digests:
                    conn.execute(
                        f"UPDATE {table(coll_id)} SET flags = flags | ? WHERE doc_id = ?",
                        (flag, doc_id),
                    )
            conn.execute(
                "INSERT OR REPLACE INTO info (key, value) VALUES ('blob_refs_version', ?)",
                (version,),
            )

        self.write(rebuild)

    # --- what peers have ------------------------------------------------------------------

    def remote_id(self, address: str) -> int:
        """The small integer naming a peer (created on first use)."""
        row = self.fetchone("SELECT id FROM remotes WHERE address = ?", (address,))
        if row is not None:
            return int(row[0])

        def create(conn: sqlite3.Connection) -> int:
            conn.execute("INSERT OR IGNORE INTO remotes (address) VALUES (?)", (address,))
            found = conn.execute("SELECT id FROM remotes WHERE address = ?", (address,))
            return int(found.fetchone()[0])

        return self.write(create)

    def remote_revisions(self, remote: int, coll_id: int, doc_ids: list[str]) -> dict[str, str]:
        out: dict[str, str] = {}
        for start in range(0, len(doc_ids), 500):
            chunk = doc_ids[start : start + 500]
            marks = ",".join("?" * len(chunk))
            rows = self.fetchall(
                f"SELECT doc_id, rev FROM remote_revs WHERE coll = ? AND remote = ? "
                f"AND doc_id IN ({marks})",
                [coll_id, remote, *chunk],
            )
            out.update(rows)
        return out

    def set_remote_revisions(
        self, remote: int, coll_id: int, revisions: list[tuple[str, str]]
    ) -> None:
        if not revisions:
            return
        rows = [(remote, coll_id, doc_id, rev) for doc_id, rev in revisions]
        head = "INSERT OR REPLACE INTO remote_revs (remote, coll, doc_id, rev)"
        self.write(lambda c: insert_rows(c, head, rows, 4))

    # --- checkpoints ---------------------------------------------------------------------

    def get_checkpoint(self, checkpoint_id: str) -> bytes | None:
        row = self.read(
            lambda c: c.execute(
                "SELECT body FROM checkpoints WHERE id = ?", (checkpoint_id,)
            ).fetchone()
        )
        return None if row is None else bytes(row[0])

    def set_checkpoint(self, checkpoint_id: str, body: bytes) -> None:
        self.write(
            lambda c: c.execute(
                "INSERT OR REPLACE INTO checkpoints (id, body) VALUES (?, ?)",
                (checkpoint_id, body),
            )
        )

    def delete_checkpoint(self, checkpoint_id: str) -> None:
        self.write(lambda c: c.execute("DELETE FROM checkpoints WHERE id = ?", (checkpoint_id,)))

    def get_peer_checkpoint(self, client_id: str) -> tuple[str, bytes] | None:
        row = self.read(
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

        return self.write(store)
