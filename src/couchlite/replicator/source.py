"""The source side shared by both sessions: sending ``rev`` messages and serving blobs.

Theory of operation (notes §4.8, §4.9, §4.10, §7; interop facts 5, 6, 9)
------------------------------------------------------------------------
Both the active pusher (after ``proposeChanges``) and the passive pusher (after the peer's
``changes`` reply) send revisions the same way: read the revision with its history cut at the
first revision the peer has and at its ``maxHistory``, then send ``rev`` compressed, not urgent,
with properties in the order LiteCore writes them: ``Profile, [collection], id, rev, sequence,
[noconflicts], [deleted], [history]`` (``replacedRev`` after ``sequence`` for a replacement).
Bodies go into BLIP as the store returned them -- no re-encoding, no copy.

The number of ``rev`` requests awaiting replies is bounded per session by a semaphore that the
*caller* acquires before it reads the revision, and their bodies by a byte budget, so memory
and the peer's handler slots stay bounded while dozens of revisions are pipelined (never one
round trip per document).

Blobs: every digest referenced by a revision we sent is remembered; ``getAttachment`` serves
only those (the notes' security rule) and answers ``LiteCore``/7 "No such blob" otherwise.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass

from couchlite.blip import BlipErrorReply, Message
from couchlite.errors import CouchliteError, LiteCoreCode
from couchlite.replicator._common import (
    COMPRESS_REV_MIN_BYTES,
    MAX_REV_BYTES_IN_FLIGHT,
    MAX_REVS_IN_FLIGHT,
    WAIT_TIMEOUT_S,
    CollectionContext,
    blob_references,
    remote_error,
)
from couchlite.replicator.store import DatabaseStore, OutgoingRevision
from couchlite.transport.connection import BlipConnection, Reply

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class SendResult:
    """What became of one ``rev``: sent (and the revision sent), gone, or failed."""

    revision: OutgoingRevision | None = None
    error: CouchliteError | None = None

    @property
    def ok(self) -> bool:
        return self.revision is not None and self.error is None


class RevSender:
    """Sends ``rev`` messages for one session and serves the blobs they reference."""

    def __init__(self, connection: BlipConnection, db: DatabaseStore) -> None:
        self.connection = connection
        self.db = db
        #: acquired by callers before reading a revision, released when its reply arrived
        self.slots = asyncio.Semaphore(MAX_REVS_IN_FLIGHT)
        self._served_digests: set[str] = set()
        self._bytes_in_flight = 0
        self._bytes_room = asyncio.Event()

    async def send(
        self,
        context: CollectionContext,
        doc_id: str,
        rev_id: str,
        sequence: str,
        known_revs: Sequence[str],
        max_history: int,
        *,
        noconflicts: bool,
        replace: bool = False,
    ) -> SendResult:
        """Send one revision; with ``replace`` a newer current revision stands in for a gone
        one (``replacedRev``, when the puller asked for ``sendReplacementRevs``)."""
        store = context.store
        revision = store.get_revision(doc_id, rev_id, known_revs, max_history)
        replaced: str | None = None
        if revision is None and replace:
            current = store.current_revision(doc_id)
            if current is not None and current[0] != rev_id:
                revision = store.get_revision(doc_id, current[0], known_revs, max_history)
                replaced = rev_id
        if revision is None:
            return SendResult()
        props = context.props("rev")
        props["id"] = doc_id
        props["rev"] = revision.rev_id
        props["sequence"] = sequence
        if replaced is not None:
            props["replacedRev"] = replaced
        if noconflicts:
            props["noconflicts"] = "1"
        if revision.deleted:
            props["deleted"] = "1"
        if revision.history:
            props["history"] = ",".join(revision.history)
        body = revision.body
        for blob in blob_references(body):
            self._served_digests.add(blob["digest"])
        size = len(body)
        # The byte budget (LiteCore: 2 MiB of revs awaiting replies); one rev always may go.
        while self._bytes_in_flight and self._bytes_in_flight + size > MAX_REV_BYTES_IN_FLIGHT:
            self._bytes_room.clear()
            async with asyncio.timeout(WAIT_TIMEOUT_S):
                await self._bytes_room.wait()
        self._bytes_in_flight += size
        try:
            await self.connection.request(props, body, compressed=size >= COMPRESS_REV_MIN_BYTES)
        except BlipErrorReply as exc:
            return SendResult(revision, remote_error(exc, f"rev {doc_id} {revision.rev_id}"))
        finally:
            self._bytes_in_flight -= size
            self._bytes_room.set()
        return SendResult(revision)

    async def send_norev(
        self, context: CollectionContext, doc_id: str, rev_id: str, sequence: str, error: int
    ) -> None:
        """Tell the puller a promised revision will never come (notes §4.9)."""
        props = context.props("norev")
        props.update(id=doc_id, rev=rev_id, sequence=sequence, error=str(error))
        await self.connection.send_no_reply(props, compressed=True)

    async def handle_get_attachment(self, message: Message) -> Reply:
        """``getAttachment``: the blob's bytes, compressed when asked (notes §4.10)."""
        digest = message.properties.get("digest")
        if not digest or not digest.startswith("sha1-"):
            raise BlipErrorReply(
                "LiteCore", LiteCoreCode.INVALID_PARAMETER, "Missing or invalid 'digest'"
            )
        if digest not in self._served_digests or not self.db.has_blob(digest):
            raise BlipErrorReply("LiteCore", LiteCoreCode.NOT_FOUND, "No such blob")
        try:
            with self.db.open_blob(digest) as stream:
                data = stream.read()
        except CouchliteError:
            raise BlipErrorReply("LiteCore", LiteCoreCode.NOT_FOUND, "No such blob") from None
        return Reply(body=data, compressed=message.bool_property("compress"))


__all__ = ["RevSender", "SendResult"]
