"""Sending ``rev`` messages and serving the blobs they reference (notes §4.8-§4.10, §6.2, §7;
interop facts 5, 6, 9, 14).

Theory of operation
-------------------
Both directions of push (after ``proposeChanges`` or after the peer's ``changes`` reply) send
revisions the same way: read the revision with its history cut at the first revision the peer
has and at its ``maxHistory`` -- on the session's store thread, together with the delta base
and the delta itself -- then send ``rev`` compressed, not urgent, with properties in LiteCore's
order (:class:`~couchlite.replicator.protocol.revs.Rev`). Bodies go into BLIP as the store
returned them -- no re-encoding, no copy.

The number of ``rev`` requests awaiting replies is bounded per session by :attr:`RevSender.slots`
(the caller takes one before it sends a revision and gives it back once the reply arrived),
and their bodies by a byte budget, so memory and the peer's handler slots stay bounded while
dozens of revisions are pipelined (never one round trip per document). Revisions are read in
batches (:meth:`RevSender.read`: one store call, one thread hop, for many): the pusher reads
what one answered list asks for, up to ``REV_READ_AHEAD_BYTES`` of bodies, while that list
waits for slots, and the rest one by one as slots come free.

Deltas: a revision goes as a delta -- ``deltaSrc`` = the base revision, body = the JSON delta
from the base to it (:mod:`couchlite.model.jsondelta`) -- only when *both* sides allow it: this
side's ``enable_delta_sync`` (``deltas_enabled``) and the peer's ``deltas: true`` in a
``changes``/``proposeChanges`` reply (latched for the connection). The caller names the
revisions the peer has, best first; the first whose body is still kept and that is no tombstone
is the base. The delta is used when the body has at least ``MIN_BODY_SIZE_FOR_DELTA`` bytes and
the delta is at most ``MAX_DELTA_BODY_RATIO`` of it. A peer that lacks the base (or cannot apply
the delta) answers ``HTTP``/422 (a LiteCore passive may say 409); the revision is then sent
again with its full body, as LiteCore does (CBL-986).

Blobs: every digest referenced by a revision we sent is remembered; ``getAttachment`` serves
only those (the notes' security rule) and answers ``LiteCore``/7 "No such blob" otherwise. A
large blob is served from a read-only map of its file (:func:`blob_body`), not read into memory.
"""

from __future__ import annotations

import asyncio
import dataclasses
import io
import logging
import mmap
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import BinaryIO

import orjson

from couchlite._slots import Slots
from couchlite._tuning import (
    BLOB_LARGE_SIZE,
    COMPRESS_REV_MIN_BYTES,
    MAX_DELTA_BODY_RATIO,
    MAX_REV_BYTES_IN_FLIGHT,
    MAX_REVS_IN_FLIGHT,
    MIN_BODY_SIZE_FOR_DELTA,
    WAIT_TIMEOUT_S,
)
from couchlite.blip import BlipErrorReply, Message
from couchlite.errors import CouchliteError, ErrorDomain, LiteCoreCode
from couchlite.model.blobrefs import blob_digests
from couchlite.model.jsondelta import create_delta
from couchlite.replicator.collection_context import CollectionContext
from couchlite.replicator.error_mapping import remote_error
from couchlite.replicator.protocol.revs import GetAttachment, NoRev, Rev
from couchlite.replicator.store import CollectionStore, DatabaseStore, OutgoingRevision
from couchlite.replicator.store_worker import StoreWorker
from couchlite.transport.blip_connection import BlipConnection, Reply

logger = logging.getLogger("couchlite.replicator")

#: ``HTTP`` answers to a delta ``rev`` after which the full body is sent: 422 (base unknown or
#: corrupt delta), and 409, which a LiteCore passive in no-incoming-conflicts mode answers for a
#: missing base (notes §6.3); a genuine conflict gets its 409 again for the full body.
_DELTA_REFUSED = (409, 422)


@dataclass(slots=True)  # not frozen: one per revision, and frozen costs 5x to make
class SendResult:
    """What became of one ``rev``: sent (and the revision sent), gone, or failed."""

    revision: OutgoingRevision | None = None
    error: CouchliteError | None = None

    @property
    def ok(self) -> bool:
        return self.revision is not None and self.error is None


@dataclass(slots=True)  # not frozen: one per revision, and frozen costs 5x to make
class RevRead:
    """A revision read to be sent: the revision (``None``: gone), the gone revision it
    replaces, and its delta."""

    revision: OutgoingRevision | None
    replaced: str | None = None
    #: ``(base_rev_id, delta_json)`` when a delta is worth sending
    delta: tuple[str, bytes] | None = None


class RevSender:
    """Sends ``rev`` messages for one session and serves the blobs they reference."""

    def __init__(
        self,
        connection: BlipConnection,
        db: DatabaseStore,
        calls: StoreWorker,
        *,
        deltas_enabled: bool = False,
    ) -> None:
        self.connection = connection
        self.db = db
        self._calls = calls
        #: this side allows sending deltas (the replicator's / listener's ``enable_delta_sync``)
        self.deltas_enabled = deltas_enabled
        #: the peer said ``deltas: true`` in a changes/proposeChanges reply (latched)
        self.peer_deltas = False
        #: statistics: revisions sent as deltas, and deltas refused and resent in full
        self.deltas_sent = 0
        self.delta_fallbacks = 0
        #: taken by callers before sending a revision, released when its reply arrived
        self.slots = Slots(MAX_REVS_IN_FLIGHT)
        self._served_digests: set[str] = set()
        self._bytes_in_flight = 0
        self._bytes_room = asyncio.Event()

    async def read(
        self,
        context: CollectionContext,
        wanted: Sequence[tuple[str, str, Sequence[str]]],
        max_history: int,
        *,
        replace: bool = False,
    ) -> list[RevRead]:
        """Read revisions to send -- ``(doc_id, rev_id, known_revs)`` each: the history is cut
        at the first known revision, and the known revisions (best first) are the possible
        delta bases -- in one store call. With ``replace`` a newer current revision stands in
        for a gone one (``replacedRev``, when the puller asked for ``sendReplacementRevs``)."""
        deltas = self.peer_deltas and self.deltas_enabled
        return await self._calls.call(
            _read_many, context.store, wanted, max_history, replace, deltas
        )

    async def send(
        self,
        context: CollectionContext,
        doc_id: str,
        sequence: str,
        read: RevRead,
        *,
        noconflicts: bool,
    ) -> SendResult:
        """Send one revision as :meth:`read` returned it (nothing when it is gone)."""
        revision = read.revision
        if revision is None:
            return SendResult()
        rev = self._rev(doc_id, sequence, revision, read.replaced, noconflicts)
        if read.delta is not None:
            base_rev, delta_body = read.delta
            delta = dataclasses.replace(rev, delta_src=base_rev, body=delta_body)
            try:
                await self._request(delta, context.address)
            except BlipErrorReply as exc:
                if not (exc.domain == ErrorDomain.HTTP and exc.code in _DELTA_REFUSED):
                    return SendResult(
                        revision, remote_error(exc, f"rev {doc_id} {revision.rev_id}")
                    )
                # the peer lacks the base (or could not apply the delta): send it whole
                self.delta_fallbacks += 1
                logger.debug("delta for %r refused (%s): resending in full", doc_id, exc)
            else:
                self.deltas_sent += 1
                return SendResult(revision)
        try:
            await self._request(rev, context.address)
        except BlipErrorReply as exc:
            return SendResult(revision, remote_error(exc, f"rev {doc_id} {revision.rev_id}"))
        return SendResult(revision)

    def send_later(
        self,
        context: CollectionContext,
        doc_id: str,
        sequence: str,
        read: RevRead,
        done: Callable[[SendResult | None, Exception | None], None],
        *,
        noconflicts: bool,
    ) -> bool:
        """Send a revision read with its full body at once, with no task: ``done(result, None)``
        is called when the peer answered (a refusal is the result's error), ``done(None,
        error)`` with what :meth:`send` would raise (a timeout, the connection's end).
        ``False`` when it cannot go at once (gone, a delta, the byte budget spent, the
        connection's out-box full): nothing was sent, and the caller uses :meth:`send`."""
        revision = read.revision
        if revision is None or read.delta is not None:
            return False
        size = len(revision.body)
        if self._bytes_in_flight and self._bytes_in_flight + size > MAX_REV_BYTES_IN_FLIGHT:
            return False
        rev = self._rev(doc_id, sequence, revision, read.replaced, noconflicts)

        def answered(reply: Message | None, error: Exception | None) -> None:
            self._bytes_in_flight -= size
            self._bytes_room.set()
            if isinstance(error, BlipErrorReply):
                refusal = remote_error(error, f"rev {doc_id} {revision.rev_id}")
                done(SendResult(revision, refusal), None)
            elif error is not None:
                done(None, error)
            else:
                done(SendResult(revision), None)

        sent = self.connection.request_later(
            rev.properties(context.address),
            rev.body,
            answered,
            compressed=size >= COMPRESS_REV_MIN_BYTES,
        )
        if sent:
            self._bytes_in_flight += size
        return sent

    def _rev(
        self,
        doc_id: str,
        sequence: str,
        revision: OutgoingRevision,
        replaced: str | None,
        noconflicts: bool,
    ) -> Rev:
        """The ``rev`` message of ``revision``; the blobs it references may now be served."""
        self._served_digests.update(blob_digests(revision.body))
        return Rev(
            doc_id,
            revision.rev_id,
            sequence,
            revision.deleted,
            revision.history,
            revision.body,
            noconflicts,
            replaced_rev=replaced,
        )

    def peer_accepts_deltas(self, deltas: bool) -> None:
        """Latch the peer's ``deltas: true`` from a ``changes``/``proposeChanges`` reply."""
        if deltas:
            self.peer_deltas = True

    async def _request(self, rev: Rev, address: dict[str, str]) -> None:
        """Send one ``rev`` within the byte budget; raises the peer's ``BlipErrorReply``."""
        size = len(rev.body)
        # The byte budget (LiteCore: 2 MiB of revs awaiting replies); one rev always may go.
        while self._bytes_in_flight and self._bytes_in_flight + size > MAX_REV_BYTES_IN_FLIGHT:
            self._bytes_room.clear()
            async with asyncio.timeout(WAIT_TIMEOUT_S):
                await self._bytes_room.wait()
        self._bytes_in_flight += size
        try:
            await self.connection.request(
                rev.properties(address),
                rev.body,
                compressed=size >= COMPRESS_REV_MIN_BYTES,
            )
        finally:
            self._bytes_in_flight -= size
            self._bytes_room.set()

    async def send_norev(
        self, context: CollectionContext, doc_id: str, rev_id: str, sequence: str, error: int
    ) -> None:
        """Tell the puller a promised revision will never come (notes §4.9)."""
        out = NoRev(doc_id, rev_id, sequence, error).to_message(context.address)
        await self.connection.send_no_reply(out.properties, compressed=out.compressed)

    async def handle_get_attachment(self, message: Message) -> Reply:
        """``getAttachment``: the blob's bytes, compressed when asked (notes §4.10)."""
        request = GetAttachment.parse(message)
        if request.digest not in self._served_digests:
            raise BlipErrorReply("LiteCore", LiteCoreCode.NOT_FOUND, "No such blob")
        data = await self._calls.call(_blob_data, self.db, request.digest)
        if data is None:
            raise BlipErrorReply("LiteCore", LiteCoreCode.NOT_FOUND, "No such blob")
        return Reply(body=data, compressed=request.compress)


def _read_many(
    store: CollectionStore,
    wanted: Sequence[tuple[str, str, Sequence[str]]],
    max_history: int,
    replace: bool,
    deltas: bool,
) -> list[RevRead]:
    """On the store thread: the revisions to send (their documents read together), each with
    its replacement when it is gone (``replace``), and its delta (``deltas``: against the first
    of its known revisions whose body is kept)."""
    found = store.get_revisions(wanted, max_history)
    reads: list[RevRead] = []
    for (doc_id, rev_id, known), revision in zip(wanted, found, strict=True):
        replaced: str | None = None
        if revision is None and replace:
            current = store.current_revision(doc_id)
            if current is not None and current[0] != rev_id:
                revision = store.get_revision(doc_id, current[0], known, max_history)
                replaced = rev_id
        if revision is None:
            reads.append(RevRead(None))
            continue
        delta = (
            _delta(store, revision, known) if deltas and known and not revision.deleted else None
        )
        reads.append(RevRead(revision, replaced, delta))
    return reads


def _delta(
    store: CollectionStore, revision: OutgoingRevision, bases: Sequence[str]
) -> tuple[str, bytes] | None:
    """``(base_rev_id, delta_json)`` when a delta is worth sending, else ``None``."""
    body = revision.body
    if len(body) < MIN_BODY_SIZE_FOR_DELTA:
        return None
    base = store.delta_base(revision.doc_id, [b for b in bases if b != revision.rev_id])
    if base is None:
        return None
    base_rev, base_body = base
    try:
        delta = orjson.dumps(create_delta(orjson.loads(base_body), orjson.loads(body)))
    except (orjson.JSONDecodeError, orjson.JSONEncodeError, CouchliteError) as exc:
        logger.warning("no delta for %r: %s", revision.doc_id, exc)
        return None
    if len(delta) > len(body) * MAX_DELTA_BODY_RATIO:
        return None
    return base_rev, delta


def _blob_data(db: DatabaseStore, digest: str) -> bytes | memoryview | None:
    """On the store thread: a served blob's content, ``None`` when it is not there."""
    if not db.has_blob(digest):
        return None
    try:
        with db.open_blob(digest) as stream:
            return blob_body(stream)
    except CouchliteError:
        return None
    except OSError as exc:
        logger.warning("cannot read blob %s: %s", digest, exc)
        return None


def blob_body(stream: BinaryIO) -> bytes | memoryview:
    """A blob's content as a reply body. A large blob is not read into memory: the body is a
    read-only map of its file, which BLIP slices frame by frame without copying, so only the
    kernel's page cache (reclaimable) holds what is being sent. Blob files are immutable and
    replaced only by renames, so the mapping stays valid even if the blob is deleted meanwhile.
    """
    try:
        fd = stream.fileno()
        size = os.fstat(fd).st_size
    except (OSError, io.UnsupportedOperation):  # not a file: a store of another kind
        return stream.read()
    if size < BLOB_LARGE_SIZE:
        return stream.read()
    try:
        return memoryview(mmap.mmap(fd, 0, access=mmap.ACCESS_READ))
    except (OSError, ValueError):  # a file system without mmap: read it (bounded: local data)
        return stream.read()


__all__ = ["RevRead", "RevSender", "SendResult", "blob_body"]
