"""The sink side's writes of revision trees: a revision received from a peer, and the
resolution of a conflict. Each runs inside the engine transaction its caller holds (so with the
engine lock, which keeps blob garbage collection out until it commits)."""

from __future__ import annotations

from couchlite.database._transaction import CollectionState, Transaction
from couchlite.database.engine import Engine
from couchlite.database.names import check_doc_id
from couchlite.database.records import (
    TOMBSTONE_BODY,
    record_from_tree,
    single_revision,
    tree_of,
)
from couchlite.errors import ConflictError, InvalidArgumentError, LiteCoreCode, NotFoundError
from couchlite.model.blobrefs import DIGEST_KEY, blob_digests
from couchlite.model.canonical import canonicalize, loads
from couchlite.model.legacy import check_local_properties, may_have_old_meta_properties
from couchlite.model.revid import check_rev_id
from couchlite.model.revtree import KEEP_BODY, RevTree
from couchlite.replicator.store import IncomingRevision, InsertOutcome
from couchlite.storage.records import DOC_DELETED


def insert_revision(
    engine: Engine,
    txn: Transaction,
    state: CollectionState,
    incoming: IncomingRevision,
    max_depth: int,
) -> InsertOutcome:
    """Add a revision received from a peer to its document's tree (``KEEP_BODY``: it may be
    a delta base for that peer later), inside ``txn``."""
    check_doc_id(incoming.doc_id)
    history = [incoming.rev_id, *incoming.history]
    for rev_id in history:
        check_rev_id(rev_id)
    if incoming.deleted:
        body = TOMBSTONE_BODY
    else:
        # (reserved properties are stripped where revisions arrive: ``sink.parse_rev``)
        body = canonicalize(incoming.body)
        if not body.startswith(b"{"):
            raise InvalidArgumentError(
                f"the body of {incoming.doc_id!r} is not a JSON object",
                code=LiteCoreCode.CORRUPT_REVISION_DATA,
            )
        if DIGEST_KEY in body:
            check_blobs_present(engine, incoming.doc_id, body)
    record = engine.read_record(state, incoming.doc_id)
    if record is None and not incoming.history:
        # a new document's first revision (most of what a first sync receives): no tree
        record = single_revision(
            state.next_sequence(),
            incoming.doc_id,
            incoming.rev_id,
            body,
            incoming.deleted,
            keep_body=True,
        )
        engine.put_record(txn, state, record)
        return InsertOutcome()
    if record is None:
        tree = RevTree()
    else:
        tree = tree_of(record)
        if incoming.rev_id in tree:
            return InsertOutcome(already_present=True, conflicted=tree.is_conflicted)
        if (
            incoming.no_conflicts
            and not record.flags & DOC_DELETED
            and record.rev not in incoming.history
        ):
            raise ConflictError(
                f"{incoming.doc_id} {incoming.rev_id} does not descend from the current "
                f"revision {record.rev}",
                code=409,
            )
    sequence = state.next_sequence()
    result = tree.insert_history(history, body, deleted=incoming.deleted, sequence=sequence)
    result.revision.flags |= KEEP_BODY
    tree.prune(max_depth)
    expiration = None if record is None else record.expiration
    engine.put_record(txn, state, record_from_tree(incoming.doc_id, tree, sequence, expiration))
    return InsertOutcome(conflicted=len(tree) > 1 and tree.is_conflicted)


def resolve_conflict(
    engine: Engine,
    txn: Transaction,
    state: CollectionState,
    doc_id: str,
    local_rev: str,
    remote_rev: str,
    body: bytes | None,
) -> str:
    """Resolve a conflict inside ``txn``: close the local branch and make the resolution
    (``body``; ``None`` deletes) the winner, as a child of the remote revision unless it is
    that revision; return the winning revision ID."""
    record = engine.read_record(state, doc_id)
    tree = tree_of(record) if record is not None else None
    local = tree.get(local_rev) if tree is not None else None
    remote = tree.get(remote_rev) if tree is not None else None
    if (
        record is None
        or tree is None
        or local is None
        or remote is None
        or not tree.is_leaf(local)
        or not tree.is_leaf(remote)
    ):
        raise ConflictError(f"the conflict of {doc_id!r} changed while being resolved")
    merged = TOMBSTONE_BODY if body is None else canonicalize(body)
    if body is not None and merged not in (local.body, remote.body):
        check_resolution(doc_id, merged)  # a new body, made by the resolver
    if DIGEST_KEY in merged:  # a resolver's new blobs were stored before this lock
        check_blobs_present(engine, doc_id, merged)
    sequence = state.next_sequence()
    # close the local branch, then (unless the remote revision is the resolution
    # itself) add the resolution as a child of the remote revision
    tree.add_revision(local_rev, TOMBSTONE_BODY, deleted=True, sequence=sequence)
    remote_is_result = (body is None) == remote.deleted and (body is None or remote.body == merged)
    if remote_is_result:
        winner = remote_rev
    else:
        winner = tree.add_revision(
            remote_rev, merged, deleted=body is None, sequence=sequence
        ).rev_id
    tree.prune(engine.max_rev_tree_depth)
    updated = record_from_tree(doc_id, tree, sequence, record.expiration)
    engine.put_record(txn, state, updated)
    return winner


def check_blobs_present(engine: Engine, doc_id: str, body: bytes) -> None:
    """Refuse a revision whose blobs are not all stored (run with the engine lock held, so no
    garbage collection can delete one before the insert commits). The receiver fetched them
    first and pinned them; what is missing here came from a peer naming blobs in a form the
    receiver's scan of the raw body could not see, or was evicted from ``BlobLeases``; for a
    conflict resolution, a new blob of the resolver's that a compaction collected before the
    resolution was saved (the conflict then stays, to be resolved again)."""
    for digest in blob_digests(body):
        if not engine.blobs.has(digest):
            raise NotFoundError(f"blob {digest} referenced by {doc_id!r} is not stored")


def check_resolution(doc_id: str, body: bytes) -> None:
    """Hold a conflict resolution to the rules of a local save (``model.legacy``): it is a
    new local revision."""
    if may_have_old_meta_properties(body):
        props = loads(body)
        if isinstance(props, dict):
            check_local_properties(props, doc_id)
