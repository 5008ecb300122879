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
  :class:`~couchlite.replicator.passive_pusher.PassivePusher` task; ``getAttachment`` serves the
  blobs of revisions sent on this connection. ``allow_pull=False`` answers ``HTTP``/403.
"""

from __future__ import annotations

import asyncio
import logging
import re
from typing import Any

import orjson

from couchlite._tuning import MAX_CHECKPOINT_BODY_SIZE, MAX_CHECKPOINT_ID_LENGTH
from couchlite.blip import BlipErrorReply, Message
from couchlite.errors import ConflictError, CouchliteError, InvalidArgumentError, LiteCoreCode
from couchlite.model.canonical import check_json_text
from couchlite.replicator._common import (
    MAX_HISTORY,
    MAX_POSSIBLE_ANCESTORS,
    CollectionContext,
    Reporter,
    doc_flags,
    http_reply,
)
from couchlite.replicator._messages import (
    changes_rows,
    checked_json,
    json_list_body,
    proposal_rows,
)
from couchlite.replicator.options import SessionEvents
from couchlite.replicator.passive_pusher import PassivePusher
from couchlite.replicator.sink import (
    BlobFetcher,
    Inserter,
    expand_delta,
    incoming,
    parse_rev,
    reply_error_for,
)
from couchlite.replicator.source import RevSender
from couchlite.replicator.store import CollectionStore, DatabaseStore
from couchlite.replicator.types import ReplicatedDocument
from couchlite.transport.blip_connection import BlipConnection, Reply

logger = logging.getLogger(__name__)


def _pusher_ended(task: asyncio.Task[None]) -> None:
    # A pusher ends with the connection when the peer vanishes (reset, black hole, killed):
    # retrieve its error here, or asyncio logs "Task exception was never retrieved".
    if not task.cancelled() and task.exception() is not None:
        logger.debug("%s ended: %r", task.get_name(), task.exception())


#: How long :meth:`PassiveSession.close` waits for its pusher tasks to end after cancelling.
CLOSE_TIMEOUT_S = 5.0

_SINK_REPLY_PROPS = {"maxHistory": str(MAX_HISTORY), "blobs": "true"}
_SINK_REPLY_PROPS_DELTAS = {**_SINK_REPLY_PROPS, "deltas": "true"}
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
        self.sender = RevSender(connection, db, deltas_enabled=enable_delta_sync)
        self._sink_props = _SINK_REPLY_PROPS_DELTAS if enable_delta_sync else _SINK_REPLY_PROPS
        self.blobs = BlobFetcher(connection, db)
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
            "rev": self._on_rev,
            "norev": self._on_norev,
            "getAttachment": self._on_get_attachment,
        }
        for profile, handler in handlers.items():
            self.connection.register_handler(profile, handler)

    @property
    def is_busy(self) -> bool:
        return self._incoming > 0 or (self._reporter is not None and self._reporter.busy)

    async def close(self) -> None:
        """Stop the passive pushers and commit queued insertions (bounded)."""
        tasks = list(self._pushers)
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks, timeout=CLOSE_TIMEOUT_S)
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
        try:
            request = checked_json(message)
        except BlipErrorReply:
            request = None
        if not isinstance(request, dict):
            raise BlipErrorReply("BLIP", 400, "Invalid getCollections message: no body")
        ids, paths = request.get("checkpoint_ids"), request.get("collections")
        if not isinstance(ids, list) or not ids or not all(_checkpoint_id_ok(i) for i in ids):
            raise BlipErrorReply("BLIP", 400, "Invalid getCollections message: checkpoint_ids")
        if not isinstance(paths, list) or not paths:
            raise BlipErrorReply("BLIP", 400, "Invalid getCollections message: collections")
        if len(ids) != len(paths):
            raise BlipErrorReply("BLIP", 400, "Invalid getCollections message: length mismatch")
        if not all(isinstance(p, str) and p for p in paths) or len(set(paths)) != len(paths):
            raise BlipErrorReply("BLIP", 400, "Invalid getCollections message: bad collections")
        self._mode = "collections"
        answers: list[Any] = []
        for index, (cp_id, path) in enumerate(zip(ids, paths, strict=True)):
            store = self._resolve_path(path)
            if store is None:
                self._contexts.append(None)
                answers.append(None)
                continue
            self._contexts.append(CollectionContext(index, store, {"collection": str(index)}))
            found = self.db.get_peer_checkpoint(cp_id)
            entry: dict[str, Any] = {}
            if found is not None:
                rev, body = found
                try:
                    parsed = orjson.loads(body)
                except orjson.JSONDecodeError:
                    parsed = None
                if isinstance(parsed, dict):
                    entry = parsed
                entry["rev"] = rev
                entry["_rev"] = rev
            answers.append(entry)
        return Reply(body=orjson.dumps(answers))

    def _checkpoint_client(self, message: Message) -> str:
        if self._mode is None:
            self._first_message()
        client = message.properties.get("client")
        if not client:
            raise BlipErrorReply("BLIP", 400, "missing checkpoint ID")
        if len(client) > MAX_CHECKPOINT_ID_LENGTH:
            raise BlipErrorReply("BLIP", 400, "checkpoint ID too long")
        return client

    async def _on_get_checkpoint(self, message: Message) -> Reply:
        client = self._checkpoint_client(message)
        found = self.db.get_peer_checkpoint(client)
        if found is None:
            raise http_reply(404, "missing")
        rev, body = found
        return Reply({"rev": rev}, body)

    async def _on_set_checkpoint(self, message: Message) -> Reply:
        # allowed on a read-only listener too (as in Couchbase Lite), but bounded: the body's
        # size here, the number of checkpoints kept by the store (oldest evicted)
        client = self._checkpoint_client(message)
        body = message.body
        if len(body) > MAX_CHECKPOINT_BODY_SIZE:
            raise http_reply(413, f"checkpoint larger than {MAX_CHECKPOINT_BODY_SIZE} bytes")
        _check_checkpoint_body(body)
        rev = message.properties.get("rev") or None
        if rev is not None and not _CHECKPOINT_REV.fullmatch(rev):
            raise http_reply(400, "invalid checkpoint revision")
        try:
            new_rev = self.db.set_peer_checkpoint(client, body, rev)
        except ConflictError:
            raise http_reply(409, "revision ID mismatch") from None
        except CouchliteError as exc:
            raise http_reply(502, f"could not save the checkpoint: {exc.message}") from exc
        return Reply({"rev": new_rev})

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
        props = message.properties
        if props.get("filter"):
            raise BlipErrorReply("LiteCore", LiteCoreCode.UNSUPPORTED, "Filtering not supported")
        if props.get("versioning") not in (None, "rev-trees"):
            raise BlipErrorReply("LiteCore", 501, "Incompatible document versioning.")
        since = 0
        if props.get("since"):
            try:
                value = orjson.loads(props["since"])
            except orjson.JSONDecodeError:
                value = None
            since = value if isinstance(value, int) and value > 0 else 0
        document_ids: frozenset[str] | None = None
        if message.body:
            body = checked_json(message)
            if isinstance(body, dict) and isinstance(body.get("docIDs"), list):
                document_ids = frozenset(d for d in body["docIDs"] if isinstance(d, str))
        pusher = PassivePusher(
            self.connection,
            context,
            sender=self.sender,
            reporter=self.reporter,
            since=since,
            continuous=message.bool_property("continuous"),
            active_only=message.bool_property("activeOnly"),
            document_ids=document_ids,
            replacements=message.bool_property("sendReplacementRevs"),
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
        proposals = proposal_rows(json_list_body(message))
        statuses = context.store.check_proposed(proposals) if proposals else []
        with_rev = message.bool_property("conflictIncludesRev")
        requested = context.requested
        answers: list[Any] = []
        for (doc_id, rev_id, _), status in zip(proposals, statuses, strict=True):
            if isinstance(status, tuple):
                code, current = status
                answers.append({"status": code, "rev": current} if with_rev else code)
            else:
                if status == 0:
                    requested.add(doc_id, rev_id)  # only an accepted proposal may be pushed
                answers.append(status)
        while answers and answers[-1] == 0:
            answers.pop()
        return Reply(self._sink_props, orjson.dumps(answers), compressed=True)

    async def _on_changes(self, message: Message) -> Reply | None:
        context = self._sink_context(message)
        entries = json_list_body(message)
        if not entries or message.no_reply:
            return None
        pairs = [(doc_id, rev_id) for _, doc_id, rev_id, _ in changes_rows(entries)]
        missing = context.store.find_missing(pairs, MAX_POSSIBLE_ANCESTORS)
        requested = context.requested
        answers: list[Any] = []
        for (doc_id, rev_id), known in zip(pairs, missing, strict=True):
            if known is None:
                answers.append(0)
            else:
                requested.add(doc_id, rev_id)
                answers.append(known)
        while answers and answers[-1] == 0:
            answers.pop()
        return Reply(self._sink_props, orjson.dumps(answers), compressed=True)

    async def _on_rev(self, message: Message) -> Reply | None:
        context = self._sink_context(message)
        requested = context.requested
        try:
            rev = parse_rev(message)
        except BlipErrorReply:
            # unusable as sent: the same revision is not accepted again in this session
            requested.pop(message.properties.get("id", ""), message.properties.get("rev", ""))
            raise
        if (rev.doc_id, rev.rev_id) not in requested:
            logger.debug("refused unproposed rev %r %s", rev.doc_id, rev.rev_id)
            raise http_reply(400, f"revision {rev.rev_id} of {rev.doc_id!r} was not proposed")
        self._incoming += 1
        finished = True
        try:
            if rev.delta_src is not None:
                try:
                    rev = expand_delta(context.store, rev)
                except BlipErrorReply:
                    finished = False  # the peer sends the full body next (notes §6.3)
                    raise
            try:
                await self.blobs.fetch_missing(context, rev.doc_id, rev.body)
            except CouchliteError as exc:
                self._report(context, rev.doc_id, rev.deleted, exc)
                raise reply_error_for(exc) from exc
            inserter = self._inserters.get(context.index)
            if inserter is None:
                inserter = self._inserters[context.index] = Inserter(context.store)
            # a passive peer never creates a conflict from a push: 409 instead (notes §8)
            outcome = await inserter.insert(incoming(rev, no_conflicts=True))
            self.revs_received += 1
            if outcome.error is not None:
                self._report(context, rev.doc_id, rev.deleted, outcome.error)
                raise reply_error_for(outcome.error)
            context.peer_revs.record(rev.doc_id, rev.rev_id, context.store.last_sequence)
            self._report(context, rev.doc_id, rev.deleted, None)
            return None
        finally:
            self._incoming -= 1
            if finished:
                requested.pop(rev.doc_id, rev.rev_id)

    async def _on_norev(self, message: Message) -> Reply | None:
        return None

    def _report(
        self, context: CollectionContext, doc_id: str, deleted: bool, error: CouchliteError | None
    ) -> None:
        store = context.store
        self.reporter.document(
            False,
            ReplicatedDocument(doc_id, store.scope_name, store.name, doc_flags(deleted), error),
        )


#: The revisions ``set_peer_checkpoint`` hands out (``<n>-cc``, notes §4.4)
_CHECKPOINT_REV = re.compile(r"[1-9][0-9]{0,15}-cc")


def _checkpoint_id_ok(value: object) -> bool:
    return isinstance(value, str) and 0 < len(value) <= MAX_CHECKPOINT_ID_LENGTH


def _check_checkpoint_body(body: bytes) -> None:
    """A checkpoint body must be a JSON object the local API could hold (HTTP/400)."""
    try:
        check_json_text(body)
        parsed = orjson.loads(body)
    except (InvalidArgumentError, orjson.JSONDecodeError):
        parsed = None
    if not isinstance(parsed, dict):
        raise http_reply(400, "checkpoint body is not a JSON object")


__all__ = ["PassiveSession"]
