"""The SQL work of one commit: planned from a transaction's overlay, run on the writer thread."""

from __future__ import annotations

import itertools
import sqlite3
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from couchlite.database.records import digests_in_record
from couchlite.storage.sqlite_store import (
    DOC_DELETED,
    DOC_HAS_BLOBS,
    DocRecord,
    insert_rows,
    table,
)

if TYPE_CHECKING:
    from couchlite.database._transaction import Transaction
    from couchlite.database.engine import Engine


class GuessedWrong(Exception):
    """A document saved as new already existed: the commit is rolled back and retried."""


#: the columns of ``kv_<id>`` in ``DocRecord``'s order (a record is bound as it is)
_COLUMNS = "(seq, doc_id, rev, flags, body, tree, expiration)"


@dataclass(slots=True)
class CommitPlan:
    """The SQL work of one commit, prepared under the lock and run on the writer thread."""

    #: documents saved as new without a look-up (``Engine.put_new_record_unverified``)
    guessed: dict[int, list[DocRecord]] = field(default_factory=dict)
    #: documents known not to exist (a plain INSERT is cheaper than INSERT OR REPLACE)
    inserts: dict[int, list[DocRecord]] = field(default_factory=dict)
    upserts: dict[int, list[DocRecord]] = field(default_factory=dict)
    purges: dict[int, list[tuple[str]]] = field(default_factory=dict)
    expirations: dict[int, list[tuple[float | None, str]]] = field(default_factory=dict)
    count_deltas: dict[int, int] = field(default_factory=dict)
    last_seqs: dict[int, int] = field(default_factory=dict)
    blob_refs: list[tuple[int, str, set[str]]] = field(default_factory=list)
    released_digests: set[str] = field(default_factory=set)
    expirations_changed: bool = False

    @classmethod
    def build(cls, engine: Engine, txn: Transaction) -> CommitPlan:
        plan = cls()
        unverified = txn.unverified
        origins = txn.origin
        guessed: list[DocRecord] = []
        guessed_coll = None
        for key, record in txn.records.items():
            coll_id, doc_id = key
            if unverified and record is not None and key in unverified:
                # the bulk of a batch of new documents: keep this branch short
                if coll_id != guessed_coll:
                    guessed = plan.guessed.setdefault(coll_id, [])
                    guessed_coll = coll_id
                guessed.append(record)
                if record.flags & DOC_HAS_BLOBS or record.expiration is not None:
                    plan._account(coll_id, doc_id, None, record)
                continue
            origin = origins.get(key)
            was_live = origin is not None and not origin.flags & DOC_DELETED
            is_live = record is not None and not record.flags & DOC_DELETED
            if was_live != is_live:
                plan.count_deltas[coll_id] = plan.count_deltas.get(coll_id, 0) + (
                    1 if is_live else -1
                )
            if record is None:
                plan.purges.setdefault(coll_id, []).append((doc_id,))
            else:
                target = plan.inserts if origin is None else plan.upserts
                target.setdefault(coll_id, []).append(record)
            plan._account(coll_id, doc_id, origin, record)
        for coll_id, rows in plan.guessed.items():
            live = sum(1 for record in rows if not record.flags & DOC_DELETED)
            plan.count_deltas[coll_id] = plan.count_deltas.get(coll_id, 0) + live
        for (coll_id, doc_id), when in txn.expirations.items():
            if (coll_id, doc_id) not in txn.records:
                plan.expirations.setdefault(coll_id, []).append((when, doc_id))
                plan.expirations_changed = True
        for coll_id in txn.collections:
            state = engine.collections.get(coll_id)
            if state is not None:
                plan.last_seqs[coll_id] = state.last_seq
        return plan

    def _account(
        self, coll_id: int, doc_id: str, origin: DocRecord | None, record: DocRecord | None
    ) -> None:
        """Expiration and blob-reference changes of one document."""
        if record is not None and record.expiration is not None:
            self.expirations_changed = True
        had_blobs = origin is not None and origin.flags & DOC_HAS_BLOBS
        has_blobs = record is not None and record.flags & DOC_HAS_BLOBS
        if had_blobs or has_blobs:
            old = digests_in_record(origin) if had_blobs and origin is not None else set()
            new = digests_in_record(record) if has_blobs and record is not None else set()
            if old != new:
                self.blob_refs.append((coll_id, doc_id, new))
                self.released_digests |= old - new

    def apply(self, conn: sqlite3.Connection) -> None:
        touched = set(
            itertools.chain(self.guessed, self.inserts, self.upserts, self.purges, self.expirations)
        )
        for coll_id in touched:
            t = table(coll_id)
            if coll_id in self.purges:
                conn.executemany(f"DELETE FROM {t} WHERE doc_id = ?", self.purges[coll_id])
                conn.executemany(
                    f"DELETE FROM remote_revs WHERE coll = {int(coll_id)} AND doc_id = ?",
                    self.purges[coll_id],
                )
            rows = self.guessed.get(coll_id)
            if rows:
                head = f"INSERT INTO {t} {_COLUMNS}"
                inserted = insert_rows(conn, head, rows, 7, "ON CONFLICT (doc_id) DO NOTHING")
                if inserted != len(rows):
                    raise GuessedWrong
            for verb, plans in (("INSERT", self.inserts), ("INSERT OR REPLACE", self.upserts)):
                if coll_id in plans:
                    insert_rows(conn, f"{verb} INTO {t} {_COLUMNS}", plans[coll_id], 7)
            if coll_id in self.expirations:
                conn.executemany(
                    f"UPDATE {t} SET expiration = ? WHERE doc_id = ?", self.expirations[coll_id]
                )
        for coll_id, last_seq in self.last_seqs.items():
            conn.execute(
                "UPDATE collections SET last_seq = max(last_seq, ?), doc_count = doc_count + ? "
                "WHERE id = ?",
                (last_seq, self.count_deltas.get(coll_id, 0), coll_id),
            )
        for coll_id, doc_id, digests in self.blob_refs:
            conn.execute("DELETE FROM blob_refs WHERE coll = ? AND doc_id = ?", (coll_id, doc_id))
            conn.executemany(
                "INSERT OR IGNORE INTO blob_refs (digest, coll, doc_id) VALUES (?, ?, ?)",
                [(digest, coll_id, doc_id) for digest in digests],
            )
