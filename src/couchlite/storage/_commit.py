"""The SQL of one commit: a ``CommitBatch`` applied on the writer thread, in its transaction.

Records are bound as the tuples they are, in multi-row ``INSERT`` statements: a batch of new
documents costs one statement per ``_tuning.INSERT_CHUNK_ROWS`` documents, not one per document.
"""

from __future__ import annotations

import itertools
import sqlite3
from typing import Any

from couchlite import _tuning
from couchlite.storage._schema import DOC_COLUMNS, table
from couchlite.storage.records import CommitBatch, GuessedWrong


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
    chunk = _tuning.INSERT_CHUNK_ROWS
    marks = "(" + ", ".join("?" * width) + ")"
    inserted = 0
    full = len(rows) - len(rows) % chunk
    if full:
        chunk_sql = f"{head} VALUES {', '.join([marks] * chunk)} {tail}"
        for start in range(0, full, chunk):
            params = [value for row in rows[start : start + chunk] for value in row]
            inserted += conn.execute(chunk_sql, params).rowcount
    if full < len(rows):
        inserted += conn.executemany(f"{head} VALUES {marks} {tail}", rows[full:]).rowcount
    return inserted


def replace_blob_refs(
    conn: sqlite3.Connection, coll_id: int, doc_id: str, digests: set[str]
) -> None:
    """Make ``digests`` the blobs document ``doc_id`` of collection ``coll_id`` references."""
    conn.execute("DELETE FROM blob_refs WHERE coll = ? AND doc_id = ?", (coll_id, doc_id))
    conn.executemany(
        "INSERT OR IGNORE INTO blob_refs (digest, coll, doc_id) VALUES (?, ?, ?)",
        [(digest, coll_id, doc_id) for digest in digests],
    )


def apply_commit(conn: sqlite3.Connection, batch: CommitBatch) -> None:
    """Write ``batch`` (writer thread, inside the job's transaction); ``GuessedWrong`` if a
    guessed-new document exists (the caller's transaction is then rolled back whole)."""
    touched = set(
        itertools.chain(
            batch.guessed, batch.inserts, batch.upserts, batch.purges, batch.expirations
        )
    )
    for coll_id in touched:
        t = table(coll_id)
        if coll_id in batch.purges:
            conn.executemany(f"DELETE FROM {t} WHERE doc_id = ?", batch.purges[coll_id])
            conn.executemany(
                f"DELETE FROM remote_revs WHERE coll = {int(coll_id)} AND doc_id = ?",
                batch.purges[coll_id],
            )
        rows = batch.guessed.get(coll_id)
        if rows:
            head = f"INSERT INTO {t} {DOC_COLUMNS}"
            inserted = insert_rows(conn, head, rows, 7, "ON CONFLICT (doc_id) DO NOTHING")
            if inserted != len(rows):
                raise GuessedWrong
        for verb, plans in (("INSERT", batch.inserts), ("INSERT OR REPLACE", batch.upserts)):
            if coll_id in plans:
                insert_rows(conn, f"{verb} INTO {t} {DOC_COLUMNS}", plans[coll_id], 7)
        if coll_id in batch.expirations:
            conn.executemany(
                f"UPDATE {t} SET expiration = ? WHERE doc_id = ?", batch.expirations[coll_id]
            )
    for coll_id, last_seq in batch.last_seqs.items():
        conn.execute(
            "UPDATE collections SET last_seq = max(last_seq, ?), doc_count = doc_count + ? "
            "WHERE id = ?",
            (last_seq, batch.count_deltas.get(coll_id, 0), coll_id),
        )
    for coll_id, doc_id, digests in batch.blob_refs:
        replace_blob_refs(conn, coll_id, doc_id, digests)
