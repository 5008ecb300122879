"""The active puller: ``subChanges``, then answering ``changes`` and receiving ``rev``s.

Theory of operation (notes §4.5, §4.6, §4.8, §4.9; interop facts 6, 7, 8)
-------------------------------------------------------------------------
1. ``subChanges`` with properties in LiteCore's order -- ``[since], [continuous], batch: 200,
   sendReplacementRevs: 1, versioning: rev-trees, [activeOnly: true], revocations: true`` --
   and a ``{"docIDs": [...]}`` body when document IDs are filtered.
2. Each ``changes`` is answered at once, in one batched ``find_missing`` read: ``0`` for a
   revision we have (or an entry filtered out / revoked), else the list of ancestors we hold;
   reply properties ``maxHistory: 50``, ``blobs: true`` and, with ``enable_delta_sync``,
   ``deltas: true`` (the peer may then send deltas, notes §6), compressed (urgent copies the
   request).
   Entries whose ``deleted`` value has bit 2 or 4 set (and is not 5) mean access was removed:
   the document is purged locally when auto-purge is on and reported with ``ACCESS_REMOVED``.
   Every row is validated first (document ID present, well-formed revision ID): one bad row
   is ``HTTP``/400 for the whole message, nothing acted on. ``document_ids`` bound every row,
   access removals included.
3. **Only what was asked for is stored.** Each revision answered "wanted" enters
   :class:`~couchlite.replicator._common.RequestedRevisions` (``(doc_id, rev_id)`` -> the key of
   its announced sequence; bounded, O(1)). A ``rev`` not found there (looked up by its
   ``replacedRev`` when it stands in for the announced one) is ``HTTP``/400 and stores
   nothing; a ``norev`` not found is ignored. One found is tracked under the *announced*
   sequence, never the one it claims, and its entry goes once it is stored or refused for good
   (a delta refused with 422 stays: the full body follows). A request the bound forgets marks
   its sequence stuck (retried next session).
   Each ``rev``: missing ``sequence``, a malformed revision ID or history, or a body the local
   API could not hold (nested too deeply, integers beyond 64 bits) is ``HTTP``/400; the pull
   filter runs on the received revision (a rejected one is not saved but counts as done);
   missing blobs are fetched; the revision goes through the batching inserter (without
   ``no_conflicts``: a conflicting branch is stored and then resolved, see
   :mod:`couchlite.replicator.conflicts`); the reply is sent after the batch commits.
   ``norev`` just marks its sequence done.
4. Progress and the checkpoint: every announced sequence enters a :class:`SequenceTracker`;
   ``remote`` of the checkpoint is the last sequence of its finished prefix. An empty ``changes``
   means caught up; a one-shot pull is finished once that arrived and nothing is outstanding.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import orjson

from couchlite.blip import BlipErrorReply, Message
from couchlite.errors import CouchliteError, DatabaseClosedError, ErrorDomain
from couchlite.replicator._common import (
    CHANGES_BATCH_SIZE,
    MAX_HISTORY,
    MAX_POSSIBLE_ANCESTORS,
    CollectionContext,
    Reporter,
    RequestedRevisions,
    SequenceTracker,
    doc_flags,
    http_reply,
    remote_error,
    sequence_key,
)
from couchlite.replicator._messages import changes_rows, json_list_body
from couchlite.replicator.conflicts import resolve_conflict
from couchlite.replicator.options import SessionCollectionOptions
from couchlite.replicator.remote_revs import RemoteRevisions
from couchlite.replicator.sink import (
    BlobFetcher,
    Inserter,
    expand_delta,
    incoming,
    parse_rev,
    reply_error_for,
)
from couchlite.replicator.types import DocumentFlags, ReplicatedDocument
from couchlite.transport.blip_connection import BlipConnection, Reply

logger = logging.getLogger(__name__)

_CHANGES_REPLY_PROPS = {"maxHistory": str(MAX_HISTORY), "blobs": "true"}
_CHANGES_REPLY_PROPS_DELTAS = {**_CHANGES_REPLY_PROPS, "deltas": "true"}


class Puller:
    """Pulls one collection for an :class:`~couchlite.replicator.active.ActiveSession`."""

    def __init__(
        self,
        connection: BlipConnection,
        context: CollectionContext,
        options: SessionCollectionOptions,
        *,
        since: Any,
        had_checkpoint: bool,
        continuous: bool,
        enable_auto_purge: bool,
        reporter: Reporter,
        blobs: BlobFetcher,
        remote_revs: RemoteRevisions,
        accept_deltas: bool = False,
    ) -> None:
        self.connection = connection
        self._reply_props = _CHANGES_REPLY_PROPS_DELTAS if accept_deltas else _CHANGES_REPLY_PROPS
        self.context = context
        self.store = context.store
        self.options = options
        self.since = since
        self.had_checkpoint = had_checkpoint
        self.continuous = continuous
        self.enable_auto_purge = enable_auto_purge
        self.reporter = reporter
        self.blobs = blobs
        #: the revision the peer is known to have, per document (shared with the pusher)
        self.remote_revs = remote_revs
        self.tracker = SequenceTracker(since)
        #: (doc_id, rev_id) answered "wanted" -> the tracker key of its announcement
        self.requested = RequestedRevisions()
        self.inserter = Inserter(self.store)
        self.caught_up = False
        self.finished = asyncio.Event()
        self.revs_received = 0

    async def retry_conflicts(self) -> None:
        """Resolve again the documents a resolver failed on in an earlier session."""
        for doc_id, remote_rev in self.store.conflicted_documents():
            error = await resolve_conflict(
                self.store, doc_id, remote_rev, self.options.conflict_resolver
            )
            if error is not None:
                self._report(doc_id, False, error)

    async def start(self) -> None:
        """Retry unresolved conflicts, then send ``subChanges`` (a refusal is fatal)."""
        await self.retry_conflicts()
        props = self.context.props("subChanges")
        if self.since is not None:
            props["since"] = sequence_key(self.since)
        if self.continuous:
            props["continuous"] = "true"
        props["batch"] = str(CHANGES_BATCH_SIZE)
        props["sendReplacementRevs"] = "1"
        props["versioning"] = "rev-trees"
        if self.store.is_empty and not self.had_checkpoint:
            props["activeOnly"] = "true"
        props["revocations"] = "true"
        body = b""
        if self.options.document_ids is not None:
            body = orjson.dumps({"docIDs": sorted(self.options.document_ids)})
        self.reporter.set_busy(self, True)
        try:
            await self.connection.request(props, body)
        except BlipErrorReply as exc:
            raise remote_error(exc, "subChanges refused") from exc

    @property
    def checkpoint(self) -> Any:
        return self.tracker.checkpoint

    def _check_finished(self) -> None:
        if self.caught_up and self.tracker.outstanding == 0:
            if not self.finished.is_set():
                self.inserter.flush()
                self.finished.set()
            self.reporter.set_busy(self, False)

    def close(self) -> None:
        self.inserter.close()

    # --- handlers -------------------------------------------------------------------------

    async def handle_changes(self, message: Message) -> Reply | None:
        entries = json_list_body(message)
        if not entries:
            self.caught_up = True
            self._check_finished()
            return None
        if message.no_reply:
            return None  # a non-empty changes sent noreply cannot be answered (notes §4.6)
        rows = changes_rows(entries)
        self.finished.clear()
        self.reporter.set_busy(self, True)
        answers: list[Any] = [0] * len(entries)
        to_check: list[tuple[int, str, str, str]] = []
        tracker = self.tracker
        requested = self.requested
        doc_ids = self.options.document_ids
        for i, (seq, doc_id, rev_id, deleted_bits) in enumerate(rows):
            key = sequence_key(seq)
            tracker.add(key, seq)
            if doc_ids is not None and doc_id not in doc_ids:
                tracker.done(key)  # also for access removals: documents_ids bound every path
            elif deleted_bits >= 2 and deleted_bits != 5:
                self._access_removed(doc_id)
                tracker.done(key)
            elif (doc_id, rev_id) in requested:
                tracker.done(key)  # announced again while the first request is in flight
            else:
                to_check.append((i, doc_id, rev_id, key))
        if to_check:
            missing = self.store.find_missing(
                [(d, r) for _, d, r, _ in to_check], MAX_POSSIBLE_ANCESTORS
            )
            requested_now = 0
            for (i, doc_id, rev_id, key), known in zip(to_check, missing, strict=True):
                if known is None:
                    self.remote_revs[doc_id] = rev_id
                    tracker.done(key)
                else:
                    answers[i] = known
                    requested_now += 1
                    evicted, old_key = requested.add(doc_id, rev_id, key)
                    if evicted:
                        tracker.stuck(old_key)  # never came: retried by a later session
            if requested_now:
                self.reporter.add_total(requested_now)
        self._check_finished()
        return Reply(self._reply_props, orjson.dumps(answers), compressed=True)

    def _access_removed(self, doc_id: str) -> None:
        if not self.enable_auto_purge:
            return
        try:
            self.store.purge(doc_id)
        except CouchliteError as exc:
            logger.warning("auto-purge of %r failed: %s", doc_id, exc)
            return
        self.remote_revs.pop(doc_id, None)
        self.reporter.document(
            False,
            ReplicatedDocument(
                doc_id, self.store.scope_name, self.store.name, DocumentFlags.ACCESS_REMOVED
            ),
            count=False,
        )

    async def handle_rev(self, message: Message) -> Reply | None:
        try:
            rev = parse_rev(message)
            if rev.sequence is None:
                raise http_reply(400, "received 'rev' message with missing 'sequence'")
        except BlipErrorReply as exc:
            self._unusable(message, exc)
            raise
        # Only what a changes reply of this session asked for is stored, under the sequence it
        # was announced with (never one the rev claims: it could mark another one done).
        key = self.requested.get(rev.doc_id, rev.announced)
        if key is None:
            logger.debug("refused unrequested rev %r %s", rev.doc_id, rev.rev_id)
            raise http_reply(400, f"revision {rev.announced} of {rev.doc_id!r} was not requested")
        self.revs_received += 1
        store = self.store
        finished = True
        try:
            if rev.delta_src is not None:
                try:
                    rev = expand_delta(store, rev)
                except BlipErrorReply:
                    finished = False  # the peer sends the full body next (notes §6.3)
                    raise
            pull_filter = self.options.pull_filter
            if pull_filter is not None and not _keep(
                pull_filter, rev.doc_id, rev.rev_id, rev.deleted, rev.body
            ):
                self.reporter.add_completed()
                return None
            try:
                await self.blobs.fetch_missing(self.context, rev.doc_id, rev.body)
            except CouchliteError as exc:
                self._report(rev.doc_id, rev.deleted, exc)
                raise reply_error_for(exc) from exc
            outcome = await self.inserter.insert(incoming(rev, no_conflicts=False))
            if isinstance(outcome.error, DatabaseClosedError):
                raise outcome.error  # not this document's failure: the session cannot go on
            if outcome.error is not None:
                self._report(rev.doc_id, rev.deleted, outcome.error)
                raise reply_error_for(outcome.error)
            self.remote_revs[rev.doc_id] = rev.rev_id
            error = None
            if outcome.conflicted:
                error = await resolve_conflict(
                    store, rev.doc_id, rev.rev_id, self.options.conflict_resolver
                )
            self._report(rev.doc_id, rev.deleted, error)
            return None
        finally:
            if finished and self.requested.pop(rev.doc_id, rev.announced)[0]:
                # Marked done once the handler's reply is queued (it is, right after this
                # returns), so "idle" is never announced before the peer can know the revision
                # arrived.
                asyncio.get_running_loop().call_soon(self._rev_done, key)

    def _unusable(self, message: Message, exc: BlipErrorReply) -> None:
        """A requested revision arrived unusable (malformed, or a body the local API could not
        hold): it is done with, as one the store refused -- a later session would get the
        same."""
        props = message.properties
        doc_id, announced = props.get("id"), props.get("replacedRev") or props.get("rev")
        if not doc_id or not announced:
            return
        found, key = self.requested.pop(doc_id, announced)
        if found:
            error = CouchliteError(
                exc.message, domain=ErrorDomain.WEBSOCKET, code=exc.code, transient=False
            )
            self._report(doc_id, message.bool_property("deleted"), error)
            asyncio.get_running_loop().call_soon(self._rev_done, key)

    def _rev_done(self, key: str) -> None:
        self.tracker.done(key)
        self._check_finished()

    async def handle_norev(self, message: Message) -> Reply | None:
        props = message.properties
        doc_id, rev_id = props.get("id"), props.get("rev")
        if doc_id and rev_id:
            found, key = self.requested.pop(doc_id, rev_id)
            if found:
                self.reporter.add_completed()
                self.tracker.done(key)
                self._check_finished()
        return None

    def _report(self, doc_id: str, deleted: bool, error: CouchliteError | None) -> None:
        self.reporter.document(
            False,
            ReplicatedDocument(
                doc_id, self.store.scope_name, self.store.name, doc_flags(deleted), error
            ),
        )


def _keep(fn: Any, doc_id: str, rev_id: str, deleted: bool, body: bytes) -> bool:
    try:
        return bool(fn(doc_id, rev_id, deleted, body))
    except Exception:  # the user's filter: a failure rejects the revision
        logger.exception("replication filter failed for %r", doc_id)
        return False


__all__ = ["Puller"]
