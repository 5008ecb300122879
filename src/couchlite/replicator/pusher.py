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
the :class:`~couchlite.replicator.rev_sender.RevSender`; whether a delta goes is its decision.

What each answer means is :func:`couchlite.replicator.protocol.push.decide`'s; the feed reads,
the lookups of what the peer has, the push filter and the ancestry checks run on the session's
store thread, one call per batch.

A one-shot push ends when the feed is exhausted, nothing is in flight and (when pulling) the
puller has finished -- after one last read of the feed, so resolutions made by the puller are
pushed in the same session. A continuous push waits on the collection's change listener.
"""

from __future__ import annotations

import asyncio
import logging

from couchlite._tuning import (
    CHANGES_BATCH_SIZE,
    MAX_CHANGE_LISTS_IN_FLIGHT,
    MAX_HISTORY,
    WAIT_TIMEOUT_S,
)
from couchlite.blip import BlipErrorReply
from couchlite.errors import CouchliteError
from couchlite.replicator.change_feed import ChangeWatcher, Quiet, read_changes
from couchlite.replicator.collection_context import CollectionContext
from couchlite.replicator.error_mapping import conflict_error, http_error, remote_error
from couchlite.replicator.options import SessionCollectionOptions
from couchlite.replicator.protocol.changes import (
    ProposeChanges,
    ProposeChangesReply,
    ProposedChange,
)
from couchlite.replicator.protocol.push import Decision, decide
from couchlite.replicator.protocol.sequences import SequenceTracker
from couchlite.replicator.puller import Puller
from couchlite.replicator.remote_revs import RemoteRevisions
from couchlite.replicator.reporter import Reporter
from couchlite.replicator.rev_sender import RevSender
from couchlite.replicator.store import ChangeEntry, CollectionStore, RevisionFilter
from couchlite.replicator.store_worker import StoreWorker
from couchlite.transport.blip_connection import BlipConnection

logger = logging.getLogger(__name__)


class Pusher:
    """Pushes one collection for an :class:`~couchlite.replicator.active.ActiveSession`."""

    def __init__(
        self,
        connection: BlipConnection,
        context: CollectionContext,
        options: SessionCollectionOptions,
        calls: StoreWorker,
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
        self.calls = calls
        self.since = since
        self.continuous = continuous
        self.reporter = reporter
        self.sender = sender
        self.remote_revs = remote_revs
        self.puller = puller
        self._quiet = Quiet()
        self.tracker = SequenceTracker(since, on_quiet=self._quiet)
        self._proposal_slots = asyncio.Semaphore(MAX_CHANGE_LISTS_IN_FLIGHT)
        #: doc_id -> rev_id refused with 409 while pulling: resolved by the pull, or an error
        self._waiting: dict[str, str] = {}
        self.revs_sent = 0

    @property
    def checkpoint(self) -> int:
        return int(self.tracker.checkpoint or 0)

    async def run(self) -> None:
        watcher = None
        if self.continuous or self.puller:
            watcher = ChangeWatcher(self.store, self.calls)
            await watcher.start()
        try:
            async with asyncio.TaskGroup() as tasks:
                await self._loop(tasks, watcher)
        finally:
            if watcher is not None:
                watcher.close()
            self.reporter.set_busy(self, False)
        await self._report_unresolved()

    async def _loop(self, tasks: asyncio.TaskGroup, watcher: ChangeWatcher | None) -> None:
        cursor = self.since
        while True:
            changes, found = await self.calls.call(self._read, cursor)
            if changes:
                self.reporter.set_busy(self, True)
                cursor = changes[-1].sequence
                await self._propose_batch(changes, found, tasks)
                continue
            await self._quiet.wait()
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
            if not await read_changes(self.calls, self.store, cursor, 1):
                return

    def _read(self, cursor: int) -> tuple[list[ChangeEntry], tuple[list[str], dict[str, str]]]:
        """On the store thread: the next batch of the feed, and what the peer has of it."""
        changes = self.store.changes_since(cursor, CHANGES_BATCH_SIZE)
        wanted = self.remote_revs.wanted(c.doc_id for c in changes)
        return changes, (wanted, self.remote_revs.read(wanted))

    async def _propose_batch(
        self,
        changes: list[ChangeEntry],
        found: tuple[list[str], dict[str, str]],
        tasks: asyncio.TaskGroup,
    ) -> None:
        tracker = self.tracker
        doc_ids = self.options.document_ids
        remote_revs = self.remote_revs
        remote_revs.merge(*found)
        candidates: list[ChangeEntry] = []
        for change in changes:
            seq = change.sequence
            tracker.add(seq, seq)
            if (doc_ids is not None and change.doc_id not in doc_ids) or remote_revs.get(
                change.doc_id
            ) == change.rev_id:  # filtered out, or the peer has it (it came from the peer)
                tracker.done(seq)
            else:
                candidates.append(change)
        push_filter = self.options.push_filter
        if candidates and push_filter is not None:
            kept = await self.calls.call(_apply_filter, self.store, push_filter, candidates)
            proposals = []
            for change, keep in zip(candidates, kept, strict=True):
                if keep:
                    proposals.append(change)
                else:
                    tracker.done(change.sequence)
        else:
            proposals = candidates
        if not proposals:
            return
        self.reporter.add_total(len(proposals))
        await self._proposal_slots.acquire()
        tasks.create_task(self._propose(proposals, tasks, 0))

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
            out = ProposeChanges(
                tuple(
                    ProposedChange(c.doc_id, c.rev_id, remote_revs.get(c.doc_id), c.body_size)
                    for c in changes
                )
            ).to_message(self.context.address)
            try:
                message = await self.connection.request(
                    out.properties, out.body, urgent=out.urgent, compressed=out.compressed
                )
            except BlipErrorReply as exc:
                raise remote_error(exc, "proposeChanges refused") from exc
            del out
            reply = ProposeChangesReply.parse(message)
            max_history = reply.max_history
            self.sender.peer_accepts_deltas(reply.deltas)
            ancestry: list[tuple[ChangeEntry, str]] = []
            for i, change in enumerate(changes):
                answer = reply.answer(i)
                decision = decide(answer, change.rev_id, round_)
                if decision is Decision.SEND:
                    await self.sender.slots.acquire()
                    tasks.create_task(self._send(change, max_history))
                elif decision is Decision.PEER_HAS_IT:
                    remote_revs[change.doc_id] = change.rev_id
                    self._completed(change, None)
                elif decision is Decision.REPROPOSE_IF_ANCESTOR:
                    assert answer.server_rev is not None
                    ancestry.append((change, answer.server_rev))
                elif decision is Decision.CONFLICT:
                    self._conflict(change)
                else:
                    status = answer.status
                    error = CouchliteError(f"peer refused {change.doc_id!r} with status {status}")
                    if isinstance(status, int):
                        error = http_error(status, f"peer refused {change.doc_id!r}")
                    self._completed(change, error)
            if ancestry:
                descends = await self.calls.call(_descend, self.store, ancestry)
                for (change, server_rev), is_ancestor in zip(ancestry, descends, strict=True):
                    if is_ancestor:
                        remote_revs[change.doc_id] = server_rev
                        again.append(change)
                    else:
                        self._conflict(change)
        finally:
            self._proposal_slots.release()
        if again:
            await self._proposal_slots.acquire()
            tasks.create_task(self._propose(again, tasks, round_ + 1))

    def _conflict(self, change: ChangeEntry) -> None:
        if self.puller is not None:
            # the pull brings the peer's revision; the resolution will be a new change
            self._waiting[change.doc_id] = change.rev_id
            self.reporter.add_completed()
            self.tracker.done(change.sequence)
        else:
            self._completed(change, conflict_error())

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
                mark_remote_revision(self.calls, self.store, change.doc_id, change.rev_id)
            self._completed(change, None)
        elif result.error.code == 409 and self.puller is not None:
            self._conflict(change)
        else:
            self._completed(change, result.error)

    def _completed(self, change: ChangeEntry, error: CouchliteError | None) -> None:
        self.reporter.result(True, self.store, change.doc_id, change.deleted, error)
        if error is not None and error.is_transient:
            self.tracker.stuck(change.sequence)  # retried next session
        else:
            self.tracker.done(change.sequence)

    async def _report_unresolved(self) -> None:
        if not self._waiting:
            return
        waiting = list(self._waiting.items())
        self._waiting.clear()
        currents = await self.calls.call(_current_revisions, self.store, [d for d, _ in waiting])
        for (doc_id, rev_id), current in zip(waiting, currents, strict=True):
            if current is not None and current[0] == rev_id:
                self.reporter.result(
                    True, self.store, doc_id, current[1], conflict_error(), count=False
                )


def mark_remote_revision(
    calls: StoreWorker, store: CollectionStore, doc_id: str, rev_id: str
) -> None:
    """Queue ``mark_remote_revision`` (its failure only costs a future delta: logged)."""

    def logged(future: asyncio.Future[None]) -> None:
        if not future.cancelled() and isinstance(future.exception(), CouchliteError):
            logger.warning("mark_remote_revision(%r) failed: %s", doc_id, future.exception())

    calls.call(store.mark_remote_revision, doc_id, rev_id).add_done_callback(logged)


def _apply_filter(
    store: CollectionStore, push_filter: RevisionFilter, changes: list[ChangeEntry]
) -> list[bool]:
    """On the store thread: the push filter's verdict on each change."""
    return [_passes(store, push_filter, change) for change in changes]


def _passes(store: CollectionStore, push_filter: RevisionFilter, change: ChangeEntry) -> bool:
    body = store.document_body(change.doc_id, change.rev_id)
    if body is None:
        return False  # replaced meanwhile: the newer change will be considered instead
    try:
        return bool(push_filter(change.doc_id, change.rev_id, change.deleted, body))
    except Exception:
        logger.exception("push filter failed for %r", change.doc_id)
        return False


def _descend(store: CollectionStore, pairs: list[tuple[ChangeEntry, str]]) -> list[bool]:
    """On the store thread: whether each change's revision descends from the named one."""
    result = []
    for change, ancestor in pairs:
        revision = store.get_revision(change.doc_id, change.rev_id, [ancestor], MAX_HISTORY)
        result.append(revision is not None and ancestor in revision.history)
    return result


def _current_revisions(store: CollectionStore, doc_ids: list[str]) -> list[tuple[str, bool] | None]:
    return [store.current_revision(doc_id) for doc_id in doc_ids]


async def _first_of(*events: asyncio.Event) -> None:
    """Wait until any of ``events`` is set (bounded by ``WAIT_TIMEOUT_S``)."""
    waiters = [asyncio.ensure_future(e.wait()) for e in events]
    try:
        await asyncio.wait(waiters, timeout=WAIT_TIMEOUT_S, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for w in waiters:
            w.cancel()


__all__ = ["Pusher"]
