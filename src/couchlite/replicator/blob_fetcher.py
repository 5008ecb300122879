"""Fetching the blobs a received revision references (notes §4.10, §7; interop fact 9).

Before a revision is inserted, every blob its body references that the local blob store lacks
is fetched with ``getAttachment`` (``digest``, ``docID``, ``compress: "true"``), the reply
streamed into a spool file of the blob store (hashed as it arrives, never held whole in
memory), verified against the digest and moved into place atomically. Concurrent fetches of
the same digest (two documents sharing a blob) share one request.

The blobs of a revision are pinned (``DatabaseStore.lease_blobs``) *before* it is decided which
are present, and stay pinned until the insert of that revision has committed or failed: a local
delete of the only other document using a blob cannot have it collected in between. If
fetching fails, the pins go at once (the revision will not be inserted). Store calls (leasing,
presence, opening and finishing spool files) run on the session's store thread.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from couchlite._tuning import MAX_BLOB_FETCHES_IN_FLIGHT
from couchlite.blip import BlipErrorReply
from couchlite.errors import CouchliteError, InvalidArgumentError
from couchlite.model.blobrefs import blob_digests
from couchlite.replicator.collection_context import CollectionContext
from couchlite.replicator.error_mapping import remote_error
from couchlite.replicator.protocol.revs import GetAttachment
from couchlite.replicator.store import BlobLease, CollectionStore, DatabaseStore
from couchlite.replicator.store_worker import StoreWorker
from couchlite.transport.blip_connection import BlipConnection


class BlobFetcher:
    """Fetches missing blobs from the peer with ``getAttachment``, once per digest."""

    def __init__(self, connection: BlipConnection, db: DatabaseStore, calls: StoreWorker) -> None:
        self.connection = connection
        self.db = db
        self._calls = calls
        self._fetching: dict[str, asyncio.Future[None]] = {}
        self.requests = 0
        self.bytes_received = 0
        #: bounds the spool files being filled at once (MAX_BLOB_FETCHES_IN_FLIGHT)
        self._slots = asyncio.Semaphore(MAX_BLOB_FETCHES_IN_FLIGHT)

    def _lease(
        self, store: CollectionStore, doc_id: str, digests: Sequence[str]
    ) -> tuple[BlobLease, list[str]]:
        """On the store thread: pin ``digests``, then list those not present."""
        lease = self.db.lease_blobs(store, doc_id, digests)
        return lease, [d for d in digests if not self.db.has_blob(d)]

    async def fetch_missing(self, context: CollectionContext, doc_id: str, body: bytes) -> None:
        """Make every blob ``body`` references present locally, pinned until the insert of
        this revision ends; raises the peer's error."""
        digests = blob_digests(body)
        if not digests:
            return
        lease, missing = await self._calls.call(self._lease, context.store, doc_id, digests)
        try:
            for digest in missing:
                pending = self._fetching.get(digest)
                if pending is None:
                    if await self._calls.call(self.db.has_blob, digest):
                        continue  # fetched for another revision meanwhile
                    pending = self._fetching.get(digest)  # (one may have started meanwhile)
                if pending is not None:
                    await asyncio.shield(pending)
                    continue
                future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
                self._fetching[digest] = future
                try:
                    async with self._slots:
                        await self._fetch(context, doc_id, digest)
                except BaseException as exc:
                    future.set_exception(exc)
                    future.exception()  # consumed here; waiters re-raise it
                    raise
                else:
                    future.set_result(None)
                    lease.fetched(digest)
                finally:
                    del self._fetching[digest]
        except BaseException:
            lease.release()
            raise

    async def _fetch(self, context: CollectionContext, doc_id: str, digest: str) -> None:
        """One ``getAttachment``, streamed into a spool file and verified (module docstring).
        More than the connection's ``max_attachment_size`` closes the connection with 1009
        (``BlipLimitExceeded``); whatever fails, the spool file goes."""
        out = GetAttachment(digest, doc_id).to_message(context.address)
        self.requests += 1
        writer = await self._calls.call(self.db.blob_writer, digest)
        try:
            try:
                await self.connection.request_streamed(
                    out.properties, write=writer.write, max_size=self.connection.max_attachment_size
                )
            except BlipErrorReply as exc:
                raise remote_error(exc, f"getAttachment {digest}") from exc
            try:
                _, length = await self._calls.call(writer.finish)
            except InvalidArgumentError as exc:
                raise CouchliteError(
                    f"blob {digest} from the peer does not match its digest"
                ) from exc
            self.bytes_received += length
        finally:
            writer.abort()  # (a no-op once finished)


__all__ = ["BlobFetcher"]
