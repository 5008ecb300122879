"""The passive pusher: what a passive peer does after ``subChanges`` (notes §4.5, §4.6, §4.8,
§10; interop facts 6, 7, 15).

Theory of operation
-------------------
After the empty reply to ``subChanges`` a task reads the changes feed from ``since`` in batches
of ``CHANGES_BATCH_SIZE`` and sends each batch as ``changes`` (urgent + compressed; entries
``[seq, docID, revID, deleted, bodySize]`` with ``deleted`` the number 0 or 1, as LiteCore
writes it), with up to ``MAX_CHANGE_LISTS_IN_FLIGHT`` awaiting replies. For each entry the
peer answers with a list of known ancestors, the revision is sent as ``rev`` (``sequence`` and
``history``, no ``noconflicts``) -- pipelined under the session's rev semaphore; a revision gone
meanwhile is replaced by the current one (``replacedRev``) when the peer asked for
``sendReplacementRevs``, else announced with ``norev``. The known ancestors of each answer are
the delta bases offered to the sender (notes §6.2), and a revision the peer acknowledged that
is no longer current is marked as the peer's (``mark_remote_revision``: its body stays a base).

Once the feed is exhausted and every ``changes`` was answered, one empty ``changes`` is sent
(urgent, noreply, uncompressed): the peer's "caught up". A continuous subscription then waits
on the collection's change listener and repeats; a one-shot one ends when its revs are done.
Feed reads and ``mark_remote_revision`` run on the session's store thread.
"""

from __future__ import annotations

import asyncio
import logging

from couchlite._tuning import MAX_CHANGE_LISTS_IN_FLIGHT
from couchlite.blip import BlipErrorReply
from couchlite.replicator.change_feed import ChangeWatcher, Quiet, read_changes
from couchlite.replicator.collection_context import CollectionContext
from couchlite.replicator.error_mapping import remote_error
from couchlite.replicator.protocol.changes import ChangeRow, Changes, ChangesReply
from couchlite.replicator.protocol.sequences import SequenceTracker
from couchlite.replicator.pusher import mark_remote_revision
from couchlite.replicator.reporter import Reporter
from couchlite.replicator.rev_sender import RevSender
from couchlite.replicator.store import ChangeEntry
from couchlite.replicator.store_worker import StoreWorker
from couchlite.transport.blip_connection import BlipConnection

logger = logging.getLogger(__name__)


class PassivePusher:
    """Answers one ``subChanges`` of the peer for one collection."""

    def __init__(
        self,
        connection: BlipConnection,
        context: CollectionContext,
        calls: StoreWorker,
        *,
        sender: RevSender,
        reporter: Reporter,
        since: int,
        continuous: bool,
        active_only: bool,
        document_ids: frozenset[str] | None,
        replacements: bool,
    ) -> None:
        self.connection = connection
        self.context = context
        self.store = context.store
        self.calls = calls
        self.sender = sender
        self.reporter = reporter
        self.since = since
        self.continuous = continuous
        self.active_only = active_only
        self.document_ids = document_ids
        self.replacements = replacements
        self._lists = asyncio.Semaphore(MAX_CHANGE_LISTS_IN_FLIGHT)
        #: changes lists awaiting replies (their sequences), then their revs
        self._lists_quiet = Quiet()
        self._lists_pending = SequenceTracker(on_quiet=self._lists_quiet)
        self._revs_quiet = Quiet()
        self._revs_pending = SequenceTracker(on_quiet=self._revs_quiet)
        self.revs_sent = 0
        context.peer_revs.watch()

    async def run(self) -> None:
        watcher = None
        try:
            if self.continuous:
                watcher = ChangeWatcher(self.store, self.calls)
                await watcher.start()
            async with asyncio.TaskGroup() as tasks:
                await self._loop(tasks, watcher)
        except BlipErrorReply as exc:
            logger.warning("passive pusher stopped: %s", exc)
        finally:
            if watcher is not None:
                watcher.close()
            self.reporter.set_busy(self, False)

    async def _loop(self, tasks: asyncio.TaskGroup, watcher: ChangeWatcher | None) -> None:
        cursor = self.since
        while True:
            changes = await read_changes(self.calls, self.store, cursor)
            if changes:
                cursor = changes[-1].sequence
                entries = [c for c in changes if self._wanted(c)]
                self.context.peer_revs.forget_through(cursor)
                if entries:
                    self.reporter.set_busy(self, True)
                    self.reporter.add_total(len(entries))
                    await self._lists.acquire()
                    key = entries[-1].sequence
                    self._lists_pending.add(key, key)
                    tasks.create_task(self._send_changes(entries, tasks, key))
                continue
            # the peer must see every non-empty list before "caught up" (interop fact 6)
            await self._lists_quiet.wait()
            out = Changes().to_message(self.context.address)
            await self.connection.send_no_reply(out.properties, out.body, urgent=out.urgent)
            # Idle once everything is announced and every wanted rev is on its way: the peer
            # can only go idle after this (causally), so a listener never counts a connection
            # as active after its client reported idle.
            self.reporter.set_busy(self, False)
            if watcher is None:
                return
            await self._revs_quiet.wait()
            await watcher.wait()

    def _wanted(self, change: ChangeEntry) -> bool:
        if self.document_ids is not None and change.doc_id not in self.document_ids:
            return False
        if self.context.peer_revs.is_echo(change.doc_id, change.rev_id):
            return False  # the peer pushed this very revision to us: no echo
        return not (self.active_only and change.deleted)

    async def _send_changes(
        self, entries: list[ChangeEntry], tasks: asyncio.TaskGroup, key: int
    ) -> None:
        try:
            out = Changes(
                tuple(
                    ChangeRow(c.sequence, c.doc_id, c.rev_id, int(c.deleted), c.body_size)
                    for c in entries
                )
            ).to_message(self.context.address)
            try:
                message = await self.connection.request(
                    out.properties, out.body, urgent=out.urgent, compressed=out.compressed
                )
            except BlipErrorReply as exc:
                raise remote_error(exc, "changes refused") from exc
            del out
            reply = ChangesReply.parse(message)
            max_history = reply.max_history
            self.sender.peer_accepts_deltas(reply.deltas)
            for i, change in enumerate(entries):
                known = reply.known(i)
                if known is None:
                    self.reporter.add_completed()
                    continue
                await self.sender.slots.acquire()
                self._revs_pending.add(change.sequence, change.sequence)
                tasks.create_task(self._send_rev(change, known, max_history))
        finally:
            # held until every wanted revision has a sender slot, so the feed is never read
            # far ahead of the sending (memory would grow with the number of documents)
            self._lists.release()
            self._lists_pending.done(key)

    async def _send_rev(self, change: ChangeEntry, known: list[str], max_history: int) -> None:
        try:
            result = await self.sender.send(
                self.context,
                change.doc_id,
                change.rev_id,
                str(change.sequence),
                known,
                max_history,
                noconflicts=False,
                replace=self.replacements,
                delta_bases=known,
            )
            if result.revision is None:
                await self.sender.send_norev(
                    self.context, change.doc_id, change.rev_id, str(change.sequence), 404
                )
                self.reporter.add_completed()
                return
            self.revs_sent += 1
            if result.error is None and result.revision.sequence != change.sequence:
                # acknowledged but no longer current: keep its body as the peer's delta base
                # (the current revision's body, and its parent's, are kept anyway)
                mark_remote_revision(self.calls, self.store, change.doc_id, result.revision.rev_id)
            self.reporter.result(
                True, self.store, change.doc_id, result.revision.deleted, result.error
            )
        finally:
            self.sender.slots.release()
            self._revs_pending.done(change.sequence)


__all__ = ["PassivePusher"]
