"""Document records and their revision trees: how a revision becomes the row that is stored.

Pure functions over ``DocRecord`` (a document as stored, ``storage.records``) and ``RevTree``:
used by the engine, local saves and the replication store alike, so that flags (deleted,
conflicted, has blobs, keeps its body) and blob references are derived from a record in one way
everywhere.

``ChangeRow`` is the public entry of ``Collection.changes()``; ``change_rows`` is the one place
it is built from the store's ``ChangeRecord``.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from couchlite.model.blobrefs import DIGEST_KEY, blob_digests_of
from couchlite.model.revid import new_rev_id
from couchlite.model.revtree import DELETED, KEEP_BODY, RevTree
from couchlite.storage.records import (
    DOC_CONFLICTED,
    DOC_DELETED,
    DOC_HAS_BLOBS,
    DOC_KEEP_BODY,
    ChangeRecord,
    DocRecord,
    new_tuple,
)

#: the stored body of a deletion (a tombstone)
TOMBSTONE_BODY = b"{}"


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


def change_rows(batches: Iterator[list[ChangeRecord]]) -> Iterator[ChangeRow]:
    """The public entries of a changes feed read from the store."""
    for batch in batches:
        for record in batch:
            yield ChangeRow(*record)


def tree_of(record: DocRecord) -> RevTree:
    if record.tree is None:
        flags = DELETED if record.flags & DOC_DELETED else 0
        if record.flags & DOC_KEEP_BODY:
            flags |= KEEP_BODY
        return RevTree.single(record.rev, flags, record.seq, record.body)
    return RevTree.decode(record.tree, record.body)


def first_revision(sequence: int, doc_id: str, body: bytes, deleted: bool = False) -> DocRecord:
    """The record of a document's first local revision (no parent, no tree yet)."""
    return single_revision(sequence, doc_id, new_rev_id(None, deleted, body), body, deleted)


def single_revision(
    sequence: int,
    doc_id: str,
    rev_id: str,
    body: bytes,
    deleted: bool,
    *,
    keep_body: bool = False,
) -> DocRecord:
    """The record of a document whose tree is one revision (stored without a tree): what
    :func:`record_from_tree` makes of such a tree, without building one. ``keep_body``: the
    revision came from a peer (it may be a delta base for that peer later)."""
    flags = DOC_DELETED if deleted else 0
    if body.find(DIGEST_KEY) >= 0:  # (cheaper than ``in``: this is every new document)
        flags |= DOC_HAS_BLOBS
    if keep_body:
        flags |= DOC_KEEP_BODY
    # tuple.__new__: no Python-level NamedTuple.__new__ on this hot path
    return new_tuple(DocRecord, (sequence, doc_id, rev_id, flags, body, None, None))


def build_revision(
    current: DocRecord | None,
    doc_id: str,
    body: bytes,
    *,
    deleted: bool,
    sequence: int,
    max_depth: int,
) -> DocRecord:
    """The record of a document after a new local revision (child of its current one)."""
    if current is None:
        return first_revision(sequence, doc_id, body, deleted)
    tree = tree_of(current)
    tree.add_revision(current.rev, body, deleted=deleted, sequence=sequence)
    tree.prune(max_depth)
    return record_from_tree(doc_id, tree, sequence, current.expiration)


def record_from_tree(
    doc_id: str, tree: RevTree, sequence: int, expiration: float | None
) -> DocRecord:
    winner = tree.current
    flags = DOC_DELETED if winner.deleted else 0
    if len(tree) > 1 and tree.is_conflicted:
        flags |= DOC_CONFLICTED
    if any(rev.body is not None and DIGEST_KEY in rev.body for rev in tree.revs):
        flags |= DOC_HAS_BLOBS
    if len(tree) == 1 and winner.flags & KEEP_BODY:
        flags |= DOC_KEEP_BODY
    encoded = None if len(tree) == 1 else tree.encode(omit_body_of=winner)
    return DocRecord(sequence, doc_id, winner.rev_id, flags, winner.body, encoded, expiration)


def digests_in_record(record: DocRecord) -> set[str]:
    """Blob digests referenced by any body kept in a document's revision tree."""
    if record.tree is None:
        return blob_digests_of((record.body,))
    return blob_digests_of(rev.body for rev in tree_of(record).revs)


__all__ = [
    "TOMBSTONE_BODY",
    "ChangeRow",
    "build_revision",
    "change_rows",
    "digests_in_record",
    "first_revision",
    "record_from_tree",
    "single_revision",
    "tree_of",
]
