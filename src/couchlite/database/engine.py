"""The engine behind every ``Database`` open on one folder: collections, transactions, commits.

Theory of operation
-------------------
One ``Engine`` exists per database folder per process (``_registry`` hands it to every
``Database`` opened on the same path), so that sequences, the write lock and change
notifications are the same for all of them. Writes are serialised by the engine's re-entrant
lock; whoever holds it owns the one open ``Transaction``.

A transaction keeps its writes in memory -- an overlay of document records keyed by
``(collection id, document ID)`` (``_overlay``) -- and reads through it, so the thread that
writes sees its own writes while every other thread keeps reading the last committed state.
Nested transactions (``in_batch`` inside ``in_batch``) are savepoints into the overlay's undo
log: an inner failure rolls back only the inner writes. When the outermost transaction ends,
the whole overlay becomes one ``CommitBatch`` (``_commit_plan``) that the ``DocumentStore``
applies atomically, so a batch is all or nothing on disk as well -- a process killed mid-batch
leaves the previous state -- and costs one hand-off to the store, not one per document.

A new document saved in a batch (last-write-wins, no revision yet) is not looked up at all: it is
written on the guess that its ID is free, and the store checks the guess as it commits. Should
any ID be taken, nothing is written (``GuessedWrong``), the guessed documents are checked in
bulk and rebased on their stored revisions (``verify``), and the commit runs again. Reading such
a document inside the batch verifies it first.

Sequences come from an in-memory counter per collection (loaded at open, persisted with every
commit). A rolled-back transaction leaves a gap; a sequence is never handed out twice.

After a commit, blobs nobody references any more are deleted (``_blob_gc``), the expiry purger
is woken if an expiration changed (``_expiry``), and change listeners are called on the
committing thread, after the lock is released (``_listeners``).

A read-only engine (``DatabaseConfiguration.read_only``) holds no folder lock, starts no expiry
purger and collects no blobs: the process that owns the database does all of that. Every write
is refused (``check_writable``) before anything changes in memory or on disk.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import IO

from couchlite import _tuning
from couchlite.database._blob_gc import BlobCollector
from couchlite.database._commit_plan import CommitPlan
from couchlite.database._expiry import ExpiryPurger, purge_expired
from couchlite.database._listeners import ChangeNotifier
from couchlite.database._overlay import TransactionOverlay
from couchlite.database._transaction import CollectionState, Transaction, TransactionScope
from couchlite.database.blob import BlobLeases
from couchlite.errors import DatabaseClosedError, DatabaseError, ErrorDomain, LiteCoreCode
from couchlite.storage._connections import read_only_error
from couchlite.storage.blobstore import BlobStore
from couchlite.storage.document_store import DocumentStore
from couchlite.storage.records import GuessedWrong


class Engine(ChangeNotifier, TransactionOverlay):
    """Shared state of one open database folder (see the module docstring).

    Takes ownership of ``lock_file`` (the folder's lock; ``None`` when ``read_only``),
    ``store`` and ``blobs``: all are closed by ``shutdown``, or at once if the engine cannot be
    set up.
    """

    def __init__(
        self,
        directory: Path,
        lock_file: IO[bytes] | None,
        store: DocumentStore,
        blobs: BlobStore,
        *,
        read_only: bool = False,
    ) -> None:
        self.directory = directory
        self.read_only = read_only
        self._lock_file = lock_file
        self.store = store
        self.blobs = blobs
        #: pins of received blobs waiting for the insert that references them
        self.blob_leases = BlobLeases(blobs)
        self.lock = threading.RLock()
        self.max_rev_tree_depth = _tuning.DEFAULT_MAX_REV_TREE_DEPTH
        self.txn: Transaction | None = None
        self._gc = BlobCollector(store, blobs)
        try:
            self.collections: dict[int, CollectionState] = {
                row.id: CollectionState.from_row(row) for row in store.collections()
            }
            if not read_only:  # the owner of the database upgrades it
                self._gc.upgrade_refs(self.collections)
        except BaseException:
            store.close()
            if lock_file is not None:
                lock_file.close()
            raise
        ChangeNotifier.__init__(self)
        #: checked on every call
        self._is_closed = False
        self._purger = (
            None if read_only else ExpiryPurger(self, f"couchlite-expiry:{directory.name}")
        )

    # --- lifecycle -----------------------------------------------------------------------

    @property
    def closed(self) -> bool:
        return self._is_closed

    def check_open(self) -> None:
        if self._is_closed:
            raise DatabaseClosedError("the database is closed")

    def check_writable(self, what: str = "write") -> None:
        """Refuse a write on a read-only engine (``DatabaseError``, ``NOT_WRITEABLE``)."""
        self.check_open()
        if self.read_only:
            raise read_only_error(what)

    def shutdown(self) -> None:
        """Close the engine for good: stop the purger, close the store, release the folder."""
        with self.lock:
            self._is_closed = True
        if self._purger is not None:
            self._purger.stop()
        self.store.close()
        if self._lock_file is not None:
            self._lock_file.close()

    # --- collections ---------------------------------------------------------------------

    def find_collection(self, scope: str, name: str) -> CollectionState | None:
        if self.read_only:  # the owner may have created or deleted it since
            self.refresh()
        for state in self.collections.values():
            if state.scope == scope and state.name == name and not state.dropped:
                return state
        return None

    def refresh(self) -> bool:
        """Read-only: reload the collections' counts and sequences, which the owning process
        moves with each commit (a read-write engine's are always current), and the owner's new
        and deleted collections. Returns whether a collection appeared."""
        appeared = False
        rows = self.store.collections()
        present = {row.id for row in rows}
        for coll_id in [i for i in self.collections if i not in present]:
            # deleted by the owner: its Collection objects now raise DatabaseClosedError, as
            # after a delete here, rather than reading a table that is gone
            self.collections.pop(coll_id).dropped = True
        for row in rows:
            state = self.collections.get(row.id)
            if state is None:
                self.collections[row.id] = CollectionState.from_row(row)
                appeared = True
            else:
                state.last_seq, state.doc_count = row.last_seq, row.doc_count
        return appeared

    def live_count(self, state: CollectionState) -> int:
        if self.read_only:
            self.refresh()
        return super().live_count(state)

    def create_collection(self, scope: str, name: str) -> CollectionState:
        with self.lock:
            self.check_open()
            found = self.find_collection(scope, name)
            if found is not None:
                return found
            self.check_writable(f"creating collection {scope}.{name}")
            state = CollectionState.from_row(self.store.create_collection(scope, name))
            self.collections[state.id] = state
            return state

    def drop_collection(self, state: CollectionState) -> None:
        with self.lock:
            self.check_writable("deleting a collection")
            if self.txn is not None:
                raise DatabaseError(
                    "cannot delete a collection inside a batch",
                    domain=ErrorDomain.LITECORE,
                    code=LiteCoreCode.BUSY,
                )
            digests = self.store.drop_collection(state.id)
            state.dropped = True
            self.collections.pop(state.id, None)
            self._gc.collect(set(digests))

    # --- transactions --------------------------------------------------------------------

    def transaction(self) -> TransactionScope:
        """Open (or nest into) this thread's transaction; commit when the outermost ends.

        Use as ``with engine.transaction() as txn:``. Refused on a read-only engine.
        """
        if self.read_only:
            raise read_only_error()
        return TransactionScope(self)

    def _commit(self, txn: Transaction) -> None:
        if not txn.records and not txn.expirations:
            self._gc.finish(txn, set())
            return
        plan = CommitPlan.build(self.collections, txn)
        try:
            self.store.commit(plan.batch)
        except GuessedWrong:
            # some documents saved as new already existed: nothing was written; rebase them
            # on their stored revisions and commit again (no guesses are left)
            self.verify(txn)
            plan = CommitPlan.build(self.collections, txn)
            self.store.commit(plan.batch)
        for doc in txn.unverified.values():  # committed as guessed: the guesses were right
            doc._guessed = False
        for coll_id, delta in plan.batch.count_deltas.items():
            state = self.collections.get(coll_id)
            if state is not None:
                state.doc_count += delta
        self._gc.finish(txn, plan.released_digests | txn.written_digests)
        if plan.expirations_changed:
            self.wake_purger()

    def _discard(self, txn: Transaction) -> None:
        """A rolled-back transaction: drop blobs written for it that nothing references."""
        self._gc.finish(txn, set(txn.written_digests))

    # --- maintenance ---------------------------------------------------------------------

    def collect_all_garbage(self) -> int:
        """Delete every blob no document references and nobody pins (maintenance)."""
        with self.lock:
            self.check_writable("compacting")
            # compact() inside this thread's batch: keep what it uses
            return self._gc.collect_all(self.txn)

    def wake_purger(self) -> None:
        if self._purger is not None:
            self._purger.wake()

    def purge_expired(self, now: float | None = None) -> int:
        """Purge every document whose expiration time has passed; return how many."""
        self.check_writable("purging expired documents")
        return purge_expired(self, now)
