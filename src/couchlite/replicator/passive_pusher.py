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
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import orjson

from couchlite.blip import BlipErrorReply
from couchlite.errors import CouchliteError
from couchlite.replicator._common import (
    CHANGES_BATCH_SIZE,
    MAX_CHANGE_LISTS_IN_FLIGHT,
    MAX_HISTORY,
    ChangeWatcher,
    CollectionContext,
    Reporter,
    SequenceTracker,
    doc_flags,
    remote_error,
)
from couchlite.replicator.source import RevSender
from couchlite.replicator.store import ChangeEntry
from couchlite.replicator.types import ReplicatedDocument
from couchlite.transport.blip_connection import BlipConnection

logger = logging.getLogger(__name__)


class PassivePusher:
    """Answers one ``subChanges`` of the peer for one collection."""

    def __init__(
        self,
        connection: BlipConnection,
        context: CollectionContext,
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
        self.sender = sender
        self.reporter = reporter
        self.since = since
        self.continuous = continuous
        self.active_only = active_only
        self.document_ids = document_ids
        self.replacements = replacements
        self._lists = asyncio.Semaphore(MAX_CHANGE_LISTS_IN_FLIGHT)
        #: changes lists awaiting replies (their sequences), then their revs
        self._lists_pending = SequenceTracker()
        self._revs_pending = SequenceTracker()
        self.revs_sent = 0
        context.peer_revs.watch()

    async def run(self) -> None:
        watcher = ChangeWatcher(self.store) if self.continuous else None
        try:
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
            changes = self.store.changes_since(cursor, CHANGES_BATCH_SIZE)
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
            await self._lists_pending.wait_quiet()
            props = self.context.props("changes")
            await self.connection.send_no_reply(props, b"[]", urgent=True)
            # Idle once everything is announced and every wanted rev is on its way: the peer
            # can only go idle after this (causally), so a listener never counts a connection
            # as active after its client reported idle.
            self.reporter.set_busy(self, False)
            if watcher is None:
                return
            await self._revs_pending.wait_quiet()
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
            body = orjson.dumps(
                [
                    [c.sequence, c.doc_id, c.rev_id, 1 if c.deleted else 0, c.body_size]
                    for c in entries
                ]
            )
            try:
                reply = await self.connection.request(
                    self.context.props("changes"), body, urgent=True, compressed=True
                )
            except BlipErrorReply as exc:
                raise remote_error(exc, "changes refused") from exc
            del body
            max_history = reply.int_property("maxHistory") or MAX_HISTORY
            self.sender.peer_accepts_deltas(reply)
            try:
                answers: Any = orjson.loads(reply.body) if reply.body else []
            except orjson.JSONDecodeError:
                answers = []
            if not isinstance(answers, list):
                answers = []
            for i, change in enumerate(entries):
                answer = answers[i] if i < len(answers) else 0
                if not isinstance(answer, list):
                    self.reporter.add_completed()
                    continue
                known = [r for r in answer if isinstance(r, str)]
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
                try:
                    self.store.mark_remote_revision(change.doc_id, result.revision.rev_id)
                except CouchliteError as exc:
                    logger.warning("mark_remote_revision(%r) failed: %s", change.doc_id, exc)
            self.reporter.document(
                True,
                ReplicatedDocument(
                    change.doc_id,
                    self.store.scope_name,
                    self.store.name,
                    doc_flags(result.revision.deleted),
                    result.error,
                ),
            )
        finally:
            self.sender.slots.release()
            self._revs_pending.done(change.sequence)


__all__ = ["PassivePusher"]
