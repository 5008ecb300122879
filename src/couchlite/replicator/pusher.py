"""The active pusher: ``proposeChanges`` then pipelined ``rev``s (notes §4.7, §4.8, §8, §10;
interop facts 5, 8).

Theory of operation
-------------------
The changes feed is read after the checkpoint in batches of ``CHANGES_BATCH_SIZE``. Document-ID
and push filters run first (a filtered change counts as done); a change whose revision the peer
is already known to have (it came from the peer in this session) is skipped, which is what
stops pulled revisions from echoing back. The rest is proposed with ``proposeChanges``
(urgent + compressed, ``conflictIncludesRev: true``; entries ``[docID, revID, serverRevID or
"", bodySize]``); up to ``MAX_CHANGE_LISTS_IN_FLIGHT`` proposals are outstanding, so the feed
read, the proposals and the revs all overlap.

Each answer: ``0`` -> send the ``rev`` (history cut at the server revision, up to the peer's
``maxHistory``), pipelined under the session's rev semaphore; ``304`` -> done;
``{"status": 409, "rev": X}`` -> if our revision descends from X, propose again with X as
server revision; else, when also pulling, wait: the puller brings X, the conflict is resolved
locally, and the resolution -- a new local change -- is pushed; when not pulling (or if the
document still has the same revision when the pull is over) it is a document error 409.

Deltas (notes §6.2): the revision the peer is known to have -- the server revision of the
proposal, learnt from a 409, a 304, a pull or an earlier push -- is the delta base offered to
the :class:`~couchlite.replicator.source.RevSender`; whether a delta goes is its decision.

A one-shot push ends when the feed is exhausted, nothing is in flight and (when pulling) the
puller has finished -- after one last read of the feed, so resolutions made by the puller are
pushed in the same session. A continuous push waits on the collection's change listener.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import orjson

from couchlite.blip import BlipErrorReply
from couchlite.errors import ConflictError, CouchliteError, ErrorDomain
from couchlite.replicator._common import (
    CHANGES_BATCH_SIZE,
    MAX_CHANGE_LISTS_IN_FLIGHT,
    MAX_HISTORY,
    WAIT_TIMEOUT_S,
    ChangeWatcher,
    CollectionContext,
    Reporter,
    SequenceTracker,
    doc_flags,
    http_error,
    remote_error,
)
from couchlite.replicator.options import SessionCollectionOptions
from couchlite.replicator.puller import Puller
from couchlite.replicator.remote_revs import RemoteRevisions
from couchlite.replicator.source import RevSender
from couchlite.replicator.store import ChangeEntry
from couchlite.replicator.types import ReplicatedDocument
from couchlite.transport.blip_connection import BlipConnection

logger = logging.getLogger(__name__)

#: How many times one change is re-proposed after 409s naming an ancestor of it.
MAX_REPROPOSALS = 2


class Pusher:
    """Pushes one collection for an :class:`~couchlite.replicator.active.ActiveSession`."""

    def __init__(
        self,
        connection: BlipConnection,
        context: CollectionContext,
        options: SessionCollectionOptions,
        *,
        since: int,
        continuous: bool,
        reporter: Reporter,
        sender: RevSender,
        remote_revs: RemoteRevisions,
        puller: Puller | None,
    ) -> None:
        self.connection = connection
        self.context = context
        self.store = context.store
        self.options = options
        self.since = since
        self.continuous = continuous
        self.reporter = reporter
        self.sender = sender
        self.remote_revs = remote_revs
        self.puller = puller
        self.tracker = SequenceTracker(since)
        self._proposal_slots = asyncio.Semaphore(MAX_CHANGE_LISTS_IN_FLIGHT)
        #: doc_id -> rev_id refused with 409 while pulling: resolved by the pull, or an error
        self._waiting: dict[str, str] = {}
        self.revs_sent = 0

    @property
    def checkpoint(self) -> int:
        return int(self.tracker.checkpoint or 0)

    async def run(self) -> None:
        watcher = ChangeWatcher(self.store) if self.continuous or self.puller else None
        try:
            async with asyncio.TaskGroup() as tasks:
                await self._loop(tasks, watcher)
        finally:
            if watcher is not None:
                watcher.close()
            self.reporter.set_busy(self, False)
        self._report_unresolved()

    async def _loop(self, tasks: asyncio.TaskGroup, watcher: ChangeWatcher | None) -> None:
        cursor = self.since
        while True:
            changes = self.store.changes_since(cursor, CHANGES_BATCH_SIZE)
            if changes:
                self.reporter.set_busy(self, True)
                cursor = changes[-1].sequence
                await self._propose_batch(changes, tasks)
                continue
            await self.tracker.wait_quiet()
            if self.continuous:
                assert watcher is not None
                self.reporter.set_busy(self, False)
                await watcher.wait()
                continue
            puller = self.puller
            if puller is not None and not puller.finished.is_set():
                assert watcher is not None
                await _first_of(puller.finished, watcher.event)
                watcher.event.clear()
                continue
            if not self.store.changes_since(cursor, 1):
                return

    async def _propose_batch(self, changes: list[ChangeEntry], tasks: asyncio.TaskGroup) -> None:
        tracker = self.tracker
        doc_ids = self.options.document_ids
        push_filter = self.options.push_filter
        remote_revs = self.remote_revs
        remote_revs.load(change.doc_id for change in changes)
        proposals: list[ChangeEntry] = []
        for change in changes:
            seq = change.sequence
            tracker.add(seq, seq)
            skip = (doc_ids is not None and change.doc_id not in doc_ids) or remote_revs.get(
                change.doc_id
            ) == change.rev_id  # filtered out, or the peer has it (it came from the peer)
            if skip or (push_filter is not None and not self._passes(change)):
                tracker.done(seq)
            else:
                proposals.append(change)
        if not proposals:
            return
        self.reporter.add_total(len(proposals))
        await self._proposal_slots.acquire()
        tasks.create_task(self._propose(proposals, tasks, 0))

    def _passes(self, change: ChangeEntry) -> bool:
        assert self.options.push_filter is not None
        body = self.store.document_body(change.doc_id, change.rev_id)
        if body is None:
            return False  # replaced meanwhile: the newer change will be considered instead
        try:
            return bool(
                self.options.push_filter(change.doc_id, change.rev_id, change.deleted, body)
            )
        except Exception:
            logger.exception("push filter failed for %r", change.doc_id)
            return False

    async def _propose(
        self, changes: list[ChangeEntry], tasks: asyncio.TaskGroup, round_: int
    ) -> None:
        remote_revs = self.remote_revs
        again: list[ChangeEntry] = []
        # The slot is held until every accepted change has a sender slot, so the changes
        # proposed and accepted but not yet sent stay within MAX_CHANGE_LISTS_IN_FLIGHT lists
        # (released earlier, the feed would be read and proposed far ahead of the sending:
        # memory growing with the number of documents).
        try:
            body = orjson.dumps(
                [[c.doc_id, c.rev_id, remote_revs.get(c.doc_id, ""), c.body_size] for c in changes]
            )
            props = self.context.props("proposeChanges")
            props["conflictIncludesRev"] = "true"
            try:
                reply = await self.connection.request(props, body, urgent=True, compressed=True)
            except BlipErrorReply as exc:
                raise remote_error(exc, "proposeChanges refused") from exc
            del body
            max_history = reply.int_property("maxHistory") or MAX_HISTORY
            self.sender.peer_accepts_deltas(reply)
            try:
                statuses = reply.json() if reply.body else []
            except CouchliteError:
                statuses = []
            if not isinstance(statuses, list):
                statuses = []
            for i, change in enumerate(changes):
                status: Any = statuses[i] if i < len(statuses) else 0
                server_rev: str | None = None
                if isinstance(status, dict):
                    server_rev = status.get("rev") if isinstance(status.get("rev"), str) else None
                    status = status.get("status", 0)
                if status == 0:
                    await self.sender.slots.acquire()
                    tasks.create_task(self._send(change, max_history))
                elif status == 304:
                    remote_revs[change.doc_id] = change.rev_id
                    self._completed(change, None)
                elif status == 409:
                    if server_rev == change.rev_id:
                        remote_revs[change.doc_id] = change.rev_id
                        self._completed(change, None)
                    elif (
                        server_rev
                        and round_ < MAX_REPROPOSALS
                        and self._descends(change, server_rev)
                    ):
                        remote_revs[change.doc_id] = server_rev
                        again.append(change)
                    else:
                        self._conflict(change)
                else:
                    error = CouchliteError(f"peer refused {change.doc_id!r} with status {status}")
                    if isinstance(status, int):
                        error = http_error(status, f"peer refused {change.doc_id!r}")
                    self._completed(change, error)
        finally:
            self._proposal_slots.release()
        if again:
            await self._proposal_slots.acquire()
            tasks.create_task(self._propose(again, tasks, round_ + 1))

    def _descends(self, change: ChangeEntry, ancestor: str) -> bool:
        revision = self.store.get_revision(change.doc_id, change.rev_id, [ancestor], MAX_HISTORY)
        return revision is not None and ancestor in revision.history

    def _conflict(self, change: ChangeEntry) -> None:
        if self.puller is not None:
            # the pull brings the peer's revision; the resolution will be a new change
            self._waiting[change.doc_id] = change.rev_id
            self.reporter.add_completed()
            self.tracker.done(change.sequence)
        else:
            self._completed(
                change, ConflictError("conflict with the remote revision", domain=_ws(), code=409)
            )

    async def _send(self, change: ChangeEntry, max_history: int) -> None:
        try:
            known = self.remote_revs.get(change.doc_id)
            result = await self.sender.send(
                self.context,
                change.doc_id,
                change.rev_id,
                str(change.sequence),
                [known] if known else [],
                max_history,
                noconflicts=True,
                delta_bases=[known] if known else (),
            )
        finally:
            self.sender.slots.release()
        if result.revision is None:
            # gone (replaced or purged since the feed was read): a newer change supersedes it
            self.reporter.add_completed()
            self.tracker.done(change.sequence)
            return
        self.revs_sent += 1
        if result.error is None:
            self.remote_revs[change.doc_id] = change.rev_id
            if result.revision.sequence != change.sequence:
                # Only a revision that stopped being current needs marking: the current one's
                # body is kept anyway, and skipping the call saves a read per document.
                try:
                    self.store.mark_remote_revision(change.doc_id, change.rev_id)
                except CouchliteError as exc:
                    logger.warning("mark_remote_revision(%r) failed: %s", change.doc_id, exc)
            self._completed(change, None)
        elif result.error.code == 409 and self.puller is not None:
            self._conflict(change)
        else:
            self._completed(change, result.error)

    def _completed(self, change: ChangeEntry, error: CouchliteError | None) -> None:
        self.reporter.document(
            True,
            ReplicatedDocument(
                change.doc_id,
                self.store.scope_name,
                self.store.name,
                doc_flags(change.deleted),
                error,
            ),
        )
        if error is not None and error.is_transient:
            self.tracker.stuck(change.sequence)  # retried next session
        else:
            self.tracker.done(change.sequence)

    def _report_unresolved(self) -> None:
        for doc_id, rev_id in self._waiting.items():
            current = self.store.current_revision(doc_id)
            if current is not None and current[0] == rev_id:
                self.reporter.document(
                    True,
                    ReplicatedDocument(
                        doc_id,
                        self.store.scope_name,
                        self.store.name,
                        doc_flags(current[1]),
                        ConflictError("conflict with the remote revision", domain=_ws(), code=409),
                    ),
                    count=False,
                )
        self._waiting.clear()


def _ws() -> ErrorDomain:
    return ErrorDomain.WEBSOCKET


async def _first_of(*events: asyncio.Event) -> None:
    """Wait until any of ``events`` is set (bounded by ``WAIT_TIMEOUT_S``)."""
    waiters = [asyncio.ensure_future(e.wait()) for e in events]
    try:
        await asyncio.wait(waiters, timeout=WAIT_TIMEOUT_S, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for w in waiters:
            w.cancel()


__all__ = ["Pusher"]
