"""The passive session: answering an active peer's replicator on one BlipConnection (notes
§4.1-§4.10, §9.2, §11.4; interop facts 3-10).

Theory of operation
-------------------
:meth:`PassiveSession.attach` registers a handler per profile; everything then happens in
answers:

* **Mode** (notes §4.1): a first message ``getCollections`` makes the connection
  collection-aware (every collection-scoped message must carry a valid ``collection`` index,
  else ``HTTP``/400); any other first message means a 3.0-style legacy client, accepted only if
  the default collection is shared (else ``BLIP``/400 "This server is not configured for 3.0
  client support"). ``getCollections`` after another message is ``BLIP``/400.
* **Checkpoints** (notes §4.3, §4.4, §9.2): ``get/setCheckpoint`` through
  ``get/set_peer_checkpoint`` (``N-cc`` revisions; ``HTTP``/404 when missing, ``HTTP``/409 on a
  revision mismatch, ``BLIP``/400 without ``client``). ``getCollections`` answers ``{}``, the
  checkpoint body plus both ``rev`` and ``_rev`` (LiteCore and Sync Gateway spellings), or
  ``null`` for a collection that is not shared.
* **Limits**: one live ``subChanges`` per collection (a second while it runs: ``HTTP``/409,
  no task); checkpoint IDs of at most ``MAX_CHECKPOINT_ID_LENGTH`` (``BLIP``/400), bodies of
  at most ``MAX_CHECKPOINT_BODY_SIZE`` (``HTTP``/413) that are JSON objects (``HTTP``/400), the
  store keeping ``MAX_PEER_CHECKPOINTS`` per database -- on a read-only listener too; every
  JSON body checked as the local API checks values, every change row validated (400).
* **Only what was accepted is stored**: a pushed ``rev`` must match a ``proposeChanges`` entry
  answered 0 (or, for a legacy client, a ``changes`` entry answered "wanted") on this
  connection; anything else is ``HTTP``/400 and stores nothing.
* **Peer pushes** (sink): ``proposeChanges`` -> ``check_proposed`` (``{"status":409,"rev":X}``
  when ``conflictIncludesRev``; trailing zeros omitted; ``maxHistory``/``blobs`` properties);
  ``rev`` -> blobs fetched, batched insert with ``no_conflicts`` -- a passive peer never creates
  a conflict from a push, it answers 409. ``allow_push=False`` (a read-only listener) answers
  ``HTTP``/403 "Attempting to push to a pull-only replicator" and writes nothing.
* **Deltas** (notes §6): with ``enable_delta_sync`` (the listener's) the sink replies announce
  ``deltas: true`` and the pusher may send deltas when the peer announced them too; an incoming
  ``deltaSrc`` is applied to our copy of the base (``HTTP``/422 when we lack it). Revisions the
  peer pushed are kept as future bases (``KEEP_BODY``), so -- unlike a passive-only LiteCore
  database (interop fact 14) -- we can send the peer deltas against them later.
* **Peer pulls** (source): ``subChanges`` -> empty reply, then a
  :class:`~couchlite.replicator.pusher.Pusher` task that announces ``changes``;
  ``getAttachment`` serves the blobs of revisions sent on this connection.
  ``allow_pull=False`` answers ``HTTP``/403.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine
from typing import Any

from couchlite._tuning import MAX_POSSIBLE_ANCESTORS, PASSIVE_CLOSE_TIMEOUT_S
from couchlite.blip import BlipErrorReply, Message
from couchlite.errors import ConflictError, CouchliteError
from couchlite.model.blobrefs import blob_digests
from couchlite.replicator.blob_fetcher import BlobFetcher
from couchlite.replicator.collection_context import CollectionContext
from couchlite.replicator.error_mapping import reply_error_for
from couchlite.replicator.inserter import Inserted, Inserter
from couchlite.replicator.options import SessionEvents
from couchlite.replicator.protocol.changes import (
    Changes,
    ChangesReply,
    ProposeChanges,
    ProposeChangesReply,
    SubChanges,
    trim_zeros,
)
from couchlite.replicator.protocol.checkpoints import (
    CheckpointReply,
    GetCheckpoint,
    GetCollections,
    GetCollectionsReply,
    SetCheckpoint,
    checkpoint_replies,
)
from couchlite.replicator.protocol.revs import Rev
from couchlite.replicator.protocol.wire import http_reply
from couchlite.replicator.push_dialects import Announcing
from couchlite.replicator.pusher import Pusher
from couchlite.replicator.reporter import Reporter
from couchlite.replicator.rev_receiver import expand_delta, incoming
from couchlite.replicator.rev_sender import RevSender
from couchlite.replicator.store import CollectionStore, DatabaseStore, IncomingRevision
from couchlite.replicator.store_worker import StoreWorker
from couchlite.transport.blip_connection import BlipConnection, Deferred, Reply

logger = logging.getLogger(__name__)


def _pusher_ended(task: asyncio.Task[None]) -> None:
    # A pusher ends with the connection when the peer vanishes (reset, black hole, killed):
    # retrieve its error here, or asyncio logs "Task exception was never retrieved".
    if not task.cancelled() and task.exception() is not None:
        logger.debug("%s ended: %r", task.get_name(), task.exception())


_PUSH_FORBIDDEN = "Attempting to push to a pull-only replicator"
_PULL_FORBIDDEN = "Attempting to pull from a push-only replicator"


class PassiveSession:
    """Serves one connected active peer for ``collections`` of ``db``."""

    def __init__(
        self,
        connection: BlipConnection,
        db: DatabaseStore,
        collections: list[CollectionStore],
        *,
        allow_push: bool = True,
        allow_pull: bool = True,
        events: SessionEvents | None = None,
        enable_delta_sync: bool = False,
    ) -> None:
        self.connection = connection
        self.db = db
        self.collections = list(collections)
        self.allow_push = allow_push
        self.allow_pull = allow_pull
        self.events = events
        self._reporter: Reporter | None = None
        self._mode: str | None = None  # "legacy" | "collections" once the first message came
        self._contexts: list[CollectionContext | None] = []
        self._inserters: dict[int, Inserter] = {}
        self._pushers: set[asyncio.Task[None]] = set()
        #: the live pusher of each collection (one subChanges at a time, as LiteCore)
        self._live: dict[int, asyncio.Task[None]] = {}
        self._incoming = 0
        #: every store call of the session runs here, off the event loop
        self.calls = StoreWorker(db.private_uuid)
        self.sender = RevSender(connection, db, self.calls, deltas_enabled=enable_delta_sync)
        self.enable_delta_sync = enable_delta_sync
        self.blobs = BlobFetcher(connection, db, self.calls)
        self.revs_received = 0

    def attach(self) -> None:
        """Register every handler on the connection (before ``connection.start()``)."""
        handlers = {
            "getCollections": self._on_get_collections,
            "getCheckpoint": self._on_get_checkpoint,
            "setCheckpoint": self._on_set_checkpoint,
            "subChanges": self._on_sub_changes,
            "proposeChanges": self._on_propose_changes,
            "changes": self._on_changes,
            "norev": self._on_norev,
            "getAttachment": self._on_get_attachment,
        }
        for profile, handler in handlers.items():
            self.connection.register_handler(profile, handler)
        self.connection.register_sync_handler("rev", self._on_rev)

    @property
    def is_busy(self) -> bool:
        return self._incoming > 0 or (self._reporter is not None and self._reporter.busy)

    async def close(self) -> None:
        """Stop the passive pushers and commit queued insertions (bounded)."""
        tasks = list(self._pushers)
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks, timeout=PASSIVE_CLOSE_TIMEOUT_S)
        for inserter in self._inserters.values():
            inserter.close()
        if self._reporter is not None:
            self._reporter.set_busy(self, False)
            self._reporter.close()

    # --- addressing ----------------------------------------------------------------------------

    @property
    def reporter(self) -> Reporter:
        if self._reporter is None:
            self._reporter = Reporter(self.events)
        return self._reporter

    def _default_store(self) -> CollectionStore | None:
        for store in self.collections:
            if store.scope_name == "_default" and store.name == "_default":
                return store
        return None

    def _first_message(self) -> None:
        """A first message other than ``getCollections``: a legacy (3.0) client."""
        default = self._default_store()
        if default is None:
            raise BlipErrorReply(
                "BLIP", 400, "This server is not configured for 3.0 client support"
            )
        self._mode = "legacy"
        self._contexts = [CollectionContext(0, default)]

    def _context_for(self, message: Message) -> CollectionContext:
        if self._mode is None:
            if "collection" in message.properties:
                raise http_reply(400, "inappropriate use of the collection property.")
            self._first_message()
        index_text = message.properties.get("collection")
        if self._mode == "legacy":
            if index_text is not None:
                raise http_reply(400, "inappropriate use of the collection property.")
            legacy = self._contexts[0]
            assert legacy is not None
            context = legacy
        else:
            if index_text is None or not index_text.isdigit():
                raise http_reply(400, "inappropriate use of the collection property.")
            index = int(index_text)
            if index >= len(self._contexts):
                raise http_reply(400, "the collection property is out of range.")
            found = self._contexts[index]
            if found is None:
                raise http_reply(404, "collection not found")
            context = found
        return context

    def _resolve_path(self, path: str) -> CollectionStore | None:
        scope, _, name = path.rpartition(".")
        scope = scope or "_default"
        for store in self.collections:
            if store.scope_name == scope and store.name == name:
                return store
        return None

    # --- checkpoints ---------------------------------------------------------------------------

    async def _on_get_collections(self, message: Message) -> Reply:
        if self._mode is not None:
            raise BlipErrorReply(
                "BLIP", 400, "Invalid getCollections message: not the first message"
            )
        request = GetCollections.parse(message)
        self._mode = "collections"
        shared: list[tuple[int, str]] = []
        for index, (cp_id, path) in enumerate(
            zip(request.checkpoint_ids, request.collections, strict=True)
        ):
            store = self._resolve_path(path)
            if store is None:
                self._contexts.append(None)
                continue
            self._contexts.append(CollectionContext(index, store, {"collection": str(index)}))
            shared.append((index, cp_id))
        found = await self.calls.call(_peer_checkpoints, self.db, [c for _, c in shared])
        entries: list[CheckpointReply | None] = [None] * len(request.collections)
        for (index, _), entry in zip(shared, checkpoint_replies(found), strict=True):
            entries[index] = entry
        return Reply(body=GetCollectionsReply(tuple(entries)).to_reply())

    def _first_if_none(self) -> None:
        if self._mode is None:
            self._first_message()

    async def _on_get_checkpoint(self, message: Message) -> Reply:
        self._first_if_none()
        request = GetCheckpoint.parse(message)
        found = await self.calls.call(self.db.get_peer_checkpoint, request.client)
        if found is None:
            raise http_reply(404, "missing")
        rev, body = found
        props, body = CheckpointReply(rev, body).to_reply()
        return Reply(props, body)

    async def _on_set_checkpoint(self, message: Message) -> Reply:
        # allowed on a read-only listener too (as in Couchbase Lite), but bounded: the body's
        # size here, the number of checkpoints kept by the store (oldest evicted)
        self._first_if_none()
        request = SetCheckpoint.parse(message)
        try:
            new_rev = await self.calls.call(
                self.db.set_peer_checkpoint, request.client, request.body, request.rev
            )
        except ConflictError:
            raise http_reply(409, "revision ID mismatch") from None
        except CouchliteError as exc:
            raise http_reply(502, f"could not save the checkpoint: {exc.message}") from exc
        props, _ = CheckpointReply(new_rev).to_reply()
        return Reply(props)

    # --- the peer pulls from us ----------------------------------------------------------------

    async def _on_sub_changes(self, message: Message) -> Reply:
        if not self.allow_pull:
            raise http_reply(403, _PULL_FORBIDDEN)
        context = self._context_for(message)
        live = self._live.get(context.index)
        if live is not None and not live.done():
            # one subscription per collection and connection (LiteCore has one pusher each):
            # a second one would be a task per message
            raise http_reply(409, "subChanges already active for this collection")
        request = SubChanges.parse(message)
        announcing = Announcing(
            context.peer_revs,
            active_only=request.active_only,
            document_ids=request.document_ids,
            replacements=request.send_replacement_revs,
        )
        pusher = Pusher(
            self.connection,
            context,
            self.calls,
            announcing,
            sender=self.sender,
            reporter=self.reporter,
            since=request.since_sequence,
            continuous=request.continuous,
        )
        task = asyncio.create_task(pusher.run(), name=f"passive-pusher-{context.index}")
        self._pushers.add(task)
        self._live[context.index] = task
        task.add_done_callback(self._pushers.discard)
        task.add_done_callback(_pusher_ended)
        return Reply()

    async def _on_get_attachment(self, message: Message) -> Reply:
        self._context_for(message)
        return await self.sender.handle_get_attachment(message)

    # --- the peer pushes to us -----------------------------------------------------------------

    def _sink_context(self, message: Message) -> CollectionContext:
        if not self.allow_push:
            raise http_reply(403, _PUSH_FORBIDDEN)
        return self._context_for(message)

    async def _on_propose_changes(self, message: Message) -> Reply:
        context = self._sink_context(message)
        proposal = ProposeChanges.parse(message)
        rows = proposal.rows
        statuses = (
            await self.calls.call(
                context.store.check_proposed, [(r.doc_id, r.rev_id, r.server_rev) for r in rows]
            )
            if rows
            else []
        )
        requested = context.requested
        for row, status in zip(rows, statuses, strict=True):
            if status == 0:
                requested.add(row.doc_id, row.rev_id)  # only an accepted proposal may be pushed
        reply = ProposeChangesReply.from_statuses(statuses, deltas=self.enable_delta_sync)
        props, body = reply.to_reply(proposal.conflict_includes_rev)
        return Reply(props, body, compressed=True)

    async def _on_changes(self, message: Message) -> Reply | None:
        context = self._sink_context(message)
        changes = Changes.parse(message)
        if not changes.rows:
            return None
        pairs = [(row.doc_id, row.rev_id) for row in changes.rows]
        missing = await self.calls.call(context.store.find_missing, pairs, MAX_POSSIBLE_ANCESTORS)
        requested = context.requested
        answers: list[object] = []
        for (doc_id, rev_id), known in zip(pairs, missing, strict=True):
            if known is None:
                answers.append(0)
            else:
                requested.add(doc_id, rev_id)
                answers.append(known)
        props, body = ChangesReply(trim_zeros(answers), self.enable_delta_sync).to_reply()
        return Reply(props, body, compressed=True)

    def _on_rev(self, message: Message) -> Deferred | Coroutine[Any, Any, Reply | None]:
        """A pushed revision: stored through the batching inserter, answered once its batch
        committed. The common case (a full body without blobs) waits on nothing but the batch,
        so it costs no task; a delta or a revision with blobs waits in a task of its own."""
        context = self._sink_context(message)
        requested = context.requested
        try:
            rev = Rev.parse(message)
        except BlipErrorReply:
            # unusable as sent: the same revision is not accepted again in this session
            requested.pop(message.properties.get("id", ""), message.properties.get("rev", ""))
            raise
        if (rev.doc_id, rev.rev_id) not in requested:
            logger.debug("refused unproposed rev %r %s", rev.doc_id, rev.rev_id)
            raise http_reply(400, f"revision {rev.rev_id} of {rev.doc_id!r} was not proposed")
        if rev.delta_src is not None or blob_digests(rev.body):
            return self._on_rev_waiting(context, rev)
        self._incoming += 1
        answer = Deferred()

        def stored(inserted: Inserted) -> None:
            self._incoming -= 1
            requested.pop(rev.doc_id, rev.rev_id)
            try:
                self._stored(context, rev, inserted)
            except Exception as exc:  # the reply the handler would have raised (501 if a bug)
                answer.fail(exc)
            else:
                answer.resolve()

        self._inserter(context).insert_later(incoming(rev, no_conflicts=True), stored)
        return answer

    async def _on_rev_waiting(self, context: CollectionContext, rev: Rev) -> Reply | None:
        """A pushed delta, or a revision whose blobs may have to be fetched first."""
        requested = context.requested
        self._incoming += 1
        finished = True
        try:
            if rev.delta_src is not None:
                try:
                    rev = await self.calls.call(expand_delta, context.store, rev)
                except BlipErrorReply:
                    finished = False  # the peer sends the full body next (notes §6.3)
                    raise
            try:
                await self.blobs.fetch_missing(context, rev.doc_id, rev.body)
            except CouchliteError as exc:
                self._report(context, rev.doc_id, rev.deleted, exc)
                raise reply_error_for(exc) from exc
            inserted = await self._inserter(context).insert(incoming(rev, no_conflicts=True))
            self._stored(context, rev, inserted)
            return None
        finally:
            self._incoming -= 1
            if finished:
                requested.pop(rev.doc_id, rev.rev_id)

    def _inserter(self, context: CollectionContext) -> Inserter:
        inserter = self._inserters.get(context.index)
        if inserter is None:
            inserter = self._inserters[context.index] = Inserter(
                context.store, self.calls, on_stored=_recorder(context)
            )
        return inserter

    def _stored(self, context: CollectionContext, rev: Rev, inserted: Inserted) -> None:
        """Report what became of a pushed revision; raises the error reply when it was refused
        (a passive peer never creates a conflict from a push: 409 instead, notes §8)."""
        self.revs_received += 1
        outcome = inserted.outcome
        if outcome.error is not None:
            self._report(context, rev.doc_id, rev.deleted, outcome.error)
            raise reply_error_for(outcome.error)
        self._report(context, rev.doc_id, rev.deleted, None)

    async def _on_norev(self, message: Message) -> Reply | None:
        return None

    def _report(
        self, context: CollectionContext, doc_id: str, deleted: bool, error: CouchliteError | None
    ) -> None:
        self.reporter.result(False, context.store, doc_id, deleted, error)


def _recorder(context: CollectionContext) -> Callable[[IncomingRevision, int], None]:
    """What the peer pushed is not announced back to it (``PeerRevisions``)."""

    def record(revision: IncomingRevision, stored_by: int) -> None:
        context.peer_revs.record(revision.doc_id, revision.rev_id, stored_by)

    return record


def _peer_checkpoints(db: DatabaseStore, ids: list[str]) -> list[tuple[str, bytes] | None]:
    """On the store thread: the checkpoints the peer saved under ``ids``."""
    return [db.get_peer_checkpoint(cp_id) for cp_id in ids]


__all__ = ["PassiveSession"]
