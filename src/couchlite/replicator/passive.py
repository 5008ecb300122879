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
from typing import Any

import orjson

from couchlite.blip import BlipErrorReply, Message
from couchlite.errors import ConflictError, CouchliteError, LiteCoreCode
from couchlite.replicator._common import (
    MAX_HISTORY,
    MAX_POSSIBLE_ANCESTORS,
    CollectionContext,
    Reporter,
    doc_flags,
    http_reply,
)
from couchlite.replicator._messages import json_list_body
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
from couchlite.transport.connection import BlipConnection, Reply

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
            request = message.json()
        except CouchliteError:
            request = None
        if not isinstance(request, dict):
            raise BlipErrorReply("BLIP", 400, "Invalid getCollections message: no body")
        ids, paths = request.get("checkpoint_ids"), request.get("collections")
        if not isinstance(ids, list) or not ids or not all(isinstance(i, str) for i in ids):
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
        return client

    async def _on_get_checkpoint(self, message: Message) -> Reply:
        client = self._checkpoint_client(message)
        found = self.db.get_peer_checkpoint(client)
        if found is None:
            raise http_reply(404, "missing")
        rev, body = found
        return Reply({"rev": rev}, body)

    async def _on_set_checkpoint(self, message: Message) -> Reply:
        client = self._checkpoint_client(message)
        try:
            rev = self.db.set_peer_checkpoint(
                client, message.body, message.properties.get("rev") or None
            )
        except ConflictError:
            raise http_reply(409, "revision ID mismatch") from None
        except CouchliteError as exc:
            raise http_reply(502, f"could not save the checkpoint: {exc.message}") from exc
        return Reply({"rev": rev})

    # --- the peer pulls from us ----------------------------------------------------------------

    async def _on_sub_changes(self, message: Message) -> Reply:
        if not self.allow_pull:
            raise http_reply(403, _PULL_FORBIDDEN)
        context = self._context_for(message)
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
            try:
                body = message.json()
            except CouchliteError:
                raise BlipErrorReply("BLIP", 400, "Invalid JSON body") from None
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
        entries = json_list_body(message)
        proposals: list[tuple[str, str, str | None]] = []
        for entry in entries:
            if (
                not isinstance(entry, list)
                or len(entry) < 2
                or not isinstance(entry[0], str)
                or not isinstance(entry[1], str)
            ):
                raise BlipErrorReply("BLIP", 400, "Invalid proposeChanges entry")
            server_rev = entry[2] if len(entry) > 2 and isinstance(entry[2], str) else None
            proposals.append((entry[0], entry[1], server_rev or None))
        statuses = context.store.check_proposed(proposals) if proposals else []
        with_rev = message.bool_property("conflictIncludesRev")
        answers: list[Any] = []
        for status in statuses:
            if isinstance(status, tuple):
                code, current = status
                answers.append({"status": code, "rev": current} if with_rev else code)
            else:
                answers.append(status)
        while answers and answers[-1] == 0:
            answers.pop()
        return Reply(self._sink_props, orjson.dumps(answers), compressed=True)

    async def _on_changes(self, message: Message) -> Reply | None:
        context = self._sink_context(message)
        entries = json_list_body(message)
        if not entries or message.no_reply:
            return None
        pairs = [
            (e[1], e[2])
            for e in entries
            if isinstance(e, list)
            and len(e) >= 3
            and isinstance(e[1], str)
            and isinstance(e[2], str)
        ]
        if len(pairs) != len(entries):
            raise BlipErrorReply("BLIP", 400, "Invalid changes entry")
        missing = context.store.find_missing(pairs, MAX_POSSIBLE_ANCESTORS)
        answers: list[Any] = [0 if known is None else known for known in missing]
        while answers and answers[-1] == 0:
            answers.pop()
        return Reply(self._sink_props, orjson.dumps(answers), compressed=True)

    async def _on_rev(self, message: Message) -> Reply | None:
        context = self._sink_context(message)
        rev = parse_rev(message)
        self._incoming += 1
        try:
            if rev.delta_src is not None:
                rev = expand_delta(context.store, rev)
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


__all__ = ["PassiveSession"]
