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
   :class:`~couchlite.replicator.protocol.revisions.RequestedRevisions` (``(doc_id, rev_id)``
   -> the key of its announced sequence; bounded, O(1)). A ``rev`` not found there (looked up by its
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
4. Progress and the checkpoint: every announced sequence enters a ``SequenceTracker``;
   ``remote`` of the checkpoint is the last sequence of its finished prefix. An empty ``changes``
   means caught up; a one-shot pull is finished once that arrived and nothing is outstanding.

The decisions are :class:`~couchlite.replicator.protocol.pull.PullState`'s; this worker only
moves messages and runs the store calls (``find_missing``, purges, the pull filter, delta bases,
inserts, conflict resolution) on the session's store thread.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from typing import Any

from couchlite._tuning import MAX_POSSIBLE_ANCESTORS
from couchlite.blip import BlipErrorReply, Message
from couchlite.errors import CouchliteError, DatabaseClosedError, ErrorDomain
from couchlite.model.blobrefs import blob_digests
from couchlite.replicator.blob_fetcher import BlobFetcher
from couchlite.replicator.collection_context import CollectionContext
from couchlite.replicator.conflicts import resolve_conflict
from couchlite.replicator.error_mapping import remote_error, reply_error_for
from couchlite.replicator.inserter import Inserted, Inserter
from couchlite.replicator.options import SessionCollectionOptions
from couchlite.replicator.protocol.changes import Changes, SubChanges
from couchlite.replicator.protocol.pull import PullState
from couchlite.replicator.protocol.revs import NoRev, Rev
from couchlite.replicator.protocol.wire import http_reply
from couchlite.replicator.remote_revs import RemoteRevisions
from couchlite.replicator.reporter import Reporter
from couchlite.replicator.rev_receiver import expand_delta, incoming
from couchlite.replicator.store import CollectionStore, IncomingRevision, RevisionFilter
from couchlite.replicator.store_worker import StoreWorker
from couchlite.replicator.types import DocumentFlags, ReplicatedDocument
from couchlite.transport.blip_connection import BlipConnection, Deferred, Reply

logger = logging.getLogger(__name__)


class Puller:
    """Pulls one collection for an :class:`~couchlite.replicator.active.ActiveSession`."""

    def __init__(
        self,
        connection: BlipConnection,
        context: CollectionContext,
        options: SessionCollectionOptions,
        calls: StoreWorker,
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
        self.accept_deltas = accept_deltas
        self.context = context
        self.store = context.store
        self.options = options
        self.calls = calls
        self.since = since
        self.had_checkpoint = had_checkpoint
        self.continuous = continuous
        self.enable_auto_purge = enable_auto_purge
        self.reporter = reporter
        self.blobs = blobs
        #: the revision the peer is known to have, per document (shared with the pusher)
        self.remote_revs = remote_revs
        self.state = PullState(since, options.document_ids)
        self.tracker = self.state.tracker
        self.inserter = Inserter(
            self.store,
            calls,
            resolve_by_default=options.conflict_resolver is None,
            on_stored=self._stored,
        )
        self.finished = asyncio.Event()
        self.revs_received = 0

    def _stored(self, revision: IncomingRevision, stored_by: int) -> None:
        # The peer has it: never pushed back. Recorded as the batch's results come back,
        # before the pusher can act on a feed read that sees the revision.
        self.remote_revs[revision.doc_id] = revision.rev_id

    async def retry_conflicts(self) -> None:
        """Resolve again the documents a resolver failed on in an earlier session."""
        for doc_id, remote_rev in await self.calls.call(self.store.conflicted_documents):
            error = await resolve_conflict(
                self.store, self.calls, doc_id, remote_rev, self.options.conflict_resolver
            )
            if error is not None:
                self._report(doc_id, False, error)

    async def start(self) -> None:
        """Retry unresolved conflicts, then send ``subChanges`` (a refusal is fatal)."""
        await self.retry_conflicts()
        is_empty = await self.calls.call(_is_empty, self.store)
        out = SubChanges(
            since=self.since,
            continuous=self.continuous,
            active_only=is_empty and not self.had_checkpoint,
            document_ids=self.options.document_ids,
        ).to_message(self.context.address)
        self.reporter.set_busy(self, True)
        try:
            await self.connection.request(out.properties, out.body)
        except BlipErrorReply as exc:
            raise remote_error(exc, "subChanges refused") from exc

    @property
    def checkpoint(self) -> Any:
        return self.state.checkpoint

    def _check_finished(self) -> None:
        if self.state.finished:
            if not self.finished.is_set():
                self.inserter.flush()
                self.finished.set()
            self.reporter.set_busy(self, False)

    def close(self) -> None:
        self.inserter.close()

    # --- handlers -------------------------------------------------------------------------

    async def handle_changes(self, message: Message) -> Reply | None:
        changes = Changes.parse(message)
        if changes.caught_up:
            self.state.announce(changes)
            self._check_finished()
            return None
        if changes.unanswerable:
            return None
        self.finished.clear()
        self.reporter.set_busy(self, True)
        state = self.state
        announcement = state.announce(changes)
        for doc_id, key in announcement.removed:
            await self._access_removed(doc_id)
            state.done(key)
        if announcement.to_check:
            missing = await self.calls.call(
                self.store.find_missing, announcement.lookups, MAX_POSSIBLE_ANCESTORS
            )
            answered = state.answer(announcement, missing)
            remote_revs = self.remote_revs
            for doc_id, rev_id in answered.present:
                remote_revs[doc_id] = rev_id
            if answered.requested:
                self.reporter.add_total(answered.requested)
        self._check_finished()
        props, body = state.reply(announcement, deltas=self.accept_deltas).to_reply()
        return Reply(props, body, compressed=True)

    async def _access_removed(self, doc_id: str) -> None:
        if not self.enable_auto_purge:
            return
        try:
            await self.calls.call(self.store.purge, doc_id)
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

    def handle_rev(self, message: Message) -> Deferred | Coroutine[Any, Any, Reply | None]:
        """A requested revision: stored through the batching inserter, answered once its batch
        committed. The common case (a full body without blobs, no pull filter, no custom
        resolver) waits on nothing but the batch, so it costs no task; the others wait in a
        task of their own."""
        try:
            rev = Rev.parse(message)
            if rev.sequence is None:
                raise http_reply(400, "received 'rev' message with missing 'sequence'")
        except BlipErrorReply as exc:
            self._unusable(message, exc)
            raise
        # Only what a changes reply of this session asked for is stored, under the sequence it
        # was announced with (never one the rev claims: it could mark another one done).
        key = self.state.requested_key(rev.doc_id, rev.announced)
        if key is None:
            logger.debug("refused unrequested rev %r %s", rev.doc_id, rev.rev_id)
            raise http_reply(400, f"revision {rev.announced} of {rev.doc_id!r} was not requested")
        self.revs_received += 1
        options = self.options
        if (
            rev.delta_src is not None
            or options.pull_filter is not None
            or options.conflict_resolver is not None
            or blob_digests(rev.body)
        ):
            return self._rev_waiting(rev, key)
        answer = Deferred()

        def stored(inserted: Inserted) -> None:
            try:
                self._report(rev.doc_id, rev.deleted, self._inserted(rev, inserted))
            except Exception as exc:  # the reply the handler would have raised (501 if a bug)
                answer.fail(exc)
            else:
                answer.resolve()
            # the reply is queued by now: the sequence may count as done
            self._finish_request(rev, key, call_soon=False)

        self.inserter.insert_later(incoming(rev, no_conflicts=False), stored)
        return answer

    async def _rev_waiting(self, rev: Rev, key: str) -> Reply | None:
        """A requested revision that waits on more than its batch: a delta to expand, the
        pull filter, blobs to fetch, or the conflict resolver."""
        store, calls = self.store, self.calls
        finished = True
        try:
            pull_filter = self.options.pull_filter
            if rev.delta_src is not None or pull_filter is not None:
                try:
                    rev, keep = await calls.call(_prepare, store, rev, pull_filter)
                except BlipErrorReply:
                    finished = False  # the peer sends the full body next (notes §6.3)
                    raise
                if not keep:
                    self.reporter.add_completed()
                    return None
            try:
                await self.blobs.fetch_missing(self.context, rev.doc_id, rev.body)
            except CouchliteError as exc:
                self._report(rev.doc_id, rev.deleted, exc)
                raise reply_error_for(exc) from exc
            inserted = await self.inserter.insert(incoming(rev, no_conflicts=False))
            error = self._inserted(rev, inserted)
            if inserted.outcome.conflicted and not inserted.resolved:
                error = await resolve_conflict(
                    store, calls, rev.doc_id, rev.rev_id, self.options.conflict_resolver
                )
            self._report(rev.doc_id, rev.deleted, error)
            return None
        finally:
            if finished:
                # Marked done once the handler's reply is queued (it is, right after this
                # returns), so "idle" is never announced before the peer can know the revision
                # arrived.
                self._finish_request(rev, key, call_soon=True)

    def _inserted(self, rev: Rev, inserted: Inserted) -> CouchliteError | None:
        """What the insert of ``rev`` left to report (a failed default resolution); raises the
        error reply when the store refused it, and :class:`DatabaseClosedError` as such (not
        this document's failure: the session cannot go on)."""
        outcome = inserted.outcome
        if isinstance(outcome.error, DatabaseClosedError):
            raise outcome.error
        if outcome.error is not None:
            self._report(rev.doc_id, rev.deleted, outcome.error)
            raise reply_error_for(outcome.error)
        return inserted.resolution_error

    def _finish_request(self, rev: Rev, key: str, *, call_soon: bool) -> None:
        if self.state.forget_request(rev.doc_id, rev.announced)[0]:
            if call_soon:
                asyncio.get_running_loop().call_soon(self._rev_done, key)
            else:
                self._rev_done(key)

    def _unusable(self, message: Message, exc: BlipErrorReply) -> None:
        """A requested revision arrived unusable (malformed, or a body the local API could not
        hold): it is done with, as one the store refused -- a later session would get the
        same."""
        props = message.properties
        doc_id, announced = props.get("id"), props.get("replacedRev") or props.get("rev")
        if not doc_id or not announced:
            return
        found, key = self.state.forget_request(doc_id, announced)
        if found:
            error = CouchliteError(
                exc.message, domain=ErrorDomain.WEBSOCKET, code=exc.code, transient=False
            )
            self._report(doc_id, message.bool_property("deleted"), error)
            asyncio.get_running_loop().call_soon(self._rev_done, key)

    def _rev_done(self, key: str) -> None:
        self.state.done(key)
        self._check_finished()

    async def handle_norev(self, message: Message) -> Reply | None:
        norev = NoRev.parse(message)
        if norev is not None:
            found, key = self.state.forget_request(norev.doc_id, norev.rev_id)
            if found:
                self.reporter.add_completed()
                self.state.done(key)
                self._check_finished()
        return None

    def _report(self, doc_id: str, deleted: bool, error: CouchliteError | None) -> None:
        self.reporter.result(False, self.store, doc_id, deleted, error)


def _is_empty(store: CollectionStore) -> bool:
    return store.is_empty


def _prepare(
    store: CollectionStore, rev: Rev, pull_filter: RevisionFilter | None
) -> tuple[Rev, bool]:
    """On the store thread: apply a delta, then the pull filter (``keep?``)."""
    rev = expand_delta(store, rev)
    if pull_filter is None:
        return rev, True
    try:
        keep = bool(pull_filter(rev.doc_id, rev.rev_id, rev.deleted, rev.body))
    except Exception:  # the user's filter: a failure rejects the revision
        logger.exception("replication filter failed for %r", rev.doc_id)
        keep = False
    return rev, keep


__all__ = ["Puller"]
