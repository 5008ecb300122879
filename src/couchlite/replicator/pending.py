"""Which local documents have changes the peer does not have yet (``pending_document_ids``).

A document is pending when its current revision is after the push checkpoint, passes the
document-ID list and the push filter, and is not the revision the peer is known to have --
LiteCore's remote-ancestor rule: a revision pulled from the peer (or pushed to it, in a session
whose checkpoint is not saved yet) is not pending. That is the rule the pusher itself applies,
so the answer is what the next push would send.

Where the two facts come from:

* while a session runs (:class:`LivePushState`), its pusher's in-memory checkpoint and its
  :class:`~couchlite.replicator.remote_revs.RemoteRevisions` cache: both move as soon as a
  revision is acknowledged or pulled, long before the next checkpoint save. They belong to the
  session's event loop, so this must then run on that loop;
* otherwise, the saved local checkpoint and the store's remote-revision record -- the record
  only when that checkpoint exists, as the pusher of the next session does (without one it
  trusts only what it learns itself).
"""

from __future__ import annotations

from dataclasses import dataclass

from couchlite._tuning import CHANGES_BATCH_SIZE
from couchlite.errors import ConfigurationError
from couchlite.replicator.options import SessionCollectionOptions
from couchlite.replicator.protocol.checkpoints import CheckpointState, checkpoint_id
from couchlite.replicator.remote_revs import RemoteRevisions
from couchlite.replicator.store import ChangeEntry, DatabaseStore
from couchlite.replicator.types import ReplicatorType


@dataclass(frozen=True, slots=True)
class LivePushState:
    """What a running session knows of one collection's push (read on its loop only)."""

    #: the pusher's checkpoint: every change up to it is pushed or deliberately skipped
    checkpoint: int
    #: what the peer has of each document, as the session knows it now
    remote_revs: RemoteRevisions


def pending_document_ids(
    db: DatabaseStore,
    options: SessionCollectionOptions,
    remote_url: str,
    replicator_type: ReplicatorType,
    live: LivePushState | None = None,
) -> set[str]:
    """IDs of the documents of ``options.store`` the next push would send (module docstring).

    Raises ``ConfigurationError`` for a replicator that does not push.
    """
    if not replicator_type.pushes:
        raise ConfigurationError("pending documents exist only for push replications")
    store = options.store
    if live is not None:
        cursor = live.checkpoint
    else:
        cp_id = checkpoint_id(
            db.private_uuid,
            remote_url,
            store.scope_name,
            store.name,
            pull=replicator_type.pulls,
            push=True,
            document_ids=options.document_ids,
        )
        state = CheckpointState.parse(db.get_local_checkpoint(cp_id))
        cursor = state.local if state is not None else 0
        trust_record = state is not None
    pending: set[str] = set()
    while True:
        changes = store.changes_since(cursor, CHANGES_BATCH_SIZE)
        if not changes:
            return pending
        cursor = changes[-1].sequence
        if options.document_ids is not None:
            changes = [c for c in changes if c.doc_id in options.document_ids]
        ids = [c.doc_id for c in changes]
        if live is not None:
            live.remote_revs.load(ids)
            peer_has = {i: rev for i in ids if (rev := live.remote_revs.get(i)) is not None}
        elif trust_record and ids:
            peer_has = store.remote_revisions(remote_url, ids)
        else:
            peer_has = {}
        for change in changes:
            if peer_has.get(change.doc_id) == change.rev_id:
                continue  # the peer has this very revision (pulled from it, or pushed)
            if options.push_filter is not None and not _passes(options, change):
                continue
            pending.add(change.doc_id)


def _passes(options: SessionCollectionOptions, change: ChangeEntry) -> bool:
    assert options.push_filter is not None
    body = options.store.document_body(change.doc_id, change.rev_id)
    if body is None:
        return False  # replaced meanwhile: its newer change is in the feed too
    try:
        return bool(options.push_filter(change.doc_id, change.rev_id, change.deleted, body))
    except Exception:  # the user's filter: a failure skips the document, as when pushing
        return False


__all__ = ["LivePushState", "pending_document_ids"]
