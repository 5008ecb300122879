"""Document records and their revision trees: how a revision becomes the row that is stored.

Pure functions over ``DocRecord`` (one row of ``kv_<id>``) and ``RevTree``: used by the engine,
local saves and the replication store alike, so that flags (deleted, conflicted, has blobs,
keeps its body) and blob references are derived from a record in one way everywhere.

``ChangeRow``, the public entry of ``Collection.changes()``, is defined beside the rows it is
read from (``storage.sqlite_store``, below this layer) and re-exported here.
"""

from __future__ import annotations

from couchlite.model.blobrefs import DIGEST_KEY, blob_digests_of
from couchlite.model.revid import new_rev_id
from couchlite.model.revtree import DELETED, KEEP_BODY, RevTree
from couchlite.storage.sqlite_store import (
    DOC_CONFLICTED,
    DOC_DELETED,
    DOC_HAS_BLOBS,
    ChangeRow,
    DocRecord,
    new_tuple,
)

#: Record flag of a single-revision document (no encoded tree) whose revision a peer has: the
#: tree's ``KEEP_BODY`` must survive, or the body -- a delta base -- is dropped two edits later.
DOC_KEEP_BODY = 0x08


def tree_of(record: DocRecord) -> RevTree:
    if record.tree is None:
        flags = DELETED if record.flags & DOC_DELETED else 0
        if record.flags & DOC_KEEP_BODY:
            flags |= KEEP_BODY
        return RevTree.single(record.rev, flags, record.seq, record.body)
    return RevTree.decode(record.tree, record.body)


def first_revision(sequence: int, doc_id: str, body: bytes, deleted: bool = False) -> DocRecord:
    """The record of a document's first revision (no parent, no tree yet)."""
    flags = DOC_DELETED if deleted else 0
    if body.find(DIGEST_KEY) >= 0:  # (cheaper than ``in``: this is every new document)
        flags |= DOC_HAS_BLOBS
    # tuple.__new__: no Python-level NamedTuple.__new__ on this hot path
    return new_tuple(
        DocRecord, (sequence, doc_id, new_rev_id(None, deleted, body), flags, body, None, None)
    )


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
    "DOC_KEEP_BODY",
    "ChangeRow",
    "build_revision",
    "digests_in_record",
    "first_revision",
    "record_from_tree",
    "tree_of",
]
