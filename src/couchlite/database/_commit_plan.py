"""What one commit writes: a transaction's overlay turned into the store's ``CommitBatch``,
with what the engine does afterwards (blobs to collect, the expiry purger to wake)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from couchlite.database._transaction import CollectionState, Transaction
from couchlite.database.records import digests_in_record
from couchlite.storage.records import DOC_DELETED, DOC_HAS_BLOBS, CommitBatch, DocRecord


@dataclass(slots=True)
class CommitPlan:
    """One commit, prepared under the engine lock."""

    #: what the store writes
    batch: CommitBatch = field(default_factory=CommitBatch)
    #: blobs no longer referenced by the documents rewritten (candidates for collection)
    released_digests: set[str] = field(default_factory=set)
    #: an expiration time was set or changed: the purger must look again
    expirations_changed: bool = False

    @classmethod
    def build(cls, collections: Mapping[int, CollectionState], txn: Transaction) -> CommitPlan:
        plan = cls()
        batch = plan.batch
        unverified = txn.unverified
        origins = txn.origin
        guessed: list[DocRecord] = []
        guessed_coll = None
        for key, record in txn.records.items():
            coll_id, doc_id = key
            if unverified and record is not None and key in unverified:
                # the bulk of a batch of new documents: keep this branch short
                if coll_id != guessed_coll:
                    guessed = batch.guessed.setdefault(coll_id, [])
                    guessed_coll = coll_id
                guessed.append(record)
                if record.flags & DOC_HAS_BLOBS or record.expiration is not None:
                    plan._account(coll_id, doc_id, None, record)
                continue
            origin = origins.get(key)
            was_live = origin is not None and not origin.flags & DOC_DELETED
            is_live = record is not None and not record.flags & DOC_DELETED
            if was_live != is_live:
                batch.count_deltas[coll_id] = batch.count_deltas.get(coll_id, 0) + (
                    1 if is_live else -1
                )
            if record is None:
                batch.purges.setdefault(coll_id, []).append((doc_id,))
            else:
                target = batch.inserts if origin is None else batch.upserts
                target.setdefault(coll_id, []).append(record)
            plan._account(coll_id, doc_id, origin, record)
        for coll_id, rows in batch.guessed.items():
            live = sum(1 for record in rows if not record.flags & DOC_DELETED)
            batch.count_deltas[coll_id] = batch.count_deltas.get(coll_id, 0) + live
        for (coll_id, doc_id), when in txn.expirations.items():
            if (coll_id, doc_id) not in txn.records:
                batch.expirations.setdefault(coll_id, []).append((when, doc_id))
                plan.expirations_changed = True
        for coll_id in txn.collections:
            state = collections.get(coll_id)
            if state is not None:
                batch.last_seqs[coll_id] = state.last_seq
        return plan

    def _account(
        self, coll_id: int, doc_id: str, origin: DocRecord | None, record: DocRecord | None
    ) -> None:
        """Expiration and blob-reference changes of one document."""
        if record is not None and record.expiration is not None:
            self.expirations_changed = True
        had_blobs = origin is not None and origin.flags & DOC_HAS_BLOBS
        has_blobs = record is not None and record.flags & DOC_HAS_BLOBS
        if had_blobs or has_blobs:
            old = digests_in_record(origin) if had_blobs and origin is not None else set()
            new = digests_in_record(record) if has_blobs and record is not None else set()
            if old != new:
                self.batch.blob_refs.append((coll_id, doc_id, new))
                self.released_digests |= old - new
