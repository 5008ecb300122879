"""The engine behind every ``Database`` open on one file: transactions, sequences, listeners.

Theory of operation
-------------------
One ``Engine`` exists per database file per process (``Database`` objects opened on the same path
share it), so that sequences, the write lock and change notifications are the same for all of
them. Writes are serialised by the engine's re-entrant lock; whoever holds it owns the one open
``Transaction``.

A transaction keeps its writes in memory -- an overlay of document records keyed by
``(collection id, document ID)`` -- and reads through it, so the thread that writes sees its own
writes while every other thread keeps reading the last committed state. Nested transactions
(``in_batch`` inside ``in_batch``) are savepoints into the overlay's undo log: an inner failure
rolls back only the inner writes. When the outermost transaction ends, the whole overlay is
shipped to the store's writer thread as one SQLite transaction (multi-row ``INSERT``s per
collection), so a batch is all or nothing on disk as well -- a process killed mid-batch leaves
the previous state -- and costs one thread hand-off, not one per document.

A new document saved in a batch (last-write-wins, no revision yet) is not looked up at all: it is
written on the guess that its ID is free, and the commit's ``INSERT ... ON CONFLICT DO NOTHING``
counts what it inserted. Should any ID be taken, that SQLite transaction is rolled back, the
guessed documents are checked in bulk and rebased on their stored revisions (``verify``), and the
commit runs again. Reading such a document inside the batch verifies it first.

Sequences come from an in-memory counter per collection (loaded at open, persisted with every
commit). A rolled-back transaction leaves a gap; a sequence is never handed out twice.

After a commit, blobs nobody references any more are deleted -- except those pinned by a write
still in progress, such as a received revision waiting in an insert batch (see "blob garbage
collection" below) -- and change listeners are called on the committing thread, after the lock
is released.

Beside this module: ``_transaction`` (a transaction's state and its ``with`` scope),
``_commit_plan`` (the SQL of one commit), ``_listeners`` (change listeners and their dispatch)
and ``_dirlock`` (the one-process-per-folder lock).
"""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from couchlite import _tuning
from couchlite.database._commit_plan import CommitPlan, GuessedWrong
from couchlite.database._dirlock import lock_directory
from couchlite.database._listeners import ChangeNotifier, ListenerEntry
from couchlite.database._transaction import (
    CollectionState,
    Key,
    Transaction,
    TransactionScope,
)
from couchlite.database.blob import BlobLeases
from couchlite.database.records import (
    DOC_KEEP_BODY,
    build_revision,
    digests_in_record,
    first_revision,
    record_from_tree,
    tree_of,
)
from couchlite.errors import DatabaseClosedError, DatabaseError, ErrorDomain, LiteCoreCode
from couchlite.model.blobrefs import DIGEST_KEY
from couchlite.storage.blobstore import BlobStore
from couchlite.storage.sqlite_store import (
    DOC_DELETED,
    DOC_HAS_BLOBS,
    DocRecord,
    SQLiteStore,
    table,
)

if TYPE_CHECKING:
    from couchlite.database.collection import Collection

log = logging.getLogger(__name__)

#: How ``blob_refs`` is computed: 2 counts legacy ``_attachments`` too (``model.blobrefs``);
#: a database at an older version is rescanned when opened.
BLOB_REFS_VERSION = 2
_MISSING: Any = object()


class Engine(ChangeNotifier):
    """Shared state of one open database file (see the module docstring)."""

    _registry: dict[Path, Engine] = {}
    _registry_lock = threading.Lock()

    @classmethod
    def acquire(cls, directory: Path) -> Engine:
        key = directory.resolve()
        with cls._registry_lock:
            engine = cls._registry.get(key)
            if engine is None:
                engine = cls(key)
                cls._registry[key] = engine
            engine._refcount += 1
            return engine

    def release(self) -> None:
        with self._registry_lock:
            self._refcount -= 1
            if self._refcount > 0:
                return
            self._registry.pop(self.directory, None)
        self._shutdown()

    @classmethod
    def is_open(cls, directory: Path) -> bool:
        with cls._registry_lock:
            return directory.resolve() in cls._registry

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._refcount = 0
        self._lock_file = lock_directory(directory)
        try:
            self.store = SQLiteStore(directory / "db.sqlite3")
        except BaseException:
            self._lock_file.close()
            raise
        try:
            self.blobs = BlobStore(directory / "Attachments")
            self.blobs.remove_temporary_files()
        except BaseException:
            self.store.close()
            self._lock_file.close()
            raise
        #: pins of received blobs waiting for the insert that references them
        self.blob_leases = BlobLeases(self.blobs)
        self.lock = threading.RLock()
        self.max_rev_tree_depth = _tuning.DEFAULT_MAX_REV_TREE_DEPTH
        self.txn: Transaction | None = None
        self.collections: dict[int, CollectionState] = {
            row.id: CollectionState.from_row(row) for row in self.store.collections()
        }
        try:
            self._upgrade_blob_refs()
        except BaseException:
            self.store.close()
            self._lock_file.close()
            raise
        ChangeNotifier.__init__(self)
        self._closed = threading.Event()
        #: mirrors ``_closed`` as a plain attribute: checked on every call
        self._is_closed = False
        self._purger_wake = threading.Event()
        self._purger = threading.Thread(
            target=self._purger_main, name=f"couchlite-expiry:{directory.name}", daemon=True
        )
        self._purger.start()

    # --- lifecycle -----------------------------------------------------------------------

    @property
    def closed(self) -> bool:
        return self._is_closed

    def check_open(self) -> None:
        if self._is_closed:
            raise DatabaseClosedError("the database is closed")

    def _shutdown(self) -> None:
        with self.lock:
            self._is_closed = True
            self._closed.set()
        self._purger_wake.set()
        if self._purger is not threading.current_thread():
            self._purger.join(timeout=30)
        self.store.close()
        self._lock_file.close()

    # --- collections ---------------------------------------------------------------------

    def find_collection(self, scope: str, name: str) -> CollectionState | None:
        for state in self.collections.values():
            if state.scope == scope and state.name == name and not state.dropped:
                return state
        return None

    def create_collection(self, scope: str, name: str) -> CollectionState:
        with self.lock:
            self.check_open()
            found = self.find_collection(scope, name)
            if found is not None:
                return found
            state = CollectionState.from_row(self.store.create_collection(scope, name))
            self.collections[state.id] = state
            return state

    def drop_collection(self, state: CollectionState) -> None:
        with self.lock:
            self.check_open()
            if self.txn is not None:
                raise DatabaseError(
                    "cannot delete a collection inside a batch",
                    domain=ErrorDomain.LITECORE,
                    code=LiteCoreCode.BUSY,
                )
            digests = self.store.drop_collection(state.id)
            state.dropped = True
            self.collections.pop(state.id, None)
            self._collect_garbage(set(digests))

    # --- transactions --------------------------------------------------------------------

    def transaction(self) -> TransactionScope:
        """Open (or nest into) this thread's transaction; commit when the outermost ends.

        Use as ``with engine.transaction() as txn:``.
        """
        return TransactionScope(self)

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

        Nothing is looked up: the commit inserts guessed documents with an ``INSERT`` that
        skips taken IDs and counts what it inserted. If the guess was wrong for any of them,
        that SQLite transaction is rolled back, ``verify`` rebases those documents on their
        stored revisions and the commit runs again (see ``Engine._commit``). A batch of new
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

    # --- commit --------------------------------------------------------------------------

    def _commit(self, txn: Transaction) -> None:
        if not txn.records and not txn.expirations:
            self._finish_blobs(txn, set())
            return
        plan = CommitPlan.build(self, txn)
        try:
            self.store.write(plan.apply)
        except GuessedWrong:
            # some documents saved as new already existed: nothing was written; rebase them
            # on their stored revisions and commit again (no guesses are left)
            self.verify(txn)
            plan = CommitPlan.build(self, txn)
            self.store.write(plan.apply)
        for doc in txn.unverified.values():  # committed as guessed: the guesses were right
            doc._guessed = False
        for coll_id, delta in plan.count_deltas.items():
            state = self.collections.get(coll_id)
            if state is not None:
                state.doc_count += delta
        self._finish_blobs(txn, plan.released_digests | txn.written_digests)
        if plan.expirations_changed:
            self._purger_wake.set()

    def _discard(self, txn: Transaction) -> None:
        """A rolled-back transaction: drop blobs written for it that nothing references."""
        self._finish_blobs(txn, set(txn.written_digests))

    # --- blob garbage collection -----------------------------------------------------------
    #
    # A blob is deleted once no committed document references it (``blob_refs``) and nobody
    # has it pinned (``BlobStore`` "pins"). Every collection runs with the engine lock held:
    # the commit of a transaction (the digests it released or wrote), a rollback (those it
    # wrote), a dropped collection (those it referenced) and ``compact()`` (all). An insert
    # checks its blobs are present under the same lock, and local saves store their blobs
    # while holding it, so nothing can reference a blob between the check and the delete.

    def _finish_blobs(self, txn: Transaction, candidates: set[str]) -> None:
        """Release the blob leases of an ended transaction, then collect ``candidates``."""
        if txn.leases:
            for lease in txn.leases:
                lease.release()
            txn.leases.clear()
        self._collect_garbage(candidates)

    def _collect_garbage(self, candidates: set[str]) -> None:
        if self.blobs.has_rechecks:
            candidates = candidates | self.blobs.take_rechecks()
        if not candidates:
            return
        try:
            still = self.store.referenced_digests(sorted(candidates))
        except Exception:
            log.warning("blob garbage collection failed", exc_info=True)
            return
        for digest in candidates - still:
            try:
                self.blobs.delete_unless_pinned(digest)
            except OSError:  # the commit stands; compact() retries
                log.warning("cannot delete blob %s", digest, exc_info=True)

    def _upgrade_blob_refs(self) -> None:
        """Count the references of bodies saved before legacy ``_attachments`` were counted
        (once per database; a fresh one has nothing to scan)."""
        if self.store.blob_refs_version() >= BLOB_REFS_VERSION:
            return
        refs = [
            (state.id, record.doc_id, digests_in_record(record))
            for state in self.collections.values()
            for record in self.store.records_containing(state.id, DIGEST_KEY)
        ]
        self.store.rebuild_blob_refs(refs, DOC_HAS_BLOBS, BLOB_REFS_VERSION)

    def collect_all_garbage(self) -> int:
        """Delete every blob no document references and nobody pins (maintenance)."""
        with self.lock:
            self.check_open()
            self.blobs.take_rechecks()  # all of them are looked at below
            referenced = self.store.all_referenced_digests()
            txn = self.txn
            if txn is not None:  # compact() inside this thread's batch: keep what it uses
                referenced |= txn.written_digests
                for record in txn.records.values():
                    if record is not None and record.flags & DOC_HAS_BLOBS:
                        referenced |= digests_in_record(record)
            removed = 0
            for digest in list(self.blobs.digests()):
                if digest not in referenced and self.blobs.delete_unless_pinned(digest):
                    removed += 1
            return removed

    # --- expiration ----------------------------------------------------------------------

    def wake_purger(self) -> None:
        self._purger_wake.set()

    def _purger_main(self) -> None:
        failures = 0
        while not self._closed.is_set():
            try:
                next_time = self.store.next_expiration()
                now = time.time()
                if next_time is not None and next_time <= now:
                    self.purge_expired(now)
                    failures = 0
                    continue
                wait = _tuning.EXPIRATION_MAX_SLEEP_S
                if next_time is not None:
                    wait = min(wait, next_time - now)
                failures = 0
            except DatabaseClosedError:
                return
            except Exception:
                failures += 1
                log.warning("purging expired documents failed", exc_info=True)
                wait = min(_tuning.EXPIRATION_MAX_SLEEP_S, 2.0**failures)
            self._purger_wake.wait(wait)
            self._purger_wake.clear()

    def purge_expired(self, now: float | None = None) -> int:
        """Purge every document whose expiration time has passed; return how many."""
        now = time.time() if now is None else now
        purged = 0
        for state in list(self.collections.values()):
            doc_ids = [
                row[0]
                for row in self.store.fetchall(
                    f"SELECT doc_id FROM {table(state.id)} WHERE expiration <= ?", (now,)
                )
            ]
            if not doc_ids:
                continue
            with self.transaction() as txn:
                if state.dropped:
                    continue
                for doc_id in doc_ids:
                    record = self.read_record(state, doc_id)
                    expiration = None if record is None else record.expiration
                    if expiration is not None and expiration <= now:
                        self.purge_record(txn, state, doc_id)
                        purged += 1
        return purged


def _compact_body(record: DocRecord) -> DocRecord:
    """The record with its body in an exactly-sized buffer (orjson's output keeps ~4 KiB)."""
    body = record.body
    if body is not None and len(body) < 2048:
        return record._replace(body=bytes(memoryview(body)))
    return record


__all__ = [
    "DOC_KEEP_BODY",
    "CollectionState",
    "Engine",
    "ListenerEntry",
    "Transaction",
    "build_revision",
    "digests_in_record",
    "first_revision",
    "record_from_tree",
    "tree_of",
]
