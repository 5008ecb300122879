"""Blob garbage collection: a blob is deleted once no committed document references it and
nobody has it pinned.

References are the store's (``DocumentStore.referenced_digests``); pins are the blob store's
(``BlobStore`` pins, e.g. a received revision waiting in an insert batch). Every collection runs
with the engine lock held: the commit of a transaction (the digests it released or wrote), a
rollback (those it wrote), a dropped collection (those it referenced) and ``compact()`` (all).
An insert checks its blobs are present under the same lock, and local saves store their blobs
while holding it, so nothing can reference a blob between the check and the delete.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

from couchlite.database._transaction import Transaction
from couchlite.database.records import digests_in_record
from couchlite.model.blobrefs import DIGEST_KEY
from couchlite.storage.blobstore import BlobStore
from couchlite.storage.document_store import DocumentStore
from couchlite.storage.records import DOC_HAS_BLOBS

log = logging.getLogger("couchlite.database.engine")

#: How blob references are computed: 2 counts legacy ``_attachments`` too (``model.blobrefs``);
#: a database at an older version is rescanned when opened.
BLOB_REFS_VERSION = 2


class BlobCollector:
    """Deletes the unreferenced, unpinned blobs of one database."""

    def __init__(self, store: DocumentStore, blobs: BlobStore) -> None:
        self._store = store
        self._blobs = blobs

    def finish(self, txn: Transaction, candidates: set[str]) -> None:
        """Release the blob leases of an ended transaction, then collect ``candidates``."""
        if txn.leases:
            for lease in txn.leases:
                lease.release()
            txn.leases.clear()
        self.collect(candidates)

    def collect(self, candidates: set[str]) -> None:
        blobs = self._blobs
        if blobs.has_rechecks:
            candidates = candidates | blobs.take_rechecks()
        if not candidates:
            return
        try:
            still = self._store.referenced_digests(sorted(candidates))
        except Exception:
            log.warning("blob garbage collection failed", exc_info=True)
            return
        for digest in candidates - still:
            try:
                blobs.delete_unless_pinned(digest)
            except OSError:  # the commit stands; compact() retries
                log.warning("cannot delete blob %s", digest, exc_info=True)

    def collect_all(self, txn: Transaction | None) -> int:
        """Delete every blob no document references and nobody pins; keep those ``txn`` (this
        thread's open batch, if any) uses. Returns how many were deleted."""
        blobs = self._blobs
        blobs.take_rechecks()  # all of them are looked at below
        referenced = self._store.all_referenced_digests()
        if txn is not None:
            referenced |= txn.written_digests
            for record in txn.records.values():
                if record is not None and record.flags & DOC_HAS_BLOBS:
                    referenced |= digests_in_record(record)
        removed = 0
        for digest in list(blobs.digests()):
            if digest not in referenced and blobs.delete_unless_pinned(digest):
                removed += 1
        return removed

    def upgrade_refs(self, collection_ids: Iterable[int]) -> None:
        """Count the references of bodies saved before legacy ``_attachments`` were counted
        (once per database; a fresh one has nothing to scan)."""
        store = self._store
        if store.blob_refs_version() >= BLOB_REFS_VERSION:
            return
        refs = [
            (coll_id, record.doc_id, digests_in_record(record))
            for coll_id in collection_ids
            for record in store.records_containing(coll_id, DIGEST_KEY)
        ]
        store.rebuild_blob_refs(refs, BLOB_REFS_VERSION)
