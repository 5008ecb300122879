"""The database seen by the replicator: ``replication_store(db)`` implements
``couchlite.replicator.store.DatabaseStore`` / ``CollectionStore`` over the engine's
``DocumentStore`` and its transactions.

Every batch method does one bulk read or one transaction, so the replicator never pays a
per-document round trip. Reads are of committed state, straight from the ``DocumentStore``
(which gives each calling thread its own read connection); writes go through the engine's
transactions (so they are serialised by the engine lock, commit through the store, notify
change listeners, and keep blob references and sequences exactly as local saves do). Nothing
here belongs to an event loop or a thread: every method may be called from any thread, a
replicator's worker thread included.

Revisions received from a peer are validated (IDs, history, JSON object bodies; the sink has
already stripped their reserved top-level properties, ``model.legacy``) and stored in
canonical form; the revision a peer sent is flagged ``KEEP_BODY`` so that it stays available as a
delta base once local edits move past it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, BinaryIO

from couchlite._tuning import MAX_PEER_CHECKPOINTS
from couchlite.database._replication_callbacks import revision_filter, revision_resolver
from couchlite.database._revision_writes import insert_revision, resolve_conflict
from couchlite.database._transaction import CollectionState, Transaction
from couchlite.database.blob import BlobLease
from couchlite.database.changes import CollectionChange, ListenerToken
from couchlite.database.collection import Collection
from couchlite.database.engine import Engine
from couchlite.database.records import record_from_tree, tree_of
from couchlite.errors import (
    CouchliteError,
    DatabaseClosedError,
    InvalidArgumentError,
    NotFoundError,
)
from couchlite.model.blobrefs import blob_digests
from couchlite.model.revid import generation
from couchlite.model.revtree import KEEP_BODY, RevTree
from couchlite.replicator.store import (
    PROPOSE_ALREADY_HAVE,
    PROPOSE_CONFLICT,
    PROPOSE_OK,
    ChangeEntry,
    CollectionStore,
    ConflictingRevisions,
    IncomingRevision,
    InsertOutcome,
    OutgoingRevision,
    RevisionFilter,
    RevisionResolver,
)
from couchlite.storage.blobstore import BlobWriter
from couchlite.storage.records import DOC_DELETED, DocRecord

if TYPE_CHECKING:
    from couchlite.database.database import Database
    from couchlite.replicator.config import ConflictResolver, ReplicationFilter


class ReplicationCollection:
    """``CollectionStore`` for one local collection: its engine state (``state``) and the
    public ``Collection`` that user filters and resolvers are shown documents of."""

    def __init__(
        self, database: ReplicationDatabase, state: CollectionState, collection: Collection
    ) -> None:
        self._database = database
        self._state = state
        self._coll_id = state.id
        self._collection = collection

    @property
    def collection(self) -> Collection:
        return self._collection

    def _engine(self) -> Engine:
        """The engine, while the database is open and the collection exists."""
        engine = self._database._engine()
        if self._state.dropped:
            raise DatabaseClosedError(
                f"collection {self._state.scope}.{self._state.name} has been deleted"
            )
        return engine

    @property
    def scope_name(self) -> str:
        return self._state.scope

    @property
    def name(self) -> str:
        return self._state.name

    @property
    def last_sequence(self) -> int:
        self._engine()
        return self._state.last_seq

    @property
    def is_empty(self) -> bool:
        return not any(self._engine().store.change_batches(self._coll_id, 0, 1))

    def _records(self, doc_ids: list[str]) -> dict[str, DocRecord]:
        return self._engine().store.get_records(self._coll_id, doc_ids)

    def _record(self, doc_id: str) -> DocRecord | None:
        return self._engine().store.get_record(self._coll_id, doc_id)

    # --- source side ------------------------------------------------------------------------

    def changes_since(self, since: int, limit: int) -> list[ChangeEntry]:
        return [
            ChangeEntry(sequence, doc_id, rev_id, bool(flags & DOC_DELETED), body_size)
            for batch in self._engine().store.change_batches(self._coll_id, since, limit)
            for sequence, doc_id, rev_id, flags, body_size in batch
        ]

    def add_change_listener(self, callback: Callable[[], None]) -> ListenerToken:
        def relay(change: CollectionChange) -> None:
            callback()

        return self._collection.add_change_listener(relay)

    def get_revision(
        self, doc_id: str, rev_id: str, known_revs: Sequence[str], max_history: int
    ) -> OutgoingRevision | None:
        return _revision_of(self._record(doc_id), doc_id, rev_id, known_revs, max_history)

    def get_revisions(
        self, wanted: Sequence[tuple[str, str, Sequence[str]]], max_history: int
    ) -> list[OutgoingRevision | None]:
        if len(wanted) == 1:
            return [self.get_revision(*wanted[0], max_history)]
        records = self._records([doc_id for doc_id, _, _ in wanted])
        return [
            _revision_of(records.get(doc_id), doc_id, rev_id, known_revs, max_history)
            for doc_id, rev_id, known_revs in wanted
        ]

    def current_revision(self, doc_id: str) -> tuple[str, bool] | None:
        record = self._record(doc_id)
        if record is None:
            return None
        return record.rev, bool(record.flags & DOC_DELETED)

    def document_body(self, doc_id: str, rev_id: str) -> bytes | None:
        record = self._record(doc_id)
        if record is None:
            return None
        if record.rev == rev_id:
            return record.body
        if record.tree is None:
            return None
        rev = tree_of(record).get(rev_id)
        return None if rev is None else rev.body

    def delta_base(self, doc_id: str, candidates: Sequence[str]) -> tuple[str, bytes] | None:
        if not candidates:
            return None
        record = self._record(doc_id)
        if record is None:
            return None
        if record.tree is None:  # a single revision: the only possible base is the current one
            if record.rev in candidates and record.body and not record.flags & DOC_DELETED:
                return record.rev, record.body
            return None
        tree = tree_of(record)
        for rev_id in candidates:
            rev = tree.get(rev_id)
            if rev is not None and rev.body is not None and not rev.deleted:
                return rev_id, rev.body
        return None

    def remote_revisions(self, remote: str, doc_ids: Sequence[str]) -> dict[str, str]:
        return self._engine().store.remote_revisions(remote, self._coll_id, list(doc_ids))

    def set_remote_revisions(self, remote: str, revisions: Sequence[tuple[str, str]]) -> None:
        self._engine().store.set_remote_revisions(remote, self._coll_id, list(revisions))

    def mark_remote_revision(self, doc_id: str, rev_id: str) -> None:
        record = self._record(doc_id)
        # The current revision's body is always kept (and its parent's, once it is replaced),
        # so only a revision that is already older than the current one needs the flag.
        if record is None or record.rev == rev_id or record.tree is None:
            return
        engine = self._engine()
        state = self._state
        with engine.transaction() as txn:
            record = engine.read_record(state, doc_id)
            if record is None:
                return
            tree = tree_of(record)
            rev = tree.get(rev_id)
            if rev is None or rev.body is None or rev.flags & KEEP_BODY:
                return
            tree.set_flag(rev_id, KEEP_BODY)
            updated = record_from_tree(doc_id, tree, record.seq, record.expiration)
            engine.put_record(txn, state, updated)

    # --- sink side --------------------------------------------------------------------------

    def check_proposed(
        self, entries: Sequence[tuple[str, str, str | None]]
    ) -> list[int | tuple[int, str]]:
        records = self._records([doc_id for doc_id, _, _ in entries])
        answers: list[int | tuple[int, str]] = []
        for doc_id, rev_id, server_rev in entries:
            record = records.get(doc_id)
            if record is None:
                answers.append(PROPOSE_OK)
            elif record.rev == rev_id or (record.tree is not None and rev_id in tree_of(record)):
                answers.append(PROPOSE_ALREADY_HAVE)
            elif record.rev == server_rev or (not server_rev and record.flags & DOC_DELETED):
                answers.append(PROPOSE_OK)
            else:
                answers.append((PROPOSE_CONFLICT, record.rev))
        return answers

    def find_missing(
        self, entries: Sequence[tuple[str, str]], max_ancestors: int = 20
    ) -> list[list[str] | None]:
        records = self._records([doc_id for doc_id, _ in entries])
        answers: list[list[str] | None] = []
        for doc_id, rev_id in entries:
            record = records.get(doc_id)
            if record is None:
                answers.append([])
            elif record.rev == rev_id:
                answers.append(None)
            elif record.tree is None:
                older = generation(record.rev) < generation(rev_id)
                answers.append([record.rev] if older else [])
            else:
                tree = tree_of(record)
                if rev_id in tree:
                    answers.append(None)
                else:
                    answers.append(tree.known_ancestors(rev_id, max_ancestors))
        return answers

    def insert_revisions(self, revisions: Sequence[IncomingRevision]) -> list[InsertOutcome]:
        engine = self._engine()
        state = self._state
        max_depth = engine.max_rev_tree_depth
        outcomes: list[InsertOutcome] = []
        with engine.transaction() as txn:
            engine.prefetch(txn, state, [incoming.doc_id for incoming in revisions])
            self._claim_blob_leases(engine, txn, revisions)
            for incoming in revisions:
                try:
                    outcome = insert_revision(engine, txn, state, incoming, max_depth)
                except CouchliteError as exc:
                    outcome = InsertOutcome(error=exc)
                outcomes.append(outcome)
        return outcomes

    def _claim_blob_leases(
        self, engine: Engine, txn: Transaction, revisions: Sequence[IncomingRevision]
    ) -> None:
        """Hand the transaction the pins the receiver took on these revisions' blobs
        (``ReplicationDatabase.lease_blobs``): the engine releases them once it has ended."""
        leases = engine.blob_leases
        if not len(leases):
            return
        for incoming in revisions:
            digests = blob_digests(incoming.body)
            if digests:
                lease = leases.claim(self._coll_id, incoming.doc_id, digests)
                if lease is not None:
                    txn.leases.append(lease)

    def conflicting_revisions(self, doc_id: str, remote_rev: str) -> ConflictingRevisions | None:
        record = self._record(doc_id)
        if record is None or record.tree is None:
            return None
        tree = tree_of(record)
        remote = tree.get(remote_rev)
        if remote is None or not tree.is_leaf(remote) or not tree.is_conflicted:
            return None
        others = [r for r in tree.leaves() if r is not remote and not r.deleted]
        if not others:
            return None
        local = max(others, key=RevTree._winner_key)
        return ConflictingRevisions(
            doc_id,
            local.rev_id,
            None if local.deleted else local.body,
            remote.rev_id,
            None if remote.deleted else remote.body,
        )

    def conflicted_documents(self) -> list[tuple[str, str]]:
        found: list[tuple[str, str]] = []
        for doc_id in self._engine().store.conflicted_doc_ids(self._coll_id):
            record = self._record(doc_id)
            if record is None or record.tree is None:
                continue
            tree = tree_of(record)
            live = [r for r in tree.leaves() if not r.deleted]
            if len(live) < 2:
                continue
            winner = tree.current
            # revisions that came from a peer are flagged KEEP_BODY; local edits are not
            remote = [r for r in live if r.flags & KEEP_BODY and r is not winner]
            remote = (
                remote
                or [r for r in live if r.flags & KEEP_BODY]
                or [r for r in live if r is not winner]
            )
            found.append((doc_id, remote[0].rev_id))
        return found

    def resolve_conflict(
        self, doc_id: str, local_rev: str, remote_rev: str, body: bytes | None
    ) -> str:
        engine = self._engine()
        with engine.transaction() as txn:
            return resolve_conflict(engine, txn, self._state, doc_id, local_rev, remote_rev, body)

    def purge(self, doc_id: str) -> bool:
        try:
            self._collection.purge(doc_id)
        except NotFoundError:
            return False
        return True

    def revision_filter(self, fn: ReplicationFilter, direction: str) -> RevisionFilter:
        return revision_filter(self._collection, fn, direction)

    def revision_resolver(self, fn: ConflictResolver) -> RevisionResolver:
        return revision_resolver(self._collection, fn)


class ReplicationDatabase:
    """``DatabaseStore`` for one open ``Database`` and the engine it was opened on."""

    def __init__(self, database: Database, engine: Engine) -> None:
        self._database = database
        self._engine_ref = engine

    @property
    def database(self) -> Database:
        return self._database

    def _engine(self) -> Engine:
        """The engine, while the ``Database`` this store was made for is open."""
        engine = self._engine_ref
        if engine.closed or self._database.is_closed:
            raise DatabaseClosedError(f"database {self._database.name!r} is closed")
        return engine

    @property
    def public_uuid(self) -> str:
        return self._engine().store.public_uuid

    @property
    def private_uuid(self) -> str:
        return self._engine().store.private_uuid

    def collection(self, scope: str, name: str) -> ReplicationCollection | None:
        # the public look-up checks the names and hands out the one ``Collection`` object
        found = self._database.collection(name, scope=scope)
        if found is None:
            return None
        state = self._engine().find_collection(scope, name)
        return None if state is None else ReplicationCollection(self, state, found)

    def for_collection(self, collection: Collection) -> ReplicationCollection:
        if collection.database is not self._database:
            raise InvalidArgumentError("the collection belongs to another database")
        scope, name = collection.scope.name, collection.name
        state = self._engine().find_collection(scope, name)
        if state is None or self._database.collection(name, scope=scope) is not collection:
            raise DatabaseClosedError(f"collection {collection.full_name} has been deleted")
        return ReplicationCollection(self, state, collection)

    # --- checkpoints --------------------------------------------------------------------------

    def get_local_checkpoint(self, checkpoint_id: str) -> bytes | None:
        return self._engine().store.get_checkpoint(checkpoint_id)

    def set_local_checkpoint(self, checkpoint_id: str, body: bytes) -> None:
        self._engine().store.set_checkpoint(checkpoint_id, body)

    def get_peer_checkpoint(self, client_id: str) -> tuple[str, bytes] | None:
        return self._engine().store.get_peer_checkpoint(client_id)

    def set_peer_checkpoint(self, client_id: str, body: bytes, rev: str | None) -> str:
        engine = self._engine()
        if engine.read_only:
            # nowhere to keep it: acknowledge without saving, or every pull from a read-only
            # database would fail at its first checkpoint (the peer, finding none next time,
            # starts over from the beginning)
            generation, _, _ = (rev or "").partition("-")
            known = generation.isdecimal() and len(generation) < 10  # int() of a peer's text
            return f"{int(generation) + 1 if known else 1}-cc"
        # bounded per database, read-only listeners included: the oldest-updated is evicted
        return engine.store.set_peer_checkpoint(client_id, body, rev, keep=MAX_PEER_CHECKPOINTS)

    # --- blobs --------------------------------------------------------------------------------

    def has_blob(self, digest: str) -> bool:
        try:
            return self._engine().blobs.has(digest)
        except InvalidArgumentError:
            return False

    def blob_length(self, digest: str) -> int | None:
        try:
            return self._engine().blobs.size(digest)
        except (NotFoundError, InvalidArgumentError):
            return None

    def open_blob(self, digest: str) -> BinaryIO:
        try:
            return self._engine().blobs.open(digest)
        except InvalidArgumentError as exc:
            raise NotFoundError(f"no blob {digest!r}") from exc

    def store_blob(self, digest: str, data: bytes) -> None:
        with self._engine().blobs.writer(expected_digest=digest) as writer:
            writer.write(data)
            writer.finish()

    def blob_writer(self, digest: str) -> BlobWriter:
        return self._engine().blobs.writer(expected_digest=digest)

    def lease_blobs(
        self, collection: CollectionStore, doc_id: str, digests: Sequence[str]
    ) -> BlobLease:
        if not isinstance(collection, ReplicationCollection):
            raise InvalidArgumentError("not a collection of this database")
        return self._engine().blob_leases.take(collection._coll_id, doc_id, digests)


def _revision_of(
    record: DocRecord | None,
    doc_id: str,
    rev_id: str,
    known_revs: Sequence[str],
    max_history: int,
) -> OutgoingRevision | None:
    """Revision ``rev_id`` of a document's record, with its history cut after the first of
    ``known_revs`` and at ``max_history`` entries; ``None`` when it is gone."""
    if record is None:
        return None
    if record.tree is None:  # the common case: a single revision
        if record.rev != rev_id or record.body is None:
            return None
        return OutgoingRevision(
            doc_id, rev_id, record.body, bool(record.flags & DOC_DELETED), [], record.seq
        )
    tree = tree_of(record)
    rev = tree.get(rev_id)
    if rev is None or rev.body is None:
        return None
    known = set(known_revs)
    history: list[str] = []
    for ancestor in tree.history(rev_id)[1:]:
        if len(history) >= max_history:
            break
        history.append(ancestor)
        if ancestor in known:
            break
    return OutgoingRevision(doc_id, rev_id, rev.body, rev.deleted, history, record.seq)


def replication_store(database: Database) -> ReplicationDatabase:
    """The ``DatabaseStore`` the replication engine uses for ``database`` (open)."""
    return ReplicationDatabase(database, database._engine_or_raise())
