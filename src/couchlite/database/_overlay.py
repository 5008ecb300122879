"""Reading and writing through a transaction's overlay: the half of ``Engine`` that keeps a
batch in memory until it commits.

A transaction (``_transaction.Transaction``) holds the new record of each document it wrote; the
thread that owns it reads through that overlay, every other thread reads the store's committed
state. Each write appends to the undo log so that a savepoint (a nested batch) rolls back only
its own writes. New documents saved in a batch may be written on the guess that their ID is
free (``put_new_record_unverified``); ``verify`` checks such guesses in bulk.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any

from couchlite import _tuning
from couchlite._tuning import BATCH_COMPACT_BODY_BYTES
from couchlite.database._transaction import CollectionState, Key, Transaction
from couchlite.database.records import build_revision
from couchlite.storage.document_store import DocumentStore
from couchlite.storage.records import DOC_DELETED, CurrentRow, DocRecord

if TYPE_CHECKING:
    from couchlite.database.collection import Collection

#: marks "no overlay entry" in the undo log
_MISSING: Any = object()


class TransactionOverlay:
    """The overlay operations of ``Engine`` (a base class: these are its hot paths, called
    without an extra hop)."""

    store: DocumentStore
    txn: Transaction | None
    max_rev_tree_depth: int

    def in_transaction_here(self) -> bool:
        txn = self.txn
        return txn is not None and txn.owner == threading.get_ident()

    def _rollback_to(self, txn: Transaction, mark: int) -> None:
        while len(txn.undo) > mark:
            kind, key, previous = txn.undo.pop()
            if kind == "doc":  # a document object's revision, handed out before the commit
                key._revision_id, key._sequence, key._collection, key._deleted = previous
                continue
            if kind == "new":  # a guessed-new document (put_new_record_unverified)
                previous._revision_id, previous._sequence, previous._collection = None, 0, None
                previous._guessed = False
                txn.records.pop(key, None)
                txn.unverified.pop(key, None)
                continue
            target: dict[Key, Any] = txn.records if kind == "rec" else txn.expirations
            if previous is _MISSING:
                target.pop(key, None)
            else:
                target[key] = previous

    def read_record(self, state: CollectionState, doc_id: str) -> DocRecord | None:
        """The current record of a document, as this thread sees it."""
        txn = self.txn
        if txn is not None and txn.owner == threading.get_ident():
            key = (state.id, doc_id)
            self._verify_if_guessed(txn, key)
            if key in txn.records:
                return txn.records[key]
            if key in txn.origin:
                record = txn.origin[key]
            else:
                record = txn.origin[key] = self.store.get_record(state.id, doc_id)
            if record is not None and key in txn.expirations:
                record = record._replace(expiration=txn.expirations[key])
            return record
        return self.store.get_record(state.id, doc_id)

    def read_current(self, state: CollectionState, doc_id: str) -> CurrentRow | None:
        """A document's current ``(rev, seq, flags, body)`` as this thread sees it: outside
        its own transaction (the common case) one narrow query, without the tree."""
        txn = self.txn
        if txn is not None and txn.owner == threading.get_ident():
            record = self.read_record(state, doc_id)
            return None if record is None else (record.rev, record.seq, record.flags, record.body)
        return self.store.get_current(state.id, doc_id)

    def stamp_document(
        self, doc: Any, rev: str, sequence: int, collection: Any, deleted: bool = False
    ) -> None:
        """Give a document object its new revision; undone if this thread's batch rolls back."""
        txn = self.txn
        if txn is not None and txn.owner == threading.get_ident():
            previous = (doc._revision_id, doc._sequence, doc._collection, doc._deleted)
            txn.undo.append(("doc", doc, previous))
        doc._revision_id = rev
        doc._sequence = sequence
        doc._collection = collection
        doc._deleted = deleted

    def live_count(self, state: CollectionState) -> int:
        """Live documents in a collection, as this thread sees it (its batch included)."""
        count = state.doc_count
        txn = self.txn
        if txn is not None and txn.owner == threading.get_ident():
            self.verify(txn)
            for (coll_id, _), record in txn.records.items():
                if coll_id != state.id:
                    continue
                origin = txn.origin.get((coll_id, _))
                was_live = origin is not None and not origin.flags & DOC_DELETED
                is_live = record is not None and not record.flags & DOC_DELETED
                count += is_live - was_live
        return count

    def prefetch(self, txn: Transaction, state: CollectionState, doc_ids: list[str]) -> None:
        """Read the committed records of many documents in bulk before writing them."""
        wanted = [
            doc_id
            for doc_id in doc_ids
            if (state.id, doc_id) not in txn.origin and (state.id, doc_id) not in txn.records
        ]
        if not wanted:
            return
        found = self.store.get_records(state.id, wanted)
        for doc_id in wanted:
            txn.origin[(state.id, doc_id)] = found.get(doc_id)

    def _remember_origin(self, txn: Transaction, key: Key) -> None:
        """Record the committed state of a document about to be rewritten.

        A guessed-new document is verified first (which records it), so that
        ``key in txn.unverified`` always means ``txn.records[key]`` is the guessed record.
        """
        self._verify_if_guessed(txn, key)
        if key not in txn.origin:
            txn.origin[key] = self.store.get_record(key[0], key[1])

    def put_record(self, txn: Transaction, state: CollectionState, record: DocRecord) -> None:
        key = (state.id, record.doc_id)
        self._remember_origin(txn, key)
        txn.undo.append(("rec", key, txn.records.get(key, _MISSING)))
        if len(txn.records) >= _tuning.BATCH_COMPACT_AFTER:
            record = _compact_body(record)
        txn.records[key] = record
        txn.collections.add(state.id)

    def put_new_record_unverified(
        self, txn: Transaction, collection: Collection, key: Key, record: DocRecord, doc: Any
    ) -> None:
        """Write a new document on the guess that its ID is not taken yet; stamp ``doc``.

        Nothing is looked up: the store's commit inserts guessed documents only where their ID
        is free (``CommitBatch.guessed``). If the guess was wrong for any of them, nothing is
        written (``GuessedWrong``), ``verify`` rebases those documents on their stored
        revisions and the commit runs again (see ``Engine._commit``). A batch of new
        documents thus costs no look-up at all. Only for writes whose outcome, if the guess
        is wrong, is still well defined: last-write-wins saves of a document without a
        revision whose ``key`` was neither written nor read yet in this transaction.
        """
        records = txn.records
        if len(records) >= _tuning.BATCH_COMPACT_AFTER:
            record = _compact_body(record)
        records[key] = record
        txn.unverified[key] = doc
        undo = txn.undo
        if doc._sequence or doc._collection is not None or doc._deleted:
            # not a fresh document: remember exactly what to give back on rollback
            stamp = (doc._revision_id, doc._sequence, doc._collection, doc._deleted)
            undo.append(("doc", doc, stamp))
            doc._deleted = False
        undo.append(("new", key, doc))
        txn.collections.add(key[0])
        doc._revision_id = record.rev
        doc._sequence = record.seq
        doc._collection = collection
        doc._guessed = True

    def settle(self, state: CollectionState, doc: Any) -> None:
        """Check a guessed-new document now if it is in this thread's batch (``revision_id``)."""
        txn = self.txn
        if txn is not None and txn.owner == threading.get_ident():
            key = (state.id, doc._id)
            if txn.unverified.get(key) is doc:
                self.verify(txn, [key])

    def _verify_if_guessed(self, txn: Transaction, key: Key) -> None:
        if key in txn.unverified:
            self.verify(txn, [key])

    def verify(self, txn: Transaction, keys: list[Key] | None = None) -> None:
        """Check guessed-new documents against the store; rebase those that existed."""
        pending = txn.unverified
        if not pending:
            return
        todo = list(pending) if keys is None else [k for k in keys if k in pending]
        by_coll: dict[int, list[str]] = {}
        for coll_id, doc_id in todo:
            by_coll.setdefault(coll_id, []).append(doc_id)
        for coll_id, doc_ids in by_coll.items():
            found = self.store.get_records(coll_id, doc_ids)
            for doc_id in doc_ids:
                key = (coll_id, doc_id)
                doc = pending.pop(key)
                doc._guessed = False
                existing = found.get(doc_id)
                txn.origin[key] = existing
                guessed = txn.records.get(key)
                if existing is None or guessed is None:
                    continue
                rebased = build_revision(
                    existing,
                    doc_id,
                    guessed.body or b"{}",
                    deleted=False,
                    sequence=guessed.seq,
                    max_depth=self.max_rev_tree_depth,
                )
                txn.records[key] = rebased
                doc._revision_id = rebased.rev

    def purge_record(self, txn: Transaction, state: CollectionState, doc_id: str) -> None:
        key = (state.id, doc_id)
        self._remember_origin(txn, key)
        txn.undo.append(("rec", key, txn.records.get(key, _MISSING)))
        txn.records[key] = None
        txn.collections.add(state.id)

    def set_expiration(
        self, txn: Transaction, state: CollectionState, doc_id: str, when: float | None
    ) -> None:
        key = (state.id, doc_id)
        self._verify_if_guessed(txn, key)
        record = txn.records.get(key)
        if record is not None:
            txn.undo.append(("rec", key, record))
            txn.records[key] = record._replace(expiration=when)
        else:
            txn.undo.append(("exp", key, txn.expirations.get(key, _MISSING)))
            txn.expirations[key] = when
        txn.collections.add(state.id)


def _compact_body(record: DocRecord) -> DocRecord:
    """The record with its body in an exactly-sized buffer (orjson's output keeps ~4 KiB)."""
    body = record.body
    if body is not None and len(body) < BATCH_COMPACT_BODY_BYTES:
        return record._replace(body=bytes(memoryview(body)))
    return record
