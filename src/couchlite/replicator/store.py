"""What the replication engine needs from a database: the narrow, injected interface.

The replicator never touches SQLite: it is handed objects satisfying these protocols (the
implementation is ``couchlite.database.replication_access``). Every method is synchronous and fast
(reads use the calling thread's connection; writes are one transaction each), and safe to call
from any thread. Batch methods exist so that the engine never does per-document round trips.

Vocabulary (notes §4): the *source* side of a direction sends ``changes``/``proposeChanges`` and
``rev`` messages; the *sink* side answers which revisions it wants and inserts them.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, BinaryIO, Protocol

from couchlite.errors import CouchliteError

if TYPE_CHECKING:
    from couchlite.replicator.config import ConflictResolver, ReplicationFilter

#: ``check_proposed`` answers, per entry (notes §4.7)
PROPOSE_OK = 0
PROPOSE_ALREADY_HAVE = 304
PROPOSE_CONFLICT = 409


@dataclass(slots=True)  # not frozen: one per revision, and frozen costs 5x to make
class ChangeEntry:
    """One row of a collection's changes feed."""

    sequence: int
    doc_id: str
    rev_id: str
    deleted: bool
    body_size: int


@dataclass(slots=True)  # not frozen: one per revision, and frozen costs 5x to make
class OutgoingRevision:
    """A revision to send in a ``rev`` message."""

    doc_id: str
    rev_id: str
    #: canonical JSON of the revision (``b"{}"`` for a tombstone)
    body: bytes
    deleted: bool
    #: ancestors newest first, excluding ``rev_id``; cut after the first revision the peer has
    history: list[str]
    #: the document's sequence in the local collection
    sequence: int


@dataclass(slots=True)  # not frozen: one per revision, and frozen costs 5x to make
class IncomingRevision:
    """A revision received in a ``rev`` message, ready to insert."""

    doc_id: str
    rev_id: str
    #: ancestors newest first, excluding ``rev_id`` (the ``history`` property, split)
    history: Sequence[str]
    #: the document body as JSON (a delta already applied); ``b"{}"`` for a tombstone
    body: bytes
    deleted: bool
    #: the sender accepted this through ``proposeChanges`` (``noconflicts``): the insertion
    #: must then extend the current revision, or fail with a 409 ``ConflictError``
    no_conflicts: bool = False


@dataclass(slots=True)  # not frozen: one per revision, and frozen costs 5x to make
class InsertOutcome:
    """What ``insert_revisions`` did with one revision."""

    #: ``None`` when stored (or already present); else why not (409 conflict, 400 bad input...)
    error: CouchliteError | None = None
    #: the revision was already present: nothing changed
    already_present: bool = False
    #: after the insertion the document has conflicting branches (active pull only)
    conflicted: bool = False


@dataclass(frozen=True, slots=True)
class ConflictingRevisions:
    """The two branches of a conflicted document, for a conflict resolver."""

    doc_id: str
    local_rev: str
    local_body: bytes | None  # None when the local branch is deleted
    remote_rev: str
    remote_body: bytes | None  # None when the remote branch is deleted


#: ``(doc_id, rev_id, deleted, body) -> keep?``: a push or pull filter as the engine calls it
#: (``body`` is the revision's canonical JSON, ``b"{}"`` for a tombstone).
RevisionFilter = Callable[[str, str, bool, bytes], bool]

#: A conflict resolver as the engine calls it: the body of the resolution (``None``: a
#: deletion). Raising is reported as a document error.
RevisionResolver = Callable[[ConflictingRevisions], Awaitable[bytes | None]]


class ListenerHandle(Protocol):
    def remove(self) -> None: ...


class CollectionStore(Protocol):
    """One local collection, as the replicator sees it."""

    @property
    def scope_name(self) -> str: ...

    @property
    def name(self) -> str: ...

    @property
    def last_sequence(self) -> int: ...

    @property
    def is_empty(self) -> bool:
        """No documents at all, tombstones included (``subChanges`` ``activeOnly``)."""
        ...

    # --- source side ------------------------------------------------------------------------

    def changes_since(self, since: int, limit: int) -> list[ChangeEntry]:
        """Up to ``limit`` changes after sequence ``since``, in sequence order."""
        ...

    def add_change_listener(self, callback: Callable[[], None]) -> ListenerHandle:
        """Call ``callback()`` (on the committing thread) after each commit to the collection."""
        ...

    def get_revision(
        self, doc_id: str, rev_id: str, known_revs: Sequence[str], max_history: int
    ) -> OutgoingRevision | None:
        """The revision ``rev_id`` of ``doc_id`` with its history, or ``None`` if it is gone
        (purged, or replaced and its body dropped). ``known_revs``: revisions the peer said it
        has; the history stops after the first of them, and at ``max_history`` entries."""
        ...

    def get_revisions(
        self, wanted: Sequence[tuple[str, str, Sequence[str]]], max_history: int
    ) -> list[OutgoingRevision | None]:
        """:meth:`get_revision` for each ``(doc_id, rev_id, known_revs)`` of ``wanted``, in
        order, reading the documents together (what sending a list needs)."""
        ...

    def current_revision(self, doc_id: str) -> tuple[str, bool] | None:
        """``(rev_id, deleted)`` of the current revision, or ``None`` if there is no document."""
        ...

    def document_body(self, doc_id: str, rev_id: str) -> bytes | None:
        """The body of one revision if it is still kept (e.g. for a filter or a delta)."""
        ...

    def delta_base(self, doc_id: str, candidates: Sequence[str]) -> tuple[str, bytes] | None:
        """The first of ``candidates`` (revisions the peer has, best first) that can serve as a
        delta base: still in the tree, its body kept, not a tombstone. One read for all."""
        ...

    def remote_revisions(self, remote: str, doc_ids: Sequence[str]) -> dict[str, str]:
        """The revision the peer ``remote`` (its URL) is known to have, for those documents
        that have one recorded (persisted across sessions: LiteCore's remote ancestor)."""
        ...

    def set_remote_revisions(self, remote: str, revisions: Sequence[tuple[str, str]]) -> None:
        """Record ``(doc_id, rev_id)`` pairs the peer ``remote`` now has (one transaction)."""
        ...

    def mark_remote_revision(self, doc_id: str, rev_id: str) -> None:
        """The peer now has ``rev_id``: keep its body as a future delta base."""
        ...

    # --- sink side --------------------------------------------------------------------------

    def check_proposed(
        self, entries: Sequence[tuple[str, str, str | None]]
    ) -> list[int | tuple[int, str]]:
        """Answer ``proposeChanges`` entries ``(doc_id, rev_id, server_rev_id)``: ``0`` (send
        it), ``304`` (already have it), or ``(409, current_rev_id)`` (conflict)."""
        ...

    def find_missing(
        self, entries: Sequence[tuple[str, str]], max_ancestors: int = 20
    ) -> list[list[str] | None]:
        """Answer ``changes`` entries ``(doc_id, rev_id)``: ``None`` if we already have that
        revision, else the revisions we hold that may be its ancestors (possibly empty)."""
        ...

    def insert_revisions(self, revisions: Sequence[IncomingRevision]) -> list[InsertOutcome]:
        """Insert revisions with their histories, all in one transaction (outcomes in order).

        Without ``no_conflicts`` an insertion may create a conflicting branch (active pull);
        with it, a revision that does not extend the current one fails with a 409."""
        ...

    def conflicting_revisions(self, doc_id: str, remote_rev: str) -> ConflictingRevisions | None:
        """The local and remote branches of a conflicted document (``None`` if not conflicted,
        or if ``remote_rev`` is no longer a leaf)."""
        ...

    def conflicted_documents(self) -> list[tuple[str, str]]:
        """``(doc_id, remote_rev)`` of every document left conflicted (a resolver failed), so
        that a new session can try again; ``remote_rev`` is the branch that came from a peer."""
        ...

    def resolve_conflict(
        self, doc_id: str, local_rev: str, remote_rev: str, body: bytes | None
    ) -> str:
        """Settle a conflict as Couchbase Lite does: the resolution becomes a child of the
        remote revision (``body`` ``None`` = a tombstone) and the local branch is closed with a
        tombstone. Raises ``ConflictError`` if either branch changed meanwhile. Returns the
        new revision ID."""
        ...

    def purge(self, doc_id: str) -> bool:
        """Purge a document (auto-purge after access removal); ``False`` if absent."""
        ...

    def revision_filter(self, fn: ReplicationFilter, direction: str) -> RevisionFilter:
        """The user's push or pull filter (``direction``), which takes a ``Document``, as
        the engine calls it; a filter that raises skips the document."""
        ...

    def revision_resolver(self, fn: ConflictResolver) -> RevisionResolver:
        """The user's conflict resolver, which takes a ``Conflict`` of ``Document`` objects,
        as the engine calls it."""
        ...


class DatabaseStore(Protocol):
    """The database-wide part: identity, checkpoints, blobs, collections."""

    @property
    def public_uuid(self) -> str: ...

    @property
    def private_uuid(self) -> str: ...

    def collection(self, scope: str, name: str) -> CollectionStore | None: ...

    # checkpoints (notes §9)
    def get_local_checkpoint(self, checkpoint_id: str) -> bytes | None: ...

    def set_local_checkpoint(self, checkpoint_id: str, body: bytes) -> None: ...

    def get_peer_checkpoint(self, client_id: str) -> tuple[str, bytes] | None: ...

    def set_peer_checkpoint(self, client_id: str, body: bytes, rev: str | None) -> str:
        """Store if ``rev`` matches the stored revision (``ConflictError`` otherwise)."""
        ...

    # blobs (notes §7)
    def has_blob(self, digest: str) -> bool: ...

    def blob_length(self, digest: str) -> int | None: ...

    def open_blob(self, digest: str) -> BinaryIO:
        """Raises ``NotFoundError`` for an unknown digest."""
        ...

    def store_blob(self, digest: str, data: bytes) -> None:
        """Store content received from a peer; ``InvalidArgumentError`` if it does not hash to
        ``digest``."""
        ...

    def blob_writer(self, digest: str) -> BlobSink:
        """Stream content received from a peer into a spool file of the blob store."""
        ...

    def lease_blobs(
        self, collection: CollectionStore, doc_id: str, digests: Sequence[str]
    ) -> BlobLease:
        """Pin ``digests`` -- before checking whether they are present -- so that garbage
        collection keeps them until the insert of ``doc_id`` into ``collection`` whose body
        names exactly them has committed or failed (or until ``release()``)."""
        ...


class BlobSink(Protocol):
    """A blob being received (``DatabaseStore.blob_writer``)."""

    def write(self, data: bytes | bytearray | memoryview) -> None: ...

    @property
    def size(self) -> int:
        """Bytes written so far."""
        ...

    def finish(self) -> tuple[str, int]:
        """Verify the content hashes to the digest (``InvalidArgumentError`` and nothing stored
        otherwise) and move it into place atomically; ``(digest, length)``."""
        ...

    def abort(self) -> None:
        """Remove the spool file (a no-op after ``finish``)."""
        ...


class BlobLease(Protocol):
    """Pins on the blobs one received revision relies on (``DatabaseStore.lease_blobs``)."""

    def fetched(self, digest: str) -> None:
        """``digest`` was stored under this lease (checked by garbage collection once free)."""
        ...

    def release(self) -> None:
        """Unpin now (idempotent): when the revision will not be inserted after all."""
        ...
