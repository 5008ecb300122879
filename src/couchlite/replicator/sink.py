"""The sink side shared by both sessions: parsing ``rev``, fetching blobs, batched inserts.

Theory of operation (notes §4.8, §4.10, §7; interop facts 5, 6, 9, 10)
---------------------------------------------------------------------
A ``rev`` handler parses the message (:func:`parse_rev`), fetches the blobs the body references
that the local blob store lacks (``getAttachment`` with ``digest``, ``docID``,
``compress: "true"``; the reply streamed into a spool file and verified, see
:class:`BlobFetcher`) *before* inserting, then hands the revision to
the collection's :class:`Inserter` and awaits its outcome; only then does it reply, so the peer
learns of a revision exactly when it is durable.

The :class:`Inserter` is what makes receiving fast: revisions arriving within
``INSERT_BATCH_DELAY_S`` (or until ``INSERT_BATCH_SIZE`` are queued) are inserted with one
``insert_revisions`` call -- one transaction -- and every waiting handler is woken with its own
outcome. It runs on the event loop thread as a timer callback: no task and no thread hop per
revision (the store's write is one short transaction per batch).

Reserved properties (``model.legacy``): as LiteCore does with what arrives from a peer, every
top-level ``_`` property of a body is dropped before anything else looks at it (after a delta
is applied, for a delta) -- ``_id``, ``_rev``, ``_deleted`` (whether a revision is a deletion
is the ``deleted`` property of its message alone), ``_revisions``, ``_exp``, ... -- except the
real legacy entries of ``_attachments``, whose blobs are then fetched and verified as any
other; the entries standing in for blobs found elsewhere in the body go.

Deltas (notes §6.3): a ``rev`` with ``deltaSrc`` carries a JSON delta against that revision;
:func:`expand_delta` applies it to the local body of the base (``document_body``) before
anything else looks at the revision (filter, blobs, insertion), so the rest of the sink only
ever sees full bodies. A base we do not have, or a delta that does not fit it, is answered
``HTTP``/422 and the sender resends the full body. A delta is applied even if this side did not
advertise ``deltas``: refusing a well-formed one would only cost the peer a round trip.

Concurrent fetches of the same digest (two documents sharing a blob) share one request. The
blobs of a revision stay pinned from the moment they are found present (or fetched) until its
insert has ended, so a local delete in between cannot have them collected.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Sequence
from dataclasses import dataclass

import orjson

from couchlite._tuning import BLOB_LARGE_SIZE, MAX_BLOB_FETCHES_IN_FLIGHT
from couchlite.blip import BlipErrorReply, Message
from couchlite.errors import CouchliteError, InvalidArgumentError
from couchlite.model.blobrefs import blob_digests
from couchlite.model.canonical import check_json_text
from couchlite.model.jsondelta import CorruptDeltaError, apply_delta
from couchlite.model.legacy import (
    has_old_meta_properties,
    strip_old_meta_body,
    strip_old_meta_properties,
)
from couchlite.model.revid import is_valid_rev_id
from couchlite.replicator._common import (
    INSERT_BATCH_DELAY_S,
    INSERT_BATCH_SIZE,
    INSERT_IN_THREAD,
    CollectionContext,
    error_reply_for,
    http_reply,
    remote_error,
)
from couchlite.replicator.store import (
    BlobSink,
    CollectionStore,
    DatabaseStore,
    IncomingRevision,
    InsertOutcome,
)
from couchlite.transport.blip_connection import BlipConnection

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class ParsedRev:
    doc_id: str
    rev_id: str
    #: the ``sequence`` property verbatim (JSON text), ``None`` when absent
    sequence: str | None
    deleted: bool
    history: list[str]
    body: bytes
    no_conflicts: bool
    #: ``deltaSrc``: ``body`` is a delta against this revision (until :func:`expand_delta`)
    delta_src: str | None = None
    #: ``replacedRev``: the revision announced, which this current one stands in for
    replaced_rev: str | None = None

    @property
    def announced(self) -> str:
        """The revision the peer announced for this one (what was requested)."""
        return self.replaced_rev or self.rev_id


def parse_rev(message: Message) -> ParsedRev:
    """The fields of a ``rev`` message; ``HTTP``/400 when it is unusable (notes §4.8): missing
    ``id``/``rev``, a malformed revision ID (``rev``, ``history``, ``deltaSrc``, ``replacedRev``),
    or a body (full or delta) that the local API could not hold (``check_json_text``)."""
    props = message.properties
    doc_id = props.get("id")
    rev_id = props.get("rev")
    if not doc_id or not rev_id:
        raise http_reply(400, "received 'rev' message with missing 'id' or 'rev'")
    error = props.get("error")
    if error is not None:
        # the sender could not produce the revision after all (as a norev); never echoed back
        # as our own status
        raise http_reply(400, f"rev carried error {error[:20]!r}")
    if not is_valid_rev_id(rev_id):
        raise http_reply(400, f"received invalid revision ID {rev_id[:100]!r}")
    history_text = props.get("history")
    history = [h.strip() for h in history_text.split(",") if h.strip()] if history_text else []
    for ancestor in history:
        if not is_valid_rev_id(ancestor):
            raise http_reply(400, f"received invalid revision ID {ancestor[:100]!r} in history")
    delta_src = props.get("deltaSrc") or None
    replaced = props.get("replacedRev") or None
    for other in (delta_src, replaced):
        if other is not None and not is_valid_rev_id(other):
            raise http_reply(400, f"received invalid revision ID {other[:100]!r}")
    body = message.body or b"{}"
    try:
        check_json_text(body)
    except InvalidArgumentError as exc:
        raise http_reply(400, f"invalid body of {doc_id[:100]!r}: {exc.message}") from None
    if delta_src is None:
        body = strip_old_meta_body(body)
    return ParsedRev(
        doc_id,
        rev_id,
        props.get("sequence"),
        message.bool_property("deleted"),
        history,
        body,
        message.bool_property("noconflicts"),
        delta_src,
        replaced,
    )


def expand_delta(store: CollectionStore, rev: ParsedRev) -> ParsedRev:
    """``rev`` with its delta applied to the local base: a full body (see the module
    docstring); ``HTTP``/422 when the base is unknown or the delta does not apply."""
    if rev.delta_src is None:
        return rev
    base = store.document_body(rev.doc_id, rev.delta_src)
    if base is None:
        raise http_reply(422, f"unknown delta base {rev.delta_src} of {rev.doc_id!r}")
    try:
        applied = apply_delta(orjson.loads(base), orjson.loads(rev.body))
        if isinstance(applied, dict) and has_old_meta_properties(applied):
            applied = strip_old_meta_properties(applied)
        body = orjson.dumps(applied)
    except (CorruptDeltaError, orjson.JSONDecodeError, orjson.JSONEncodeError) as exc:
        raise http_reply(422, f"invalid delta for {rev.doc_id!r}: {exc}") from None
    return dataclasses.replace(rev, body=body, delta_src=None)


class Inserter:
    """Batches revisions into ``insert_revisions`` transactions (see the module docstring)."""

    def __init__(
        self,
        store: CollectionStore,
        *,
        batch_size: int = INSERT_BATCH_SIZE,
        delay: float = INSERT_BATCH_DELAY_S,
    ) -> None:
        self.store = store
        self._batch_size = batch_size
        self._delay = delay
        self._queue: list[tuple[IncomingRevision, asyncio.Future[InsertOutcome]]] = []
        self._timer: asyncio.TimerHandle | None = None
        self.batches = 0

    async def insert(self, revision: IncomingRevision) -> InsertOutcome:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[InsertOutcome] = loop.create_future()
        self._queue.append((revision, future))
        if len(self._queue) >= self._batch_size:
            self.flush()
        elif self._timer is None:
            self._timer = loop.call_later(self._delay, self.flush)
        return await future

    def flush(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        items, self._queue = self._queue, []
        if not items:
            return
        self.batches += 1
        revisions = [r for r, _ in items]
        if INSERT_IN_THREAD:
            loop = asyncio.get_running_loop()
            done = loop.run_in_executor(None, self._insert, revisions)
            done.add_done_callback(lambda f: self._deliver(items, f.result()))
        else:
            self._deliver(items, self._insert(revisions))

    def _insert(self, revisions: list[IncomingRevision]) -> Sequence[InsertOutcome]:
        try:
            return self.store.insert_revisions(revisions)
        except CouchliteError as exc:
            return [InsertOutcome(error=exc)] * len(revisions)
        except Exception as exc:  # a store bug must fail the revisions, not hang their handlers
            logger.exception("insert_revisions failed")
            error = CouchliteError(f"insert failed: {type(exc).__name__}: {exc}")
            return [InsertOutcome(error=error)] * len(revisions)

    @staticmethod
    def _deliver(
        items: list[tuple[IncomingRevision, asyncio.Future[InsertOutcome]]],
        outcomes: Sequence[InsertOutcome],
    ) -> None:
        for (_, future), outcome in zip(items, outcomes, strict=True):
            if not future.done():
                future.set_result(outcome)

    def close(self) -> None:
        """Commit what is queued (the handlers waiting on it will answer)."""
        self.flush()


class BlobFetcher:
    """Fetches missing blobs from the peer with ``getAttachment``, once per digest.

    The blobs of a revision are pinned (``DatabaseStore.lease_blobs``) *before* it is decided
    which are present, and stay pinned until the insert of that revision has committed or
    failed: a local delete of the only other document using a blob cannot have it collected in
    between. If fetching fails, the pins go at once (the revision will not be inserted).
    """

    def __init__(self, connection: BlipConnection, db: DatabaseStore) -> None:
        self.connection = connection
        self.db = db
        self._fetching: dict[str, asyncio.Future[None]] = {}
        self.requests = 0
        self.bytes_received = 0
        #: bounds the spool files being filled at once (MAX_BLOB_FETCHES_IN_FLIGHT)
        self._slots = asyncio.Semaphore(MAX_BLOB_FETCHES_IN_FLIGHT)

    async def fetch_missing(self, context: CollectionContext, doc_id: str, body: bytes) -> None:
        """Make every blob ``body`` references present locally, pinned until the insert of
        this revision ends; raises the peer's error."""
        digests = blob_digests(body)
        if not digests:
            return
        lease = self.db.lease_blobs(context.store, doc_id, digests)
        try:
            for digest in digests:
                if self.db.has_blob(digest):
                    continue
                pending = self._fetching.get(digest)
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
        """One ``getAttachment``, its reply streamed into a spool file of the blob store (hashed
        as it arrives, never held whole in memory), verified against ``digest`` and moved into
        place atomically. More than the connection's ``max_attachment_size`` closes the
        connection with 1009 (``BlipLimitExceeded``); whatever fails, the spool file goes."""
        props = context.props("getAttachment")
        props.update(digest=digest, docID=doc_id, compress="true")
        self.requests += 1
        writer = self.db.blob_writer(digest)
        try:
            try:
                await self.connection.request_streamed(
                    props, write=writer.write, max_size=self.connection.max_attachment_size
                )
            except BlipErrorReply as exc:
                raise remote_error(exc, f"getAttachment {digest}") from exc
            try:
                _, length = await _finish(writer)
            except InvalidArgumentError as exc:
                raise CouchliteError(
                    f"blob {digest} from the peer does not match its digest"
                ) from exc
            self.bytes_received += length
        finally:
            writer.abort()  # (a no-op once finished)


async def _finish(writer: BlobSink) -> tuple[str, int]:
    """``writer.finish()``; its ``fsync`` off the event loop for a large blob."""
    if writer.size < BLOB_LARGE_SIZE:
        return writer.finish()
    return await asyncio.to_thread(writer.finish)


def incoming(rev: ParsedRev, *, no_conflicts: bool) -> IncomingRevision:
    return IncomingRevision(
        rev.doc_id, rev.rev_id, rev.history, rev.body, rev.deleted, no_conflicts
    )


def reply_error_for(exc: CouchliteError) -> BlipErrorReply:
    """How a sink answers a ``rev`` it could not store: invalid input from the peer (a body or
    history the store refused) is ``HTTP``/400, as LiteCore answers a bad ``rev``."""
    if isinstance(exc, BlipErrorReply):
        return exc
    if isinstance(exc, InvalidArgumentError):
        return http_reply(400, exc.message)
    return error_reply_for(exc)


__all__ = [
    "BlobFetcher",
    "Inserter",
    "ParsedRev",
    "expand_delta",
    "incoming",
    "parse_rev",
    "reply_error_for",
]
