"""The values a ``DocumentStore`` stores and hands out: document records, change entries,
collections, and the writes of one commit.

Everything here is plain data with no behaviour tied to a storage engine, so that the database
layer and any store implementation share one definition of each: the record flags are decoded
only through the constants below, and a record is the same tuple whether it is bound to a
statement, read back or kept in a transaction's overlay.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import NamedTuple

__all__ = [
    "DOC_CONFLICTED",
    "DOC_DELETED",
    "DOC_HAS_BLOBS",
    "DOC_KEEP_BODY",
    "ChangeRecord",
    "CollectionRow",
    "CommitBatch",
    "CurrentRow",
    "DocRecord",
    "GuessedWrong",
    "new_tuple",
]

#: Record flag: the current revision is a deletion (a tombstone).
DOC_DELETED = 0x01
#: Record flag: the revision tree has more than one live leaf.
DOC_CONFLICTED = 0x02
#: Record flag: a body kept in the record may reference blobs (``model.blobrefs``).
DOC_HAS_BLOBS = 0x04
#: Record flag of a single-revision document (no encoded tree) whose revision a peer has: the
#: tree's ``KEEP_BODY`` must survive, or the body -- a delta base -- is dropped two edits later.
DOC_KEEP_BODY = 0x08


@dataclass(slots=True)
class CollectionRow:
    """A collection as stored: its ID, names, sequence counter and count of live documents."""

    id: int
    scope: str
    name: str
    last_seq: int
    doc_count: int


class DocRecord(NamedTuple):
    """A document's current state: its latest sequence, current revision and flags, the
    current body and, once there is more than one revision, the encoded revision tree.

    A tuple, so that a batch of records is handed to the store as it is, without building a
    row for each.
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


#: What reading a document needs, without its tree: ``(rev, seq, flags, body)`` of its current
#: revision (a plain row: the hot path of ``Collection.get`` builds nothing more).
CurrentRow = tuple[str, int, int, bytes | None]


#: One entry of a collection's changes feed as the store reads it: ``(sequence, doc_id,
#: rev_id, flags, body_size)`` -- a document as of its latest change, with its flags and the
#: size of its current body (0 for a tombstone). A plain tuple, the row as read, so that
#: scanning a feed builds one object per entry: the public ``couchlite.ChangeRow`` (built in
#: one place, ``couchlite.database.records.change_rows``) or the replicator's entry.
ChangeRecord = tuple[int, str, str, int, int]


#: ``new_tuple(DocRecord, values)`` builds a record without the Python-level
#: ``NamedTuple.__new__`` (hot paths: every row read, every new document)
new_tuple = tuple.__new__


class GuessedWrong(Exception):
    """A document committed as new (``CommitBatch.guessed``) already existed: nothing of the
    commit was written."""


@dataclass(slots=True)
class CommitBatch:
    """Everything one transaction writes, grouped by collection ID, applied by
    ``DocumentStore.commit`` all or nothing.

    The records are bound as they are (no per-document object is built for the store).
    """

    #: documents saved as new without a look-up: if any ID is taken, the commit raises
    #: ``GuessedWrong`` and writes nothing
    guessed: dict[int, list[DocRecord]] = field(default_factory=dict)
    #: documents known not to exist yet
    inserts: dict[int, list[DocRecord]] = field(default_factory=dict)
    #: documents that exist: their record is replaced
    upserts: dict[int, list[DocRecord]] = field(default_factory=dict)
    #: documents removed with their history (and what peers are known to have of them)
    purges: dict[int, list[tuple[str]]] = field(default_factory=dict)
    #: expiration changes of documents whose record is not otherwise rewritten
    expirations: dict[int, list[tuple[float | None, str]]] = field(default_factory=dict)
    #: change of each collection's count of live documents
    count_deltas: dict[int, int] = field(default_factory=dict)
    #: each written collection's sequence counter after the commit
    last_seqs: dict[int, int] = field(default_factory=dict)
    #: ``(collection, doc ID, digests)``: the complete new set of blobs a document references
    blob_refs: list[tuple[int, str, set[str]]] = field(default_factory=list)
